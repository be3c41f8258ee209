"""The walkthrough a new user follows, against a live server, step by step.

The operator issues API tokens with ``rrm token create`` (a USTR officer, a Mexican
officer, an administrator); the USTR officer opens a request for review; Mexico's
officer looks up what it may record and records its agreement with ``If-Match`` and
an ``Idempotency-Key``, twice; a supervisor signed in with the identity provider
extends a deadline; the case is drawn, exported and imported again; and the
service reports itself ready, counts its requests, and answers errors as problem
details. The walk runs once per module; each test checks one thing it showed.
"""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from rrm.cli import main

from .conftest import ISSUER, LiveServer

if TYPE_CHECKING:
    import httpx

V1 = "/api/v1"
PROBLEM = "application/problem+json"


def rrm_cli(*args: str) -> str:
    """Run the ``rrm`` command line; return what it printed."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(list(args))
    assert code == 0, out.getvalue()
    return out.getvalue()


def create_token(db: str, principal: str, role: str, agency: str) -> dict[str, Any]:
    """Issue a token as the operator would, with ``rrm token create --json``."""
    printed = rrm_cli(
        "token", "create", "--principal", principal, "--role", role,
        "--agency", agency, "--label", "walkthrough", "--json", "--db", db,
    )  # fmt: skip
    found: dict[str, Any] = json.loads(printed)
    return found


@dataclass
class Walk:
    """What each step of the walkthrough answered."""

    tokens: dict[str, dict[str, Any]]
    case_id: str = ""
    steps: dict[str, httpx.Response] = field(default_factory=dict)

    def __getitem__(self, step: str) -> httpx.Response:
        return self.steps[step]


def open_body(ref: str) -> dict[str, Any]:
    """Return the request that opens the walkthrough's case."""
    return {
        "workflow": "usmca-31a",
        "initiation": "request",
        "complainant": "US",
        "respondent": "MX",
        "external_ref": ref,
        "role": "ustr",
        "facility": {
            "facility_id": "MX-WALK-1",
            "name": "Planta Norte",
            "owner": "Grupo Ejemplo",
            "country": "MX",
            "city": "Silao",
            "region": "Guanajuato",
        },
        "claim": {"basis": "annex_23a_legislation", "sector_category": "manufacturing"},
        "petitioners": [{"name": "Sindicato Local", "confidential": True}],
        "officers": [
            {"officer_id": "ana", "role": "ustr", "email": "ana@ustr.example"},
            {"officer_id": "lupe", "role": "respondent", "email": "lupe@se.example"},
            {"officer_id": "sam", "role": "supervisor", "email": "sam@ustr.example"},
        ],
    }


def _walk_case(live: LiveServer, walk: Walk) -> None:
    ana, lupe = walk.tokens["ana"]["token"], walk.tokens["lupe"]["token"]
    walk.steps["opened"] = opened = live.call(
        "POST", f"{V1}/cases", ana, json=open_body("USTR-2025-001")
    )
    walk.case_id = case = opened.json()["case_id"]
    walk.steps["available"] = live.call(
        "GET", f"{V1}/cases/{case}/events/available", lupe
    )
    agree = {
        "json": {"event": "respondent_agrees", "reason": "Note SE-17 of 8 January"},
        "headers": {"If-Match": opened.headers["ETag"], "Idempotency-Key": "se-17"},
    }
    walk.steps["agreed"] = agreed = live.call(
        "POST", f"{V1}/cases/{case}/events", lupe, **agree
    )
    walk.steps["repeated"] = live.call(
        "POST", f"{V1}/cases/{case}/events", lupe, **agree
    )
    walk.steps["stale"] = live.call(
        "POST",
        f"{V1}/cases/{case}/events",
        lupe,
        json={"event": "respondent_finds_no_denial"},
        headers={"If-Match": opened.headers["ETag"]},
    )
    review = next(
        d for d in agreed.json()["deadlines"] if d["key"] == "respondent_review"
    )
    walk.steps["extended"] = live.call(
        "POST",
        f"{V1}/cases/{case}/deadlines/respondent_review/extend",
        live.jwt("sam"),
        json={
            "new_date": (
                date.fromisoformat(review["due_date"]) + timedelta(days=15)
            ).isoformat(),
            "reason": "The Parties agreed to 15 more days (notes of 9 January)",
        },
        headers={"If-Match": agreed.headers["ETag"]},
    )
    for step, path in (
        ("history", f"{V1}/cases/{case}/history"),
        ("timeline", f"{V1}/cases/{case}/timeline.svg"),
    ):
        walk.steps[step] = live.call("GET", path, ana)


