"""A live case service on loopback for the API suites: uvicorn in a thread.

The service runs on the test's backend (a SQLite file, or a PostgreSQL schema of its
own with ``--rrm-postgres``), with an administrator token, an officer token and a
little data the generated requests can find: two cases, a calendar feed.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

import pytest
import uvicorn

import rrm
from rrm.adapters.sql.credentials import SqlCredentialStore
from rrm.domain.access import Principal
from rrm.server import ServerSettings, create_app
from rrm.service.access import AccessPolicy, Grant
from rrm.service.credentials import create_feed, create_token

if TYPE_CHECKING:
    from collections.abc import Iterator

    from fastapi import FastAPI

START_TIMEOUT_S = 10.0
OFFICER = "ana"


@dataclass(frozen=True, slots=True, kw_only=True)
class LiveService:
    """A running service and what the tests may use on it."""

    base_url: str
    app: FastAPI
    engine: rrm.CaseEngine
    admin_token: str
    officer_token: str
    case_ids: tuple[str, ...]
    external_refs: tuple[str, ...]
    facility_ids: tuple[str, ...]
    feed_secret: str

    def served(self) -> Counter[tuple[str, str, str]]:
        """Requests answered so far, by method, route template and status."""
        counts: Counter[tuple[str, str, str]] = Counter()
        for metric in self.app.state.metrics.collect():
            for sample in metric.samples:
                if sample.name == "rrm_http_requests_total":
                    key = (
                        sample.labels["method"],
                        sample.labels["route"],
                        sample.labels["status"],
                    )
                    counts[key] += int(sample.value)
        return counts


class ServerThread:
    """uvicorn serving *app* on a free loopback port, in a daemon thread."""

    def __init__(self, app: FastAPI) -> None:
        # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say
        # so, and without it every keep-alive request waits ~40 ms (Nagle against
        # delayed ACKs).
        self._socket = socket.socket(
            socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP
        )
        self._socket.bind(("127.0.0.1", 0))
        self.port: int = self._socket.getsockname()[1]
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            ws="none",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    def __enter__(self) -> Self:
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(START_TIMEOUT_S)
        self._socket.close()


def _open(engine: rrm.CaseEngine, i: int, officer: Principal) -> rrm.Case:
    return engine.open_case(
        rrm.OpenCase(
            workflow="usmca-31a",
            initiation="request",
            complainant="US",
            respondent="MX",
            facility=rrm.Facility(
                facility_id=f"fac-{i}",
                name=f"Plant {i}",
                owner="Acme",
                country=rrm.Party.MX,
            ),
            claim=rrm.Claim(
                basis="annex_23a_legislation", sector_category="manufacturing"
            ),
            external_ref=f"API-{i}",
            actor=officer.principal_id,
            role="ustr",
            officers=(
                rrm.Officer(
                    officer_id=officer.principal_id,
                    role="ustr",
                    email=f"{officer.principal_id}@ustr.example",
                ),
            ),
        ),
        principal=officer,
    )


@pytest.fixture(name="live")
def _live(
    db_url: str, clock: Any, workflows: Any, sql_engine_for: Any
) -> Iterator[LiveService]:
    """The case service on this test's database, listening on loopback."""
    sql = sql_engine_for(db_url)
    settings = ServerSettings(
        policy=AccessPolicy(
            grants=(Grant(role="ustr", agency="USTR", complainant="US"),)
        )
    )
    engine = rrm.bootstrap(
        sql, clock=clock, workflows=workflows, authorizer=settings.policy, upgrade=True
    )
    store = SqlCredentialStore(sql)
    now = clock.now()
    _, admin = create_token(
        store,
        principal="root",
        roles=("admin", "supervisor"),
        created_by="tests",
        now=now,
    )
    _, officer = create_token(
        store,
        principal=OFFICER,
        roles=("ustr",),
        agencies=("USTR",),
        created_by="tests",
        now=now,
    )
    ana = Principal(
        principal_id=OFFICER, roles=frozenset({"ustr"}), agencies=frozenset({"USTR"})
    )
    cases = [_open(engine, i, ana) for i in range(2)]
    _, feed = create_feed(store, officer_id=OFFICER, created_by="tests", now=now)
    app = create_app(engine, store, settings)
    with ServerThread(app) as server:
        yield LiveService(
            base_url=f"http://127.0.0.1:{server.port}",
            app=app,
            engine=engine,
            admin_token=admin,
            officer_token=officer,
            case_ids=tuple(c.case_id for c in cases),
            external_refs=tuple(c.external_ref for c in cases),
            facility_ids=tuple(c.facility.facility_id for c in cases),
            feed_secret=feed,
        )
