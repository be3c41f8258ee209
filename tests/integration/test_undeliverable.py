"""No owed alert lost to a missing address (issue #13, item 1), both backends.

An officer assigned without an e-mail address is no recipient: the fallback address
gets the alert. With no fallback, the owed alert is recorded undeliverable, listed
with the dead letters, and the administrator (when an address is set) is told.
Each scenario lapses a real deadline with ticks and delivers through a real SMTP
server on loopback.
"""

from __future__ import annotations

import email
from datetime import UTC, datetime, timedelta
from email import policy
from typing import Any

import pytest

import rrm
from rrm.adapters.email import SmtpNotifier, SmtpSettings
from rrm.domain.alerts import AlertKind
from rrm.service.alerting import UNDELIVERABLE
from rrm.testing import skip

START = datetime(2025, 1, 6, 15, tzinfo=UTC)


def _engine(db_url, sql_engine_for, clock, workflows, smtp_server, **settings):
    notifier = SmtpNotifier(
        SmtpSettings(
            host="127.0.0.1",
            port=smtp_server.port,
            security="none",
            sender_address="rrm@agency.example",
            timeout=5,
        )
    )
    return rrm.bootstrap(
        sql_engine_for(db_url),
        clock=clock,
        workflows=workflows,
        upgrade=True,
        notifier=notifier,
        alert_settings=rrm.AlertSettings(**settings),
    )


def _open(engine: rrm.CaseEngine, *officers: rrm.Officer) -> rrm.Case:
    return engine.open_case(
        rrm.OpenCase(
            workflow="usmca-31a",
            initiation="request",
            complainant="US",
            respondent="MX",
            facility=rrm.Facility(
                facility_id="MX-UND-1",
                name="Planta Sin Correo",
                owner="Grupo Ejemplo",
                country=rrm.Party.MX,
            ),
            claim=rrm.Claim(
                basis="annex_23a_legislation", sector_category="manufacturing"
            ),
            officers=officers,
            external_ref="UND-1",
            actor="officer:ana",
            role="ustr",
        )
    )


def _received(smtp_server: Any) -> list[email.message.EmailMessage]:
    return [
        email.message_from_bytes(e.content, policy=policy.default)  # type: ignore[misc]
        for e in smtp_server.handler.envelopes
    ]


NO_ADDRESS = rrm.Officer(officer_id="ana", role="ustr", email="")


@pytest.fixture(name="clock_at_start")
def _clock_at_start(clock):
    clock.set(START)
    return clock


def test_an_officer_without_address_leaves_the_alert_to_the_fallback(
    db_url, sql_engine_for, clock_at_start, workflows, smtp_server
):
    """The officer has no address: the fallback address receives every alert."""
    clock = clock_at_start
    engine = _engine(
        db_url,
        sql_engine_for,
        clock,
        workflows,
        smtp_server,
        fallback_address="desk@ustr.example",
    )
    case = _open(engine, NO_ADDRESS)
    skip(engine, clock, by=timedelta(days=12))  # the 10-day answer lapses

    to = {m["To"].addresses[0].addr_spec for m in _received(smtp_server)}
    assert to == {"desk@ustr.example"}
    alerts = engine.alerts(case_id=case.case_id)
    assert alerts, "alerts were owed"
    assert {a.recipient_id for a in alerts} == {"rrm:fallback"}
    assert {a.status.value for a in alerts} == {"sent"}


def test_without_fallback_the_alert_is_recorded_undeliverable_and_the_admin_told(
    db_url, sql_engine_for, clock_at_start, workflows, smtp_server
):
    """No address and no fallback: a dead letter per owed alert, and the admin's e-mail."""
    clock = clock_at_start
    engine = _engine(
        db_url,
        sql_engine_for,
        clock,
        workflows,
        smtp_server,
        admin_address="admin@agency.example",
    )
    case = _open(engine, NO_ADDRESS)
    skip(engine, clock, by=timedelta(days=12))

    dead = engine.alerts(status=("dead",), case_id=case.case_id)
    assert dead
    assert {a.recipient_id for a in dead} == {UNDELIVERABLE}
    assert all("undeliverable" in a.last_error for a in dead)
    # Owed alerts of the lapsed answer are among them (the case moved on).
    kinds = {a.kind for a in dead}
    assert AlertKind.OVERDUE in kinds or AlertKind.DUE in kinds
    mails = _received(smtp_server)
    assert {m["To"].addresses[0].addr_spec for m in mails} == {"admin@agency.example"}
    body = mails[0].get_body(preferencelist=("plain",)).get_content()
    assert "no fallback address is set" in body
    assert len(mails) == len(dead)  # one e-mail per undeliverable alert


