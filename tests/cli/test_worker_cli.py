"""``rrm worker``: one tick with ``--once``, options from the environment, signals."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from aiosmtpd.controller import Controller

import rrm
from rrm.cli import main
from rrm.testing import FakeClock

if TYPE_CHECKING:
    from collections.abc import Iterator

REPO_ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "s3cret-never-shown"
SENDER = "alerts@rrm.example.gov"


class Inbox:
    """An aiosmtpd handler that keeps every delivered envelope."""

    def __init__(self) -> None:
        self.envelopes: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"


@pytest.fixture(name="url")
def _url(tmp_path: Path) -> str:
    """A SQLite file that does not exist yet."""
    return f"sqlite:///{tmp_path / 'rrm.sqlite'}"


@pytest.fixture(name="upgraded")
def _upgraded(url: str) -> str:
    """The URL of a SQLite file upgraded to the newest schema."""
    rrm.upgrade_schema(url)
    return url


@pytest.fixture(name="overdue")
def _overdue(upgraded: str, sql_engine_for: Any) -> str:
    """An upgraded database holding a case opened in early 2025, long overdue now."""
    engine = rrm.bootstrap(
        sql_engine_for(upgraded), clock=FakeClock(datetime(2025, 1, 6, 15, tzinfo=UTC))
    )
    engine.open_case(
        rrm.OpenCase(
            workflow="usmca-31a",
            initiation="request",
            complainant="US",
            respondent="MX",
            facility=rrm.Facility(
                facility_id="MX-1",
                name="Planta",
                owner="Grupo",
                country=rrm.Party.MX,
                sector="auto parts",
            ),
            claim=rrm.Claim(
                basis="annex_23a_legislation", sector_category="manufacturing"
            ),
            external_ref="USTR-2025-007",
            actor="officer:ana",
            role="ustr",
            officers=(
                rrm.Officer(officer_id="ana", role="ustr", email="ana@example.gov"),
            ),
        )
    )
    return upgraded


@pytest.fixture(name="inbox")
def _inbox() -> Iterator[tuple[Inbox, int]]:
    """A plain SMTP server on loopback and its port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    handler = Inbox()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


@pytest.fixture(name="quiet_env", autouse=True)
def _quiet_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No RRM_* variable of the developer's shell leaks into a test."""
    for name in list(os.environ):
        if name.startswith("RRM_"):
            monkeypatch.delenv(name)


class TestOnce:
    def test_prints_the_report_of_one_tick(self, upgraded, capsys):
        """On an upgraded database one tick runs, its counts are printed, exit 0."""
        code = main(["worker", "--once", "--db", upgraded])

        out = capsys.readouterr().out
        assert code == 0
        assert out.startswith("cases 0, lapsed 0, advanced 0, queued 0, sent 0")

    def test_prints_json_when_asked(self, upgraded, capsys):
        """With --json the report is one JSON object of counts."""
        code = main(["worker", "--once", "--json", "--db", upgraded])

        report = json.loads(capsys.readouterr().out)
        assert code == 0
        assert report["lapsed"] == 0
        assert set(report) >= {"lapsed", "queued", "sent", "failed", "dead", "late"}

    def test_refuses_a_database_not_upgraded(self, url, capsys):
        """A database below the needed schema is refused in one line naming the fix."""
        code = main(["worker", "--once", "--db", url])

        err = capsys.readouterr().err
        assert code == 1
        assert err.count("\n") == 1
        assert "rrm db upgrade" in err

    def test_reads_its_options_from_the_environment(self, overdue, capsys, monkeypatch):
        """RRM_DB and RRM_ONCE configure the worker like the options do."""
        monkeypatch.setenv("RRM_DB", overdue)
        monkeypatch.setenv("RRM_ONCE", "1")

        code = main(["worker", "--json"])

        report = json.loads(capsys.readouterr().out)
        assert code == 0
        # The answer lapses; its lapse action (panel-eligible) cancels the review
        # deadline, which therefore never lapses.
        assert report["lapsed"] == 1
        assert report["unsent"] == report["queued"] > 0

    def test_sends_owed_alerts_over_smtp(self, overdue, inbox, capsys):
        """Owed alerts go to the mail server given by the SMTP options."""
        handler, port = inbox
        code = main([
            "worker", "--once", "--json", "--db", overdue, "--smtp-host", "127.0.0.1",
            "--smtp-port", str(port), "--smtp-security", "none", "--smtp-from", SENDER,
            "--link-template", "https://rrm.example.gov/cases/{case_id}",
        ])  # fmt: skip

        report = json.loads(capsys.readouterr().out)
        assert code == 0
        assert report["sent"] == len(handler.envelopes) > 0
        assert {e.mail_from for e in handler.envelopes} == {SENDER}
        assert b"https://rrm.example.gov/cases/" in handler.envelopes[0].content

    def test_never_echoes_the_smtp_password(self, overdue, capsys, monkeypatch):
        """The password from RRM_SMTP_PASSWORD appears in no output, even on failure."""
        monkeypatch.setenv("RRM_SMTP_PASSWORD", PASSWORD)
        code = main([
            "worker", "--once", "--json", "--db", overdue, "--smtp-host", "127.0.0.1",
            "--smtp-port", "1", "--smtp-user", "rrm", "--smtp-from", SENDER,
        ])  # fmt: skip

        out, err = capsys.readouterr()
        assert code == 0
        assert json.loads(out)["failed"] > 0
        assert PASSWORD not in out + err

    def test_needs_a_sender_with_a_mail_server(self, upgraded, capsys):
        """--smtp-host without --smtp-from is a one-line user error."""
        code = main(["worker", "--once", "--db", upgraded, "--smtp-host", "mail"])

        err = capsys.readouterr().err
        assert code == 1
        assert err == "rrm: --smtp-from: is needed with --smtp-host\n"

    def test_rejects_an_unknown_security_as_usage(self, upgraded, capsys):
        """An --smtp-security outside starttls, ssl and none is a usage error."""
        code = main(["worker", "--once", "--db", upgraded, "--smtp-security", "tls9"])

        assert code == 2
        assert "--smtp-security" in capsys.readouterr().err

    def test_rejects_a_sweep_that_is_not_positive(self, upgraded, capsys):
        """A sweep interval of zero is a one-line user error."""
        code = main(["worker", "--db", upgraded, "--sweep-seconds", "0"])

        err = capsys.readouterr().err
        assert code == 1
        assert err.count("\n") == 1
        assert "sweep_seconds" in err


class TestSignals:
    @pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
    def test_stops_cleanly_on_a_signal(self, upgraded, tmp_path, signum):
        """A running worker stops after SIGTERM or SIGINT with exit code 0."""
        log = tmp_path / "worker.log"
        with log.open("w") as stderr:
            proc = subprocess.Popen(
                [sys.executable, "-m", "rrm", "worker", "--db", upgraded,
                 "--sweep-seconds", "0.1"],
                cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=stderr,
                env={k: v for k, v in os.environ.items()
                     if not k.startswith("RRM_")},
            )  # fmt: skip
            try:
                began = time.monotonic()
                while "worker_started" not in log.read_text():
                    assert proc.poll() is None, log.read_text()
                    assert time.monotonic() - began < 30, "the worker never started"
                    time.sleep(0.05)
                proc.send_signal(signum)
                code = proc.wait(timeout=10)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()

        assert code == 0, log.read_text()
        assert "worker_stopped" in log.read_text()