def _walk_transfer(live: LiveServer, walk: Walk) -> None:
    admin = walk.tokens["admin"]["token"]
    walk.steps["export"] = exported = live.call(
        "GET", f"{V1}/cases/{walk.case_id}/export", live.jwt("sam")
    )
    moved = exported.json()
    moved["case"]["external_ref"] = "USTR-2025-001-COPY"
    walk.steps["import"] = imported = live.call(
        "POST", f"{V1}/imports", admin, json=[moved]
    )
    walk.steps["reimport"] = live.call("POST", f"{V1}/imports", admin, json=[moved])
    copy = imported.json()["cases"][0]["case_id"]
    walk.steps["copy history"] = live.call(
        "GET", f"{V1}/cases/{copy}/history", walk.tokens["ana"]["token"]
    )


def _walk_errors(live: LiveServer, walk: Walk) -> None:
    ana = walk.tokens["ana"]["token"]
    walk.steps["404"] = live.call("GET", f"{V1}/cases/NO-SUCH-CASE", ana)
    walk.steps["409"] = live.call(
        "POST", f"{V1}/cases", ana, json=open_body("USTR-2025-001")
    )
    walk.steps["422"] = live.call(
        "POST",
        f"{V1}/cases/{walk.case_id}/events",
        ana,
        json={"event": "", "payload": "not an object"},
    )
    for step in ("readyz", "metrics"):
        walk.steps[step] = live.call("GET", f"/{step}")


@pytest.fixture(name="walk", scope="module")
def _walk(live: LiveServer) -> Walk:
    """Walk through the service once, as a new user would."""
    walk = Walk(
        tokens={
            "admin": create_token(live.db_url, "admin", "admin", "OPS"),
            "ana": create_token(live.db_url, "ana", "ustr", "OTLA"),
            "lupe": create_token(live.db_url, "lupe", "respondent", "SE"),
        }
    )
    _walk_case(live, walk)
    _walk_transfer(live, walk)
    _walk_errors(live, walk)
    return walk


def via(walk: Walk, who: str) -> str:
    """Return how history records a walkthrough token's use."""
    return f"token:{walk.tokens[who]['token_id']}"


class TestOpening:
    def test_answers_201_with_location_and_etag(self, walk):
        """The new case is at its Location, at version 1."""
        opened = walk["opened"]

        assert (opened.status_code, opened.headers["ETag"]) == (201, '"1"')
        assert opened.headers["Location"].endswith(f"/cases/{walk.case_id}")


class TestAvailableEvents:
    def test_lists_what_the_respondent_may_record(self, walk):
        """Mexico's officer may agree, decline or report, as the respondent only."""
        events = {e["event"]: e["roles"] for e in walk["available"].json()["events"]}

        assert events["respondent_agrees"] == ["respondent"]
        assert "request_for_review" not in events


class TestRecording:
    def test_records_under_if_match(self, walk):
        """The agreement moves the case on and its ETag to version 2."""
        agreed = walk["agreed"]

        assert (agreed.status_code, agreed.headers["ETag"]) == (200, '"2"')
        assert agreed.json()["state"] == "respondent_reviewing"

    def test_answers_a_repeat_with_the_same_case(self, walk):
        """The same Idempotency-Key gets the same case back."""
        repeated = walk["repeated"]

        assert repeated.status_code == 200
        assert repeated.json()["version"] == walk["agreed"].json()["version"]

    def test_records_a_repeat_once(self, walk):
        """The history holds the agreement once."""
        events = [e["event"] for e in walk["history"].json()["entries"]]

        assert events.count("respondent_agrees") == 1

    def test_refuses_a_stale_if_match(self, walk):
        """An If-Match of a version that moved on is 412, nothing recorded."""
        stale = walk["stale"]

        assert stale.status_code == 412
        assert (stale.json()["expected_version"], stale.json()["actual_version"]) == (
            1,
            2,
        )