def test_without_anyone_to_tell_it_is_still_listed(
    db_url, sql_engine_for, clock_at_start, workflows, smtp_server
):
    """No address, no fallback, no admin: nothing is sent, but nothing is dropped."""
    clock = clock_at_start
    engine = _engine(db_url, sql_engine_for, clock, workflows, smtp_server)
    case = _open(engine)  # no officer at all
    skip(engine, clock, by=timedelta(days=12))

    assert _received(smtp_server) == []
    dead = engine.alerts(status=("dead",), case_id=case.case_id)
    assert dead
    assert {a.recipient_id for a in dead} == {UNDELIVERABLE}
    # The sweep does not queue them again on the next ticks.
    skip(engine, clock, by=timedelta(days=1))
    assert len(engine.alerts(status=("dead",), case_id=case.case_id)) == len(dead)


def test_an_officer_with_an_address_is_alerted_and_no_dead_letter_is_made(
    db_url, sql_engine_for, clock_at_start, workflows, smtp_server
):
    """The ordinary path is unchanged: the officer with an address gets the alerts."""
    clock = clock_at_start
    engine = _engine(
        db_url,
        sql_engine_for,
        clock,
        workflows,
        smtp_server,
        fallback_address="desk@ustr.example",
    )
    _open(
        engine,
        NO_ADDRESS,
        rrm.Officer(officer_id="luis", role="ustr", email="luis@ustr.example"),
    )
    skip(engine, clock, by=timedelta(days=12))
    to = {m["To"].addresses[0].addr_spec for m in _received(smtp_server)}
    assert to == {"luis@ustr.example"}
    assert engine.alerts(status=("dead",)) == []


@pytest.mark.parametrize(
    "address", ["not-an-address", "a@b, c@d", "desk@ustr.example\r\nBcc: x@y.example"]
)
@pytest.mark.parametrize(
    "setting", ["fallback_address", "supervisor_address", "admin_address"]
)
def test_the_worker_refuses_a_malformed_address(setting, address):
    """A worker address that could never receive mail is refused where it is set."""
    with pytest.raises(rrm.InvalidInput, match=setting) as caught:
        rrm.AlertSettings(**{setting: address})
    assert "is not one e-mail address" in str(caught.value)


def test_the_worker_command_names_the_bad_address(tmp_path, capsys):
    """`rrm worker --fallback-address 'a@b, c@d'` stops with one line, exit 1."""
    from rrm.cli import main

    db = f"sqlite:///{tmp_path / 'w.sqlite'}"
    assert main(["init", "--db", db]) == 0
    capsys.readouterr()
    code = main(["worker", "--db", db, "--once", "--fallback-address", "a@b, c@d"])
    captured = capsys.readouterr()
    assert code == 1
    assert "fallback_address" in captured.err
    assert "Traceback" not in captured.err


BAD_ADDRESSES = ["not-an-address", "a@b, c@d", "ana@ustr.example\r\nBcc: x@y.example"]


@pytest.mark.parametrize("address", BAD_ADDRESSES)
def test_open_and_assign_refuse_a_malformed_officer_address(engine, address):
    """`open_case` and `assign` refuse an address no alert could reach; nothing written."""
    bad = rrm.Officer(officer_id="ana", role="ustr", email=address)
    with pytest.raises(rrm.InvalidInput, match=r"officers\[0\]\.email"):
        _open(engine, bad)
    assert engine.find() == []
    case = _open(engine, rrm.Officer(officer_id="luis", role="ustr", email=""))
    with pytest.raises(rrm.InvalidInput, match="email"):
        engine.assign(
            rrm.AssignOfficers(
                case_id=case.case_id,
                assign=(bad,),
                actor="officer:ana",
                role="ustr",
            )
        )
    assert engine.get(case.case_id).version == case.version
    assert [o.officer_id for o in engine.get(case.case_id).officers] == ["luis"]


def test_an_address_is_stored_normalised(engine):
    """The domain of an address is stored in lower case, as email-validator gives it."""
    case = _open(
        engine, rrm.Officer(officer_id="ana", role="ustr", email="Ana@USTR.Example")
    )
    assert [o.email for o in case.officers] == ["Ana@ustr.example"]
