"""Fixtures of the case-service suite: a live server, a real identity provider, people.

Each test module gets one uvicorn server on 127.0.0.1 (a free port, a background
thread) over a database of its own: a temporary SQLite file, or a PostgreSQL schema
of its own with ``--rrm-postgres``. The server's engine enforces the service's
``AccessPolicy`` and reads a ``FakeClock``: tests move the clock, never sleep. Cases
are seeded by a second engine on the same database under the host's own check, as
a host system would record them.

The identity provider is real too: a JWKS served over HTTP on loopback from RSA keys
made for the session, and JWTs signed with PyJWT. Tests talk to the server with
``httpx``.
"""

from __future__ import annotations

import itertools
import json
import socket
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import httpx
import jwt
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric import rsa

import rrm
from rrm.adapters.email import SmtpNotifier, SmtpSettings
from rrm.adapters.sql.credentials import SqlCredentialStore
from rrm.adapters.sql.engine import make_engine
from rrm.adapters.webhooks import HttpWebhookSender
from rrm.server import OidcSettings, ServerSettings, create_app
from rrm.service import webhooks
from rrm.service.access import AccessPolicy, Grant
from rrm.service.credentials import create_token
from rrm.testing import FakeClock

from ..live import free_port, start_server  # noqa: TID252 - tests are not an installed package

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from contextlib import AbstractContextManager
    from pathlib import Path

    from fastapi import FastAPI

# Monday 2025-01-06 15:00 UTC, the suite's documented start (tests/conftest.py).
START = datetime(2025, 1, 6, 15, 0, tzinfo=UTC)
ISSUER = "https://idp.agency.test/realms/rrm"
AUDIENCE = "rrm-case-service"
KID = "rrm-test-key-1"
# Provider roles as an identity provider names them, and the RRM roles they give.
ROLE_MAP: dict[str, tuple[str, ...]] = {
    "rrm-ustr": ("ustr",),
    "rrm-mexico": ("respondent",),
    "rrm-dol": ("dol",),
    "rrm-supervisor": ("supervisor",),
    "rrm-admin": ("admin",),
}
# Every USTR officer may act as ustr on every case the United States brings.
GRANTS = (Grant(role="ustr", agency="USTR", complainant="US"),)
FACILITY = rrm.Facility(
    facility_id="MX-SRV-1",
    name="Planta Servicio",
    owner="Grupo Servicio",
    country=rrm.Party.MX,
    city="Silao",
    region="Guanajuato",
)
CLAIM = rrm.Claim(basis="annex_23a_legislation", sector_category="manufacturing")
CONFIDENTIAL = "Petra Confidencial"


@dataclass(frozen=True)
class Person:
    """Someone the service knows: an id, RRM roles and agencies."""

    principal: str
    roles: tuple[str, ...]
    agencies: tuple[str, ...] = ()

    @property
    def provider_roles(self) -> list[str]:
        """The identity provider's names for this person's roles."""
        return [p for p, ours in ROLE_MAP.items() if set(ours) & set(self.roles)]


#: The cast. Seeded cases assign ana (ustr), lupe (respondent), dana (dol) and
#: sam (supervisor); nobody else. Only gus is of the agency the grant covers.
CAST = {
    p.principal: p
    for p in (
        Person("admin", ("admin",)),
        Person("sam", ("supervisor",), ("OTLA",)),
        Person("sue", ("supervisor",), ("STPS",)),
        Person("ana", ("ustr",), ("OTLA",)),
        Person("bob", ("ustr",), ("OTLA",)),
        Person("gus", ("ustr",), ("USTR",)),
        Person("lupe", ("respondent",), ("SE",)),
        Person("mallory", ("respondent",), ("SE",)),
        Person("dana", ("dol",), ("OTLA",)),
        Person("nobody", ()),
    )
}
ASSIGNED = (
    rrm.Officer(officer_id="ana", role="ustr", email="ana@ustr.example"),
    rrm.Officer(officer_id="lupe", role="respondent", email="lupe@se.example"),
    rrm.Officer(officer_id="dana", role="dol", email="dana@dol.example"),
    rrm.Officer(officer_id="sam", role="supervisor", email="sam@ustr.example"),
)


# -- the identity provider -------------------------------------------------------


@dataclass(frozen=True)
class IdentityProvider:
    """An OpenID provider for the tests: its JWKS on loopback, its keys to sign."""

    jwks_url: str
    key: rsa.RSAPrivateKey
    rogue: rsa.RSAPrivateKey

    def jwt(
        self,
        person: Person,
        *,
        now: datetime,
        issuer: str = ISSUER,
        lifetime: timedelta = timedelta(hours=1),
        provider_roles: list[str] | None = None,
        forged: bool = False,
    ) -> str:
        """Return a signed JWT for *person*, valid for *lifetime* from *now*.

        *forged* signs with a key the JWKS does not hold, under the JWKS key's id.
        """
        claims = {
            "iss": issuer,
            "aud": AUDIENCE,
            "sub": person.principal,
            "iat": int(now.timestamp()),
            "exp": int((now + lifetime).timestamp()),
            "realm_access": {
                "roles": person.provider_roles
                if provider_roles is None
                else provider_roles
            },
            "agency": list(person.agencies),
        }
        key = self.rogue if forged else self.key
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": KID})

    def settings(self) -> OidcSettings:
        """The OIDC settings that trust this provider."""
        return OidcSettings(
            issuer=ISSUER,
            audience=AUDIENCE,
            jwks_url=self.jwks_url,
            roles_claim="realm_access.roles",
            role_map=ROLE_MAP,
            agency_claim="agency",
            principal_claim="sub",
        )