class TestHistory:
    def test_names_each_principal_and_its_credential(self, walk):
        """Each entry's actor is who signed in; via is the token or the issuer."""
        entries = walk["history"].json()["entries"]

        assert [(e["actor"], e["via"]) for e in entries] == [
            ("ana", via(walk, "ana")),
            ("lupe", via(walk, "lupe")),
            ("sam", f"oidc:{ISSUER}"),
        ]


class TestExtension:
    def test_records_the_reason(self, walk):
        """The supervisor's extension is in the history with its reason."""
        last = walk["history"].json()["entries"][-1]

        assert (last["event"], last["role"], last["reason"]) == (
            "deadline_extended",
            "supervisor",
            "The Parties agreed to 15 more days (notes of 9 January)",
        )

    def test_moves_the_deadline(self, walk):
        """The review deadline is due 15 days later and counts one extension."""
        before = {d["key"]: d for d in walk["agreed"].json()["deadlines"]}
        after = {d["key"]: d for d in walk["extended"].json()["deadlines"]}

        moved = date.fromisoformat(after["respondent_review"]["due_date"])
        assert moved - date.fromisoformat(
            before["respondent_review"]["due_date"]
        ) == timedelta(days=15)
        assert after["respondent_review"]["extensions"] == 1

    def test_changes_the_etag(self, walk):
        """The ETag follows the case's version."""
        assert (walk["agreed"].headers["ETag"], walk["extended"].headers["ETag"]) == (
            '"2"',
            '"3"',
        )


class TestTimeline:
    def test_is_svg(self, walk):
        """The timeline is an SVG picture."""
        timeline = walk["timeline"]

        assert timeline.headers["content-type"].startswith("image/svg+xml")
        assert "<svg" in timeline.text[:300]
        assert timeline.text.rstrip().endswith("</svg>")


class TestTransfer:
    def test_exports_the_whole_record(self, walk):
        """The rrm-case/1 export holds the case and its three entries."""
        exported = walk["export"].json()

        assert (exported["format"], len(exported["history"])) == ("rrm-case/1", 3)

    def test_imports_the_history_again(self, walk):
        """The imported copy replays the same events under the same actors."""
        original = walk["history"].json()["entries"]
        copy = walk["copy history"].json()["entries"]

        assert walk["import"].json()["cases"][0]["outcome"] == "imported"
        assert [(e["event"], e["actor"], e["role"]) for e in copy] == [
            (e["event"], e["actor"], e["role"]) for e in original
        ]

    def test_importing_twice_changes_nothing(self, walk):
        """A second import of the same document finds the case unchanged."""
        assert walk["reimport"].json()["cases"][0]["outcome"] == "unchanged"


class TestOperations:
    def test_is_ready(self, walk):
        """The database answers at the schema the service needs."""
        assert walk["readyz"].json() == {"status": "ready"}

    def test_counts_requests_by_route_template(self, walk):
        """The metrics count the walkthrough's events by route, never by case."""
        text = walk["metrics"].text
        line = (
            'rrm_http_requests_total{method="POST",'
            'route="/api/v1/cases/{case}/events",status="200"}'
        )

        assert next(x for x in text.splitlines() if x.startswith(line)).split()[-1] == (
            "2.0"
        )
        assert walk.case_id not in text


class TestProblems:
    @pytest.mark.parametrize(
        ("step", "status"), [("404", 404), ("409", 409), ("412", 412), ("422", 422)]
    )
    def test_answers_problem_details(self, walk, step, status):
        """Errors are RFC 9457 problem details with the officer-readable message."""
        response = walk["stale" if step == "412" else step]

        assert response.status_code == status
        assert response.headers["content-type"] == PROBLEM
        body = response.json()
        assert (body["status"], bool(body["title"]), bool(body["detail"])) == (
            status,
            True,
            True,
        )

    @pytest.mark.parametrize("step", ["404", "409", "422", "stale"])
    def test_shows_no_traceback(self, walk, step):
        """No stack trace or source path leaks into an error."""
        text = walk[step].text

        assert not any(
            marker in text for marker in ("Traceback", 'File "', ".py", "rrm/")
        )
