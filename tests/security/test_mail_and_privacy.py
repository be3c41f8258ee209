"""Confidential petitioners stay inside RRM; case data cannot forge e-mail headers.

End to end, through the engine and a real SMTP server on loopback (aiosmtpd):

- a confidential petitioner's name and contact never reach the logs (a whole
  lifecycle: open, refusals, fires, tolling, lapses, alerts, import of an export),
  the e-mails, the CLI's human output of ``deadlines`` and ``alerts``, or any
  error message about a malformed petitioner;
- CR/LF in a facility name or city, a case reference, an officer's id or name, or a
  workflow's deadline label yields no extra header and no extra recipient.

Not repeated here: the renderer-level injection and privacy tests of
tests/integration/test_email.py (``TestHeaderInjection``, ``TestPrivacy``), the
ladder-wide petitioner name check of tests/integration/test_alerts.py, the
open/fire log check of tests/contract/test_engine.py, and the ``case
show/list/history`` check of tests/cli/test_case_cli.py.
"""

from __future__ import annotations

import email
import io
import re
import shutil
import socket
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import policy
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from structlog.testing import capture_logs

import rrm
from rrm.adapters.email import SmtpNotifier, SmtpSettings
from rrm.cli import main
from rrm.service.transfer import export_case, import_cases
from rrm.testing import FakeClock, skip