def _jwks_handler(body: bytes) -> type[BaseHTTPRequestHandler]:
    class Jwks(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            found = self.path == "/jwks.json"
            self.send_response(200 if found else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body) if found else 0))
            self.end_headers()
            if found:
                self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            """Keep the test output quiet."""

    return Jwks


@pytest.fixture(name="idp", scope="session")
def _idp() -> Iterator[IdentityProvider]:
    """A JWKS with one RSA key, served on loopback for the whole session."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rogue = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    body = json.dumps({"keys": [{**public, "kid": KID, "use": "sig", "alg": "RS256"}]})
    server = ThreadingHTTPServer(("127.0.0.1", 0), _jwks_handler(body.encode()))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        yield IdentityProvider(f"http://127.0.0.1:{port}/jwks.json", key, rogue)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


# -- the live server ---------------------------------------------------------------


@dataclass
class LiveServer:
    """A running case service and what the tests need around it."""

    url: str
    db_url: str
    app: FastAPI
    clock: FakeClock
    engine: rrm.CaseEngine
    seed: rrm.CaseEngine
    credentials: SqlCredentialStore
    sql: sa.Engine
    idp: IdentityProvider
    http: httpx.Client
    tokens: dict[str, str] = field(default_factory=dict)
    alert_pool: dict[str, list[str]] = field(default_factory=dict)
    memo: dict[str, Any] = field(default_factory=dict)
    _refs: Iterator[int] = field(default_factory=itertools.count)
    _hook: str = ""

    # -- credentials

    def token(self, name: str) -> str:
        """Return the module's API token of a cast member."""
        return self.tokens[name]

    def jwt(self, name: str, **changes: Any) -> str:
        """Return a JWT of a cast member, valid now by the engine's clock."""
        return self.idp.jwt(CAST[name], now=self.clock.now(), **changes)

    def new_token(self, name: str, *, expires_in: timedelta | None = None) -> str:
        """Issue another API token for a cast member."""
        return self.issue(CAST[name], expires_in=expires_in)

    def issue(self, person: Person, *, expires_in: timedelta | None = None) -> str:
        """Issue an API token for anyone."""
        _, text = create_token(
            self.credentials,
            principal=person.principal,
            roles=person.roles,
            agencies=person.agencies,
            expires_in=expires_in,
            created_by="tests",
            now=self.clock.now(),
        )
        return text

    # -- requests

    def call(
        self, method: str, path: str, credential: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        """Send one request, with ``Authorization: Bearer <credential>`` if given."""
        headers = dict(kwargs.pop("headers", None) or {})
        if credential is not None:
            headers["Authorization"] = f"Bearer {credential}"
        return self.http.request(method, path, headers=headers, **kwargs)

    # -- seeding

    def ref(self, prefix: str) -> str:
        """Return a case reference no other test uses."""
        return f"{prefix}-{next(self._refs)}"

    def open_case(
        self,
        prefix: str = "SRV",
        *,
        officers: tuple[rrm.Officer, ...] = ASSIGNED,
        at: datetime | None = None,
    ) -> rrm.Case:
        """Open a U.S.-to-Mexico request for review as the host would."""
        return self.seed.open_case(
            rrm.OpenCase(
                workflow="usmca-31a",
                initiation="request",
                complainant="US",
                respondent="MX",
                facility=FACILITY,
                claim=CLAIM,
                petitioners=(rrm.Petitioner(name=CONFIDENTIAL, confidential=True),),
                officers=officers,
                external_ref=self.ref(prefix),
                actor="ana",
                role="ustr",
                at=at,
            )
        )

    def shared_case(self) -> rrm.Case:
        """Return a case that tests only read (opened once per module)."""
        if "shared" not in self.memo:
            self.memo["shared"] = self.open_case("SHARED")
        found: rrm.Case = self.memo["shared"]
        return found

    def failed_alert(self, recipient: str) -> str:
        """Return a failed alert to *recipient* that no test has taken yet."""
        return self.alert_pool[recipient].pop()

    def _fill_alert_pool(self) -> None:
        """Queue reminders that fail: two cases, a day on, and a mail server that is down.

        Reminders are owed 7 business days before the respondent's 10-day answer
        deadline, so a day after the opening; the seeding engine's mail server does
        not listen, so every reminder fails and waits for a retry.
        """
        for _ in range(2):
            self.open_case("ALERT")
        self.clock.advance(timedelta(days=1))
        self.seed.tick()
        for alert in self.seed.alerts(status=("failed", "dead")):
            self.alert_pool.setdefault(alert.recipient_id, []).append(alert.alert_id)

    def dead_delivery(self) -> str:
        """Return the id of a new webhook delivery that was dead-lettered."""
        if not self._hook:
            self._hook = webhooks.create_subscription(
                self.seed.uow_factory,
                url=f"http://127.0.0.1:{free_port()}/hook",
                event_types=["deadline.resumed"],
                now=self.clock.now(),
                created_by="tests",
            ).subscription_id
        case = self.paused_case("HOOK")
        self.seed.resume(
            rrm.ResumeDeadline(
                case_id=case.case_id,
                key="respondent_answer",
                actor="sam",
                role="supervisor",
                reason="talks over",
            )
        )
        with HttpWebhookSender(timeout=2) as sender:
            webhooks.deliver_webhooks(
                self.seed.uow_factory,
                sender,
                now=self.clock.now(),
                settings=webhooks.WebhookSettings(max_attempts=1),
            )
        found = webhooks.list_deliveries(
            self.seed.uow_factory, status=["dead"], case_id=case.case_id
        )
        return found[0].delivery_id

    def paused_case(self, prefix: str = "PAUSED") -> rrm.Case:
        """Open a case and pause its respondent_answer deadline."""
        case = self.open_case(prefix)
        return self.seed.pause(
            rrm.PauseDeadline(
                case_id=case.case_id,
                key="respondent_answer",
                actor="sam",
                role="supervisor",
                reason="talks under way",
            )
        )

    def subscription(self) -> str:
        """Return the id of a new webhook subscription (to an endpoint that is down)."""
        return webhooks.create_subscription(
            self.seed.uow_factory,
            url=f"http://127.0.0.1:{free_port()}/hook",
            event_types=["deadline.met"],
            now=self.clock.now(),
            created_by="tests",
        ).subscription_id

    # -- what the database holds

    def fingerprint(self) -> dict[str, Any]:
        """Return what a write would change: row counts, case versions, small tables.

        Every write to a case appends a history entry and bumps the case's version;
        alerts, tokens, feeds and webhooks change in place, so their rows are kept
        whole.
        """
        with self.sql.connect() as conn:
            tables = sorted(
                t for t in sa.inspect(conn).get_table_names() if t.startswith("rrm_")
            )
            found: dict[str, Any] = {
                t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()
                for t in tables
            }
            found["versions"] = sorted(
                conn.execute(sa.text("SELECT case_id, version FROM rrm_case")).all()
            )
            for t in (
                "rrm_alert",
                "rrm_api_token",
                "rrm_calendar_feed",
                "rrm_webhook_subscription",
                "rrm_webhook_delivery",
            ):
                rows = conn.execute(sa.text(f"SELECT * FROM {t}")).all()
                found[f"{t}:rows"] = sorted(map(repr, rows))
        return found


@pytest.fixture(name="live", scope="module")
def _live(
    module_backend: str,
    tmp_path_factory: pytest.TempPathFactory,
    database_url_for: Callable[[str, Path], AbstractContextManager[str]],
    idp: IdentityProvider,
    workflows: rrm.Workflows,
) -> Iterator[LiveServer]:
    """The case service on loopback, over a database of this module's own."""
    folder = tmp_path_factory.mktemp("server")
    with database_url_for(module_backend, folder) as url:
        sql = make_engine(url)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        base = f"http://127.0.0.1:{sock.getsockname()[1]}"
        clock = FakeClock(START)
        settings = ServerSettings(
            policy=AccessPolicy(grants=GRANTS), oidc=idp.settings(), public_url=base
        )
        engine = rrm.bootstrap(
            sql,
            clock=clock,
            workflows=workflows,
            authorizer=settings.policy,
            upgrade=True,
        )
        seed = rrm.bootstrap(
            sql,
            clock=clock,
            workflows=workflows,
            notifier=SmtpNotifier(
                SmtpSettings(
                    host="127.0.0.1",
                    port=free_port(),
                    security="none",
                    sender_address="rrm@agency.example",
                    timeout=2,
                )
            ),
        )
        credentials = SqlCredentialStore(sql)
        app = create_app(engine, credentials, settings)
        server, thread = start_server(app, sock)
        http = httpx.Client(base_url=base, timeout=30, trust_env=False)
        live = LiveServer(
            url=base,
            db_url=url,
            app=app,
            clock=clock,
            engine=engine,
            seed=seed,
            credentials=credentials,
            sql=sql,
            idp=idp,
            http=http,
        )
        for name, person in CAST.items():
            if person.roles:
                live.tokens[name] = live.new_token(name)
        live._fill_alert_pool()
        try:
            yield live
        finally:
            http.close()
            server.should_exit = True
            thread.join(timeout=10)
            sock.close()
            sql.dispose()
