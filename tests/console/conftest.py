"""Fixtures of the console suites: a live ``rrm serve`` app, its people, a real IdP.

Each test module gets one uvicorn server on 127.0.0.1 over a database of its own
(a temporary SQLite file, or a PostgreSQL schema of its own with
``--rrm-postgres``), an OpenID Connect provider on loopback
(:mod:`oidc_provider`), and API tokens for a cast of officers. The server's
engine enforces the service's ``AccessPolicy`` and reads a ``FakeClock``; cases
are seeded by a second engine on the same database, as a host system would.
"""

from __future__ import annotations

import itertools
import re
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import sqlalchemy as sa

import rrm
from rrm.adapters.sql.credentials import SqlCredentialStore
from rrm.adapters.sql.engine import make_engine
from rrm.server import OidcSettings, ServerSettings, create_app
from rrm.service.access import AccessPolicy
from rrm.service.credentials import create_token
from rrm.testing import FakeClock

from ..live import start_server  # noqa: TID252 - tests are not an installed package
from .oidc_provider import OidcProvider, start_provider

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from contextlib import AbstractContextManager
    from pathlib import Path

    from fastapi import FastAPI

# Monday 2025-01-06 15:00 UTC, the suite's documented start (tests/conftest.py).
START = datetime(2025, 1, 6, 15, 0, tzinfo=UTC)
CLIENT_ID = "rrm-console"
CLIENT_SECRET = "console-secret-for-tests"
ROLE_MAP: dict[str, tuple[str, ...]] = {
    "rrm-ustr": ("ustr",),
    "rrm-mexico": ("respondent",),
    "rrm-dol": ("dol",),
    "rrm-supervisor": ("supervisor",),
    "rrm-admin": ("admin",),
}
FACILITY = rrm.Facility(
    facility_id="MX-CON-1",
    name="Planta Consola",
    owner="Grupo Consola",
    country=rrm.Party.MX,
    city="Silao",
    region="Guanajuato",
)
CLAIM = rrm.Claim(basis="annex_23a_legislation", sector_category="manufacturing")
CONFIDENTIAL = "Petra Confidencial"


@dataclass(frozen=True)
class Person:
    """Someone the console knows: an id, RRM roles and agencies."""

    principal: str
    roles: tuple[str, ...]
    agencies: tuple[str, ...] = ()


#: Seeded cases assign ana (ustr), lupe (respondent) and sam (supervisor).
CAST = {
    p.principal: p
    for p in (
        Person("admin", ("admin",)),
        Person("sam", ("supervisor",), ("OTLA",)),
        Person("ana", ("ustr",), ("USTR",)),
        Person("lupe", ("respondent",), ("SE",)),
        Person("mallory", ("respondent",), ("SE",)),
        Person("nobody", ()),
    )
}
ASSIGNED = (
    rrm.Officer(officer_id="ana", role="ustr", email="ana@ustr.example"),
    rrm.Officer(officer_id="lupe", role="respondent", email="lupe@se.example"),
    rrm.Officer(officer_id="sam", role="supervisor", email="sam@ustr.example"),
)
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """Return the CSRF token of the first form of a page."""
    found = _CSRF.search(html)
    assert found is not None, "the page has no form with a CSRF token"
    return found.group(1)