SECRET = "Xochitl Confidencial Ramirez"
CONTACT = "xochitl.secret@private.example"
INJECT = "\r\nBcc: evil@attacker.example\r\nX-Injected: yes"
START = datetime(2025, 1, 6, 15, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Recorder:
    envelopes: list[Any] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        return "250 OK"


@pytest.fixture(name="smtp")
def _smtp() -> Any:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    handler = Recorder()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, handler
    finally:
        controller.stop()


def mail_engine(url: Any, clock: Any, port: int, workflows: Any = None) -> Any:
    notifier = SmtpNotifier(
        SmtpSettings(
            host="127.0.0.1",
            port=port,
            security="none",
            sender_address="rrm@agency.example",
            timeout=5,
        )
    )
    return rrm.bootstrap(
        url,
        clock=clock,
        workflows=workflows or rrm.load_workflows(),
        upgrade=True,
        notifier=notifier,
        alert_settings=rrm.AlertSettings(admin_address="admin@rrm.example"),
        link_template="https://cases.example/{case_id}",
    )


def open_cmd(ref: str = "PRIV-1", **kw: Any) -> rrm.OpenCase:
    base: dict[str, Any] = {
        "workflow": "usmca-31a",
        "initiation": "request",
        "complainant": "US",
        "respondent": "MX",
        "facility": rrm.Facility(
            facility_id=f"MX-{ref}",
            name="Planta",
            owner="Grupo",
            country=rrm.Party.MX,
            city="Silao",
        ),
        "claim": rrm.Claim(
            basis="annex_23a_legislation", sector_category="manufacturing"
        ),
        "petitioners": (
            rrm.Petitioner(name=SECRET, confidential=True, contact=CONTACT),
            rrm.Petitioner(name="Sindicato Publico"),
        ),
        "officers": (
            rrm.Officer(officer_id="ana", role="ustr", email="ana@ustr.example"),
            rrm.Officer(officer_id="sam", role="supervisor", email="sam@ustr.example"),
        ),
        "external_ref": ref,
        "actor": "officer:ana",
        "role": "ustr",
    }
    base.update(kw)
    return rrm.OpenCase(**base)


def raw_mail(handler: Recorder) -> bytes:
    return b"\n".join(e.content for e in handler.envelopes)


def assert_clean(handler: Recorder, recipients: set[str]) -> None:
    """No extra header, no extra recipient, in any message sent."""
    assert handler.envelopes, "no e-mail was sent"
    for envelope in handler.envelopes:
        assert set(envelope.rcpt_tos) <= recipients, envelope.rcpt_tos
        message = email.message_from_bytes(envelope.content, policy=policy.default)
        header_block = envelope.content.split(b"\r\n\r\n", 1)[0].decode(
            "ascii", "replace"
        )
        assert not re.search(
            r"^(bcc|x-injected):", header_block, re.IGNORECASE | re.MULTILINE
        )
        assert message["Bcc"] is None
        assert message["X-Injected"] is None
        to = {a.addr_spec for a in message["To"].addresses}
        assert to <= recipients
        assert message["Cc"] is None


class TestPrivacy:
    def test_lifecycle_logs_never_name_the_petitioner(self, smtp):
        """Open, refusals, fires, tolling, lapses, alerts, import: no name, no contact."""
        port, handler = smtp
        clock = FakeClock(START)
        engine = mail_engine("sqlite://", clock, port)
        with capture_logs() as logs:
            case = engine.open_case(open_cmd())
            for bad in (
                open_cmd(),  # duplicate reference
                open_cmd("PRIV-2", role="respondent"),
                open_cmd(
                    "PRIV-3",
                    petitioners=(
                        rrm.Petitioner(name=SECRET + "\x00", confidential=True),
                    ),
                ),
            ):
                with pytest.raises(rrm.RRMError):
                    engine.open_case(bad)
            clock.advance(timedelta(days=1))
            engine.pause(
                rrm.PauseDeadline(
                    case_id=case.case_id,
                    key="respondent_answer",
                    actor="ana",
                    role="ustr",
                    reason="closure",
                )
            )
            clock.advance(timedelta(days=1))
            engine.resume(
                rrm.ResumeDeadline(
                    case_id=case.case_id,
                    key="respondent_answer",
                    actor="ana",
                    role="ustr",
                    reason="reopened",
                )
            )
            skip(engine, clock, to=datetime(2025, 1, 25, tzinfo=UTC))
            exported = export_case(engine, case.case_id)
            other = rrm.bootstrap(
                "sqlite://",
                clock=FakeClock(datetime(2025, 2, 1, tzinfo=UTC)),
                upgrade=True,
            )
            import_cases(other, [exported])
        assert logs
        text = repr(logs)
        assert SECRET not in text
        assert CONTACT not in text
        assert "xochitl" not in text.lower()
        sent = raw_mail(handler)
        assert sent
        assert SECRET.encode() not in sent
        assert CONTACT.encode() not in sent
        assert b"xochitl" not in sent.lower()

    @pytest.mark.parametrize(
        "petitioner",
        [
            rrm.Petitioner(name=SECRET + "\x00", confidential=True),
            rrm.Petitioner(name=SECRET + "\ud800", confidential=True),
            rrm.Petitioner(name=SECRET, confidential="yes"),
            rrm.Petitioner(name=SECRET, confidential=True, contact=7),
            rrm.Petitioner(name=SECRET, confidential=True, contact=CONTACT + "\x00"),
            rrm.Petitioner(name=SECRET, contact=["list"]),
        ],
        ids=["nul", "surrogate", "flag", "contact-type", "contact-nul", "contact-list"],
    )
    def test_errors_about_a_petitioner_do_not_quote_it(self, engine, petitioner):
        with pytest.raises(rrm.InvalidInput) as info:
            engine.open_case(open_cmd(petitioners=(petitioner,)))
        message = f"{info.value} {info.value.hint or ''} {info.value!r}"
        assert SECRET not in message
        assert CONTACT not in message
        assert engine.find() == []

    def test_cli_deadlines_and_alerts_never_show_the_petitioner(
        self, tmp_path, monkeypatch
    ):
        """Human and JSON output of deadlines, alerts, audit and case reads."""
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("COLUMNS", "250")
        monkeypatch.setenv("RRM_VERBOSE", "1")
        url = f"sqlite:///{tmp_path / 'p.sqlite'}"
        # The engine with a fake clock fills the outbox; the CLI only reads it.
        clock = FakeClock(START)
        engine = rrm.bootstrap(url, clock=clock, upgrade=True)
        case = engine.open_case(open_cmd())
        clock.advance(timedelta(days=9))
        engine.tick()
        assert engine.alerts()
        ref = case.external_ref
        commands = [
            ["deadlines"],
            ["deadlines", "--within", "3660"],
            ["deadlines", "--overdue"],
            ["deadlines", "--json"],
            ["alerts"],
            ["alerts", "--json"],
            ["alerts", "--case", ref],
            ["audit", "verify"],
            ["case", "show", ref, "--timeline"],
            ["case", "history", ref],
            ["case", "fire", ref, "nope", "--actor", "x", "--role", "ustr"],
            ["case", "extend", ref, "nope", "--to", "2030-01-01", "--reason", "r",
             "--actor", "x", "--role", "ustr"],
        ]  # fmt: skip
        for argv in commands:
            out, err = io.StringIO(), io.StringIO()
            with redirect_stdout(out), redirect_stderr(err):
                code = main([*argv, "--db", url])
            shown = out.getvalue() + err.getvalue()
            assert code in {0, 1}, (argv, shown)
            assert SECRET not in shown, argv
            assert CONTACT not in shown, argv


class TestHeaderInjection:
    @pytest.mark.parametrize(
        "where", ["facility_name", "facility_city", "case_ref", "officer_name"]
    )
    def test_case_data_adds_no_header_or_recipient(self, smtp, where):
        port, handler = smtp
        clock = FakeClock(START)
        engine = mail_engine("sqlite://", clock, port)
        facility = rrm.Facility(
            facility_id="MX-INJ",
            name="Planta" + (INJECT if where == "facility_name" else ""),
            owner="Grupo",
            country=rrm.Party.MX,
            city="Silao" + (INJECT if where == "facility_city" else ""),
        )
        officers = (
            rrm.Officer(
                officer_id="ana",
                role="ustr",
                name="Ana" + (INJECT if where == "officer_name" else ""),
                email="ana@ustr.example",
            ),
        )
        ref = "INJ-1" + (INJECT if where == "case_ref" else "")
        try:
            engine.open_case(open_cmd(ref, facility=facility, officers=officers))
        except rrm.InvalidInput:
            return  # refusing the value is a fine answer too
        skip(engine, clock, to=datetime(2025, 1, 20, tzinfo=UTC))
        assert_clean(handler, {"ana@ustr.example", "admin@rrm.example"})
        assert b"evil@attacker.example" not in b"".join(
            e.content.split(b"\r\n\r\n", 1)[0] for e in handler.envelopes
        )

    def test_deadline_label_adds_no_header_or_recipient(self, smtp, tmp_path):
        """A host's own workflow whose deadline label carries CR/LF."""
        port, handler = smtp
        folder = tmp_path / "defs"
        shutil.copytree(REPO / "workflows" / "usmca-31a", folder / "usmca-31a")
        path = folder / "usmca-31a" / "v1.toml"
        text = path.read_text("utf-8")
        start = text.index("[deadlines.respondent_answer]")
        label_at = text.index("label = ", start)
        end = text.index("\n", label_at)
        text = (
            text[:label_at]
            + 'label = "Answer\\r\\nBcc: evil@attacker.example\\r\\nX-Injected: yes"'
            + text[end:]
        )
        path.write_text(text, "utf-8")
        try:
            workflows = rrm.load_workflows(folder)
        except rrm.InvalidWorkflow:
            return  # refusing the label is a fine answer too
        clock = FakeClock(START)
        engine = mail_engine("sqlite://", clock, port, workflows)
        engine.open_case(
            open_cmd(
                officers=(
                    rrm.Officer(
                        officer_id="ana", role="ustr", email="ana@ustr.example"
                    ),
                )
            )
        )
        skip(engine, clock, to=datetime(2025, 1, 20, tzinfo=UTC))
        assert_clean(handler, {"ana@ustr.example", "admin@rrm.example"})

    def test_officer_email_with_crlf_is_refused_or_harmless(self, smtp):
        port, handler = smtp
        clock = FakeClock(START)
        engine = mail_engine("sqlite://", clock, port)
        officer = rrm.Officer(
            officer_id="ana", role="ustr", email="ana@ustr.example" + INJECT
        )
        try:
            engine.open_case(open_cmd(officers=(officer,)))
        except rrm.InvalidInput:
            return
        skip(engine, clock, to=datetime(2025, 1, 20, tzinfo=UTC))
        for envelope in handler.envelopes:
            assert "evil@attacker.example" not in envelope.rcpt_tos
