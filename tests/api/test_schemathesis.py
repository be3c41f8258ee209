"""Schemathesis over the whole OpenAPI document, against a live service on loopback.

Schemathesis loads the document the service serves and runs all its phases (the
documented examples, the coverage phase of boundary values and unexpected methods,
fuzzing with valid and invalid requests, and the stateful phase), sending every
request over HTTP to uvicorn on 127.0.0.1 (SQLite, and PostgreSQL with
``--rrm-postgres``). It runs once signed in with an administrator token (roles
admin and supervisor) and once with a plain officer token (role ustr). Path
parameters name the seeded cases, facilities, workflows and calendar feed half the
time, so the routes' success answers are checked too, not only their 404s.

Every answer must be no 5xx and match the document: a declared status, a declared
content type, a body and headers valid against their schemas, a true ``Allow`` on
405; an invalid request must be refused with a 4xx; a route that declares a
security scheme must refuse a request without a credential. (The
``positive_data_acceptance`` check is off: a request valid by the schema may still
be refused by the domain, e.g. an event the case's state does not allow, with a
declared 409 or 422.)

Settings, by environment variable:

- ``RRM_SCHEMATHESIS_EXAMPLES``: examples per operation in the fuzzing phase.
  CI default 3: about 1,500 requests per backend and token, about 10 s each.
  The full setting, about 12,000 requests per backend and token (2-3 min each on
  two cores)::

      RRM_SCHEMATHESIS_EXAMPLES=250 pytest tests/api/test_schemathesis.py -s

- ``RRM_SCHEMATHESIS_SEED``: replay a run; ``-s`` shows each run's seed, its
  requests by status class and its time.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import events

from .conftest import LiveService

EXAMPLES = int(os.environ.get("RRM_SCHEMATHESIS_EXAMPLES", "3"))
SEED = os.environ.get("RRM_SCHEMATHESIS_SEED")


def _config(live: LiveService, token: str) -> SchemathesisConfig:
    workflows = sorted(
        {spec.workflow_id for spec in live.engine.workflows.specs.values()}
    )
    return SchemathesisConfig.from_dict(
        {
            "base-url": live.base_url,
            **({"seed": int(SEED)} if SEED else {}),
            "suppress-health-check": ["all"],
            "generation": {"max-examples": EXAMPLES, "database": "none"},
            "phases": {"stateful": {"enabled": True}},
            "checks": {"positive_data_acceptance": {"enabled": False}},
            "auth": {"openapi": {"bearer": {"bearer": token}}},
            # Half the time, a path parameter names something that exists.
            "dictionaries": {
                "cases": {"values": [*live.case_ids, *live.external_refs]},
                "facilities": {"values": list(live.facility_ids)},
                "workflows": {"values": workflows},
                "feeds": {"values": [live.feed_secret]},
            },
            "parameters": {
                "path.case": {"dictionary": "cases", "probability": 0.5},
                "path.facility_id": {"dictionary": "facilities", "probability": 0.5},
                "path.workflow_id": {"dictionary": "workflows", "probability": 0.5},
                "path.secret": {"dictionary": "feeds", "probability": 0.5},
            },
        }
    )


@dataclass
class Run:
    """What one Schemathesis run found."""

    failures: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    scenarios: int = 0
    seconds: float = 0.0


def _run(schema: Any) -> Run:
    run = Run()
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished | events.FuzzScenarioFinished):
            run.scenarios += 1
            for checks in event.recorder.checks.values():
                for check in checks:
                    info = check.failure_info
                    if info is not None:
                        run.failures.append(
                            f"{event.recorder.label}: {info.failure.title}\n"
                            f"{info.failure.message}\n{info.code_sample}"
                        )
        elif isinstance(event, events.NonFatalError):
            run.errors.append(f"{event.label}: {event.info.format()}")
        elif isinstance(event, events.FatalError):
            raise event.exception
        elif isinstance(event, events.EngineFinished):
            run.seconds = event.running_time
    return run


class TestSchemathesis:
    @pytest.mark.parametrize("who", ["admin", "officer"])
    def test_every_answer_conforms(self, live: LiveService, who: str) -> None:
        """Generated requests get no 5xx, and every answer matches the document."""
        token = live.admin_token if who == "admin" else live.officer_token
        schema = schemathesis.openapi.from_url(
            f"{live.base_url}/api/v1/openapi.json", config=_config(live, token)
        )
        before = live.served()

        run = _run(schema)

        served = live.served() - before
        classes = Counter(f"{status[0]}xx" for _, _, status in served.elements())
        print(
            f"\nschemathesis ({who}): {served.total()} requests in "
            f"{run.seconds:.1f} s ({', '.join(f'{k} {v}' for k, v in sorted(classes.items()))}), "
            f"{run.scenarios} scenarios, {len(run.failures)} failures, "
            f"{len(run.errors)} errors; {EXAMPLES} examples per operation, seed "
            f"{schema.config.seed}"
        )
        assert (run.errors, run.failures) == ([], []), "\n\n".join(
            run.errors + run.failures
        )
        # Not a vacuous pass: the token worked and routes answered with success.
        assert classes["2xx"] > 0