@dataclass
class Console:
    """A running console and what the tests need around it."""

    url: str
    db_url: str
    app: FastAPI
    clock: FakeClock
    seed: rrm.CaseEngine
    credentials: SqlCredentialStore
    sql: sa.Engine
    provider: OidcProvider
    tokens: dict[str, str] = field(default_factory=dict)
    clients: list[httpx.Client] = field(default_factory=list)
    _refs: Iterator[int] = field(default_factory=itertools.count)

    # -- browsers without a browser

    def client(self) -> httpx.Client:
        """A new HTTP client with its own cookie jar (one "browser")."""
        client = httpx.Client(
            base_url=self.url, timeout=30, trust_env=False, follow_redirects=False
        )
        self.clients.append(client)
        return client

    def sign_in(
        self, client: httpx.Client, name: str, *, next_path: str | None = None
    ) -> httpx.Response:
        """Sign *client* in as a cast member with an API token, as the form does."""
        page = client.get("/sign-in", params={"next": next_path} if next_path else {})
        return client.post(
            "/sign-in",
            data={
                "csrf_token": csrf_of(page.text),
                "token": self.tokens[name],
                "next": next_path or "",
            },
            headers={"Origin": self.url},
        )

    def signed_in(self, name: str) -> httpx.Client:
        """A new client signed in as a cast member."""
        client = self.client()
        answer = self.sign_in(client, name)
        assert answer.status_code == 303, answer.text
        return client

    def post(
        self, client: httpx.Client, path: str, data: dict[str, Any], *, page: str = ""
    ) -> httpx.Response:
        """POST a form as the page at *page* (default: *path*'s case page) would."""
        html = client.get(page or "/work").text
        return client.post(
            path,
            data={"csrf_token": csrf_of(html), **data},
            headers={"Origin": self.url},
        )

    # -- seeding

    def ref(self, prefix: str) -> str:
        """Return a case reference no other test uses."""
        return f"{prefix}-{next(self._refs)}"

    def open_case(
        self,
        prefix: str = "CON",
        *,
        officers: tuple[rrm.Officer, ...] = ASSIGNED,
        facility: rrm.Facility = FACILITY,
        at: datetime | None = None,
    ) -> rrm.Case:
        """Open a U.S.-to-Mexico request for review as the host would."""
        return self.seed.open_case(
            rrm.OpenCase(
                workflow="usmca-31a",
                initiation="request",
                complainant="US",
                respondent="MX",
                facility=facility,
                claim=CLAIM,
                petitioners=(rrm.Petitioner(name=CONFIDENTIAL, confidential=True),),
                officers=officers,
                external_ref=self.ref(prefix),
                actor="ana",
                role="ustr",
                at=at,
            )
        )

    def fingerprint(self) -> dict[str, Any]:
        """Return what a write would change: row counts and case versions."""
        with self.sql.connect() as conn:
            tables = sorted(
                t
                for t in sa.inspect(conn).get_table_names()
                if t.startswith("rrm_") and t != "rrm_console_session"
            )
            found: dict[str, Any] = {
                t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()
                for t in tables
            }
            found["versions"] = sorted(
                conn.execute(sa.text("SELECT case_id, version FROM rrm_case")).all()
            )
            found["deadlines"] = sorted(
                map(
                    repr,
                    conn.execute(
                        sa.text(
                            "SELECT deadline_id, status, due_date FROM rrm_deadline"
                        )
                    ).all(),
                )
            )
            found["alerts"] = sorted(
                map(repr, conn.execute(sa.text("SELECT * FROM rrm_alert")).all())
            )
        return found


@pytest.fixture(name="console", scope="module")
def _console(
    module_backend: str,
    tmp_path_factory: pytest.TempPathFactory,
    database_url_for: Callable[[str, Path], AbstractContextManager[str]],
    workflows: rrm.Workflows,
) -> Iterator[Console]:
    """The console on loopback, over a database of this module's own."""
    folder = tmp_path_factory.mktemp("console")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with (
        database_url_for(module_backend, folder) as url,
        start_provider(
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            redirect_uris=[f"{base}/sign-in/oidc/callback"],
        ) as provider,
    ):
        sql = make_engine(url)
        clock = FakeClock(START)
        settings = ServerSettings(
            policy=AccessPolicy(),
            oidc=OidcSettings(
                issuer=provider.issuer,
                audience="rrm-case-service",
                jwks_url=provider.jwks_uri,
                roles_claim="realm_access.roles",
                role_map=ROLE_MAP,
                client_id=CLIENT_ID,
                client_secret=CLIENT_SECRET,
            ),
            public_url=base,
            session_secret="a session key of the console tests",
        )
        engine = rrm.bootstrap(
            sql,
            clock=clock,
            workflows=workflows,
            authorizer=settings.policy,
            upgrade=True,
        )
        seed = rrm.bootstrap(sql, clock=clock, workflows=workflows)
        credentials = SqlCredentialStore(sql)
        app = create_app(engine, credentials, settings)
        server, thread = start_server(app, sock)
        console = Console(
            url=base,
            db_url=url,
            app=app,
            clock=clock,
            seed=seed,
            credentials=credentials,
            sql=sql,
            provider=provider,
        )
        for name, person in CAST.items():
            if not person.roles:
                continue  # signs in through the identity provider only
            _, console.tokens[name] = create_token(
                credentials,
                principal=person.principal,
                roles=person.roles,
                agencies=person.agencies,
                created_by="tests",
                now=clock.now(),
            )
        try:
            yield console
        finally:
            for client in console.clients:
                client.close()
            server.should_exit = True
            thread.join(timeout=10)
            sock.close()
            sql.dispose()
