"""Fixtures for the e-mail adapter: alert views, a real SMTP server on loopback, TLS.

The SMTP server is aiosmtpd's threaded ``Controller`` bound to 127.0.0.1 on a free
port. Its handler records every delivered envelope and can refuse chosen recipients
with a given reply. TLS certificates are self-signed and made per session with the
``openssl`` command.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from rrm.domain.alerts import AlertKind, AlertView, DigestItem, DigestView

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

SENT_AT = datetime(2025, 1, 13, 14, 0, tzinfo=UTC)
USER = "rrm-mailer"
PASSWORD = "correct horse battery staple"


def make_view(**changes: Any) -> AlertView:
    """Return an alert view for a nominal (R) deadline, with *changes* applied."""
    base: dict[str, Any] = {
        "alert_id": "alert:c-1:dl-42:before-3",
        "message_id": "<alert.c-1.dl-42.before-3@rrm.invalid>",
        "kind": AlertKind.REMINDER,
        "step": "before-3@2025-01-16",
        "days_before": 3,
        "repeat": 0,
        "late": False,
        "recipient_name": "Ana Ruiz",
        "recipient_email": "ana.ruiz@dol.example",
        "recipient_role": "officer",
        "language": "en",
        "timezone": "America/Mexico_City",
        "case_id": "c-1",
        "case_ref": "RRM-2025-001",
        "workflow_title": "Annex 31-A: United States requests review of a facility "
        "in Mexico",
        "annex": "31-A",
        "state_label": "Panel requested; panelists being selected by lot",
        "complainant": "US",
        "respondent": "MX",
        "facility_name": "Planta Silao",
        "facility_city": "Silao",
        "facility_region": "Guanajuato",
        "facility_country": "MX",
        "deadline_id": "dl-42",
        "deadline_key": "panel_composition",
        "deadline_label": "Panelists selected by lot",
        "deadline_actor": "secretariat",
        "due_date": date(2025, 1, 16),
        "due_at": datetime(2025, 1, 17, 6, 0, tzinfo=UTC),
        "deadline_timezone": "America/Mexico_City",
        "explanation": "3 business days from the panel request.",
        "citation": "USMCA Annex 31-A, Arts. 31-A.3 and 31-A.5",
        "evidence": "R",
        "nominal": True,
        "expected_action": "Confirm the panelists with the Secretariat.",
        "link": "",
        "calendar_sequence": 2,
    }
    base.update(changes)
    return AlertView(**base)


def make_digest_view(**changes: Any) -> DigestView:
    """Return a digest for Thursday 2025-01-16: 2 overdue, 1 due today, 2 upcoming."""

    def item(key: str, status: str, day: date, **more: Any) -> DigestItem:
        fields: dict[str, Any] = {
            "case_id": "c-1",
            "case_ref": "RRM-2025-001",
            "facility_name": "Planta Silao",
            "state_label": "Panel requested; panelists being selected by lot",
            "deadline_key": key,
            "deadline_label": key.replace("_", " ").capitalize(),
            "due_date": day,
            # The end of the due day in Mexico City (UTC-06:00).
            "due_at": datetime.combine(day, datetime.min.time(), UTC)
            + timedelta(days=1, hours=6),
            "deadline_timezone": "America/Mexico_City",
            "status": status,
            "nominal": False,
            "explanation": f"What {key} means.",
        }
        fields.update(more)
        return DigestItem(**fields)

    base: dict[str, Any] = {
        "alert_id": "digest:off-7:2025-01-16",
        "message_id": "<digest.off-7.2025-01-16@rrm.invalid>",
        "recipient_email": "ana.ruiz@dol.example",
        "recipient_id": "off-7",
        "language": "en",
        "timezone": "America/Mexico_City",
        "day": date(2025, 1, 16),
        "horizon_days": 14,
        "items": (
            item("request_response", "overdue", date(2025, 1, 14)),
            item(
                "remediation_plan",
                "overdue",
                date(2025, 1, 10),
                case_id="c-2",
                case_ref="RRM-2024-017",
                facility_name="Fábrica Puebla",
            ),
            item("panel_composition", "due_today", date(2025, 1, 16), nominal=True),
            item("panel_verification", "upcoming", date(2025, 1, 21)),
            item(
                "determination",
                "upcoming",
                date(2025, 1, 24),
                case_id="c-3",
                case_ref="RRM-2025-004",
                facility_name="Usine Windsor",
                due_at=datetime(2025, 1, 25, 5, 0, tzinfo=UTC),
                deadline_timezone="America/Toronto",
            ),
        ),
    }
    base.update(changes)
    return DigestView(**base)


def free_port() -> int:
    """Return a loopback TCP port that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Recorder:
    """An aiosmtpd handler that stores envelopes and refuses chosen recipients."""

    envelopes: list[Any] = field(default_factory=list)
    rcpt_replies: dict[str, str] = field(default_factory=dict)
    data_reply: str = ""
    logins: list[bytes] = field(default_factory=list)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address in self.rcpt_replies:
            return self.rcpt_replies[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_reply:
            return self.data_reply
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login == USER.encode()
            and data.password == PASSWORD.encode()
        )
        if ok:
            self.logins.append(data.login)
        return AuthResult(success=ok, handled=False)


@dataclass
class Server:
    """A running test SMTP server."""

    port: int
    handler: Recorder


def _serve(handler: Recorder, **params: Any) -> Iterator[Server]:
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, **params)
    controller.start()
    try:
        yield Server(port=port, handler=handler)
    finally:
        controller.stop()


@pytest.fixture(name="smtp_server")
def _smtp_server() -> Iterator[Server]:
    """A plain SMTP server (no TLS, no login) on loopback."""
    yield from _serve(Recorder())


@dataclass(frozen=True)
class Certificate:
    """A self-signed certificate for 127.0.0.1 and the contexts that use it."""

    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert))


@pytest.fixture(name="certificate", scope="session")
def _certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return Certificate(cert=cert, key=key)


@pytest.fixture(name="starttls_server")
def _starttls_server(certificate: Certificate) -> Iterator[Server]:
    """A server that requires STARTTLS and a login (only over TLS)."""
    handler = Recorder()
    yield from _serve(
        handler,
        tls_context=certificate.server_context(),
        require_starttls=True,
        authenticator=handler.authenticate,
        auth_require_tls=True,
    )


@pytest.fixture(name="smtps_server")
def _smtps_server(certificate: Certificate) -> Iterator[Server]:
    """A server that speaks TLS from the first byte (SMTPS)."""
    yield from _serve(Recorder(), ssl_context=certificate.server_context())
