"""A mail server that refuses, fails or drops connections, then recovers.

The engine's own delivery and the real ``SmtpNotifier`` send to loopback servers:
aiosmtpd answering 4xx or 5xx at MAIL, RCPT or DATA, or dropping the connection
after the message's final dot (before its reply), and raw sockets that refuse (a
closed port), slam the connection, stay silent, or greet with a 5xx refusal. Time
moves only with the fake clock: each retry is reached by jumping to the engine's next
wake-up. The checks:

- every failed attempt is retried, on the backoff schedule (1, 2, 4, ... minutes);
- nothing is sent while the server fails, nothing is lost, and nothing is
  dead-lettered for a failure that concerns the server rather than the alert;
- every copy of a message carries the same Message-ID (a valid RFC 5322 one), and
  a message the server acknowledged is never sent again;
- once the server recovers, every owed alert is delivered, once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.parser import BytesHeaderParser
from email.policy import default
from typing import Any

import pytest

import rrm
from rrm.adapters.email import SmtpNotifier, SmtpSettings
from rrm.adapters.email.smtp import wire_message_id
from rrm.testing import FakeClock, skip

from .conftest import MailRecorder, MailServer, RawServer, free_port

START = datetime(2025, 1, 6, 15, 0, tzinfo=UTC)
# The 7-business-day reminder of the answer deadline (due 16 January) is owed at
# 08:00 in Mexico City on 7 January.
FIRST_OWED = datetime(2025, 1, 7, 14, 0, tzinfo=UTC)
OFFICERS = (
    rrm.Officer(officer_id="ana", role="ustr", email="ana@ustr.example"),
    rrm.Officer(officer_id="luis", role="ustr", email="luis@ustr.example"),
)
SETTINGS = rrm.AlertSettings(admin_address="admin@rrm.example")
OPEN = ("pending", "failed", "sending", "dead")


def make(db_url: str, sql_engine_for: Any, port: int, timeout: float = 5.0) -> Any:
    clock = FakeClock(START)
    notifier = SmtpNotifier(
        SmtpSettings(
            host="127.0.0.1",
            port=port,
            security="none",
            sender_address="rrm@agency.example",
            timeout=timeout,
        ),
        now=clock.now,
    )
    engine = rrm.bootstrap(
        sql_engine_for(db_url),
        clock=clock,
        upgrade=True,
        notifier=notifier,
        alert_settings=SETTINGS,
    )
    engine.open_case(
        rrm.OpenCase(
            workflow="usmca-31a",
            initiation="request",
            complainant="US",
            respondent="MX",
            facility=rrm.Facility(
                facility_id="MX-M1", name="Planta", owner="Grupo", country=rrm.Party.MX
            ),
            claim=rrm.Claim(
                basis="annex_23a_legislation", sector_category="manufacturing"
            ),
            officers=OFFICERS,
            external_ref="M-1",
            actor="officer:ana",
            role="ustr",
        )
    )
    return engine, clock


def retry_until(engine: Any, clock: FakeClock, attempts: int) -> list[int]:
    """Tick at each wake-up until an alert has failed *attempts* times.

    Checks at every tick that nothing was sent, that no alert is retried before its
    time, and that each new failure waits min(1 min * 2**(n-1), 1 h); returns the
    waits, in minutes, of the first alert.
    """
    seen: dict[str, int] = {}
    waits: list[int] = []

    def check(now: datetime) -> None:
        for a in engine.alerts():
            assert a.status is rrm.AlertStatus.FAILED, a
            if a.attempts != seen.get(a.alert_id, 0):
                assert a.attempts == seen.get(a.alert_id, 0) + 1
                wait = min(timedelta(minutes=2 ** (a.attempts - 1)), timedelta(hours=1))
                assert a.next_attempt_at == now + wait, a
                if a.alert_id == min(seen, default=a.alert_id):
                    waits.append(int(wait.total_seconds() // 60))
            seen[a.alert_id] = a.attempts

    clock.set(FIRST_OWED)
    assert engine.tick().sent == 0
    check(FIRST_OWED)
    assert len(seen) == len(OFFICERS)
    for _ in range(50):
        if seen[min(seen)] >= attempts:
            return waits
        wake = engine.next_wakeup()
        assert wake is not None
        # A moment before the retry is due, nothing is attempted.
        clock.set(max(clock.now(), wake - timedelta(seconds=1)))
        engine.tick()
        assert {a.alert_id: a.attempts for a in engine.alerts()} == seen
        clock.set(wake)
        assert engine.tick().sent == 0
        check(wake)
    raise AssertionError("the alerts were not retried")


def delivered_once(engine: Any, handler: MailRecorder) -> None:
    """Every owed alert is sent; each acknowledged once, all copies one Message-ID."""
    alerts = engine.alerts()
    assert alerts
    assert [a for a in alerts if a.status.value in OPEN] == []
    ids = {wire_message_id(a.message_id) for a in alerts}
    acked = Counter(handler.ids(acknowledged_only=True))
    assert set(acked) == ids
    assert set(acked.values()) == {1}, acked
    assert set(handler.ids()) == ids  # dropped copies carry the same Message-ID
    first: dict[str, Any] = {}
    for m in handler.messages:
        seen = first.setdefault(m.message_id, m)
        assert (seen.to, seen.subject) == (m.to, m.subject)


# -- faults the engine must ride out ------------------------------------------------

Fault = Callable[[MailServer], Any]


def _closed(server: MailServer) -> None:
    server.stop()


def _raw(behaviour: str) -> Fault:
    def fault(server: MailServer) -> RawServer:
        server.stop()
        return RawServer(server.port, behaviour)

    return fault


def _reply(mode: str, reply: str) -> Fault:
    def fault(server: MailServer) -> None:
        server.handler.mode = mode  # type: ignore[assignment]
        server.handler.reply = reply

    return fault


FAULTS: dict[str, Fault] = {
    "closed port": _closed,
    "connection slammed": _raw("slam"),
    "silent server": _raw("silent"),
    "greeting 554": _raw("greet554"),
    "421 at MAIL": _reply("refuse_mail", "421 4.3.2 Service shutting down"),
    "451 at RCPT": _reply("refuse_rcpt", "451 4.3.0 Try again later"),
    "452 at DATA": _reply("refuse_data", "452 4.3.1 Insufficient storage"),
    "550 at MAIL (sender refused)": _reply("refuse_mail", "550 5.7.1 Sender rejected"),
    "dropped after DATA": _reply("drop", ""),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_server_fault_then_recovery(
    db_url: str, sql_engine_for: Any, mail: MailServer, fault: str
) -> None:
    """While the server fails, alerts are retried on the backoff schedule and
    nothing is sent or dead-lettered; once it recovers, all owed alerts arrive once,
    each under one Message-ID."""
    server = mail
    engine, clock = make(db_url, sql_engine_for, server.port, timeout=0.5)
    raw = FAULTS[fault](server)
    try:
        waits = retry_until(engine, clock, attempts=4)
    finally:
        if raw is not None:
            raw.stop()
    assert waits == [1, 2, 4, 8]
    assert engine.alerts(status=("sent", "dead")) == []
    # Recovery: a normal server on the same port.
    server.handler.mode = "accept"
    server.start()
    skip(engine, clock, by=timedelta(hours=2))
    delivered_once(engine, server.handler)
    if fault == "dropped after DATA":
        # The server had every message before it dropped the line: the repeats
        # carry the first copy's Message-ID and none follows the acknowledgement.
        assert len(server.handler.messages) > len(engine.alerts())


def test_retries_follow_the_backoff_to_the_hourly_cap(
    db_url: str, sql_engine_for: Any
) -> None:
    """Eight failures wait 1, 2, 4, 8, 16, 32, 60, 60 minutes (capped at an hour)."""
    engine, clock = make(db_url, sql_engine_for, free_port())
    waits = retry_until(engine, clock, attempts=8)
    assert waits == [1, 2, 4, 8, 16, 32, 60, 60]


# -- a refusal that concerns one alert ------------------------------------------------


def test_recipient_refused_permanently_is_dead_lettered_once_then_retried(
    db_url: str, sql_engine_for: Any, mail: MailServer
) -> None:
    """A 550 for one recipient dead-letters that alert at once (the administrator is
    told once) while the others are delivered; after the address is fixed on the
    server and the alert retried, it goes out under the same Message-ID."""
    server = mail
    server.handler.mode = "refuse_rcpt"
    server.handler.reply = "550 5.1.1 No such user"
    server.handler.only = "ana@ustr.example"
    engine, clock = make(db_url, sql_engine_for, server.port)
    skip(engine, clock, to=FIRST_OWED + timedelta(hours=3))
    (dead,) = engine.alerts(status=("dead",))
    assert dead.recipient_id == "ana"
    assert dead.attempts == 1
    assert dead.last_error.startswith("permanent: ")
    admin = [m for m in server.handler.messages if m.to == ("admin@rrm.example",)]
    luis = [m for m in server.handler.messages if m.to == ("luis@ustr.example",)]
    assert len(admin) == 1
    assert len(luis) == 1
    server.handler.mode = "accept"
    engine.retry(dead.alert_id)
    skip(engine, clock, by=timedelta(minutes=5))
    assert engine.alerts(status=OPEN) == []
    to_ana = [m for m in server.handler.messages if m.to == ("ana@ustr.example",)]
    assert [m.message_id for m in to_ana] == [wire_message_id(dead.message_id)]
    assert (
        len([m for m in server.handler.messages if m.to == ("admin@rrm.example",)]) == 1
    )


# -- the Message-ID on the wire ---------------------------------------------------------


def test_message_id_on_the_wire_is_valid_and_stable(
    db_url: str, sql_engine_for: Any, mail: MailServer
) -> None:
    """Regression: alert ids carry '@' (``before-7@2025-01-16``), and the e-mail
    package cut the Message-ID at its second '@', dropping the domain. The id sent
    is now one RFC 5322 msg-id, with the domain, the same at every attempt."""
    server = mail
    seen: list[bytes] = []
    server.handler.mode = "drop"
    engine, clock = make(db_url, sql_engine_for, server.port)
    clock.set(FIRST_OWED)
    engine.tick()
    server.handler.mode = "accept"
    skip(engine, clock, by=timedelta(minutes=5))
    assert engine.alerts(status=OPEN) == []
    for alert in engine.alerts():
        copies = [
            m for m in server.handler.messages if m.to[0] == alert.recipient_email
        ]
        assert len(copies) == 2  # dropped once, then acknowledged
        assert {m.message_id for m in copies} == {wire_message_id(alert.message_id)}
        mid = copies[0].message_id
        seen.append(mid.encode())
        assert mid.count("@") == 1
        assert mid.endswith("@rrm.invalid>")
        parsed = BytesHeaderParser(policy=default).parsebytes(
            b"Message-ID: " + mid.encode() + b"\r\n\r\n"
        )["Message-ID"]
        assert str(parsed) == mid
        assert parsed.defects == ()
    assert len(set(seen)) == len(seen) == 2


@pytest.mark.parametrize(
    ("reply", "permanent"),
    [
        ("550 5.7.1 Sender rejected", False),
        ("553 5.1.8 Sender address not allowed", False),
        ("552 5.3.4 Message too big", True),
        ("451 4.3.0 Try again later", False),
    ],
)
def test_a_refused_sender_is_not_the_alerts_fault(
    mail: MailServer, reply: str, permanent: bool
) -> None:
    """Regression: a 5xx to MAIL FROM (or to the greeting) refuses every message
    alike, so the notifier reports it as temporary for the alert (it is retried and
    goes out once the relay is fixed); only 552, this message's size, is permanent."""
    mail.handler.mode = "refuse_mail"
    mail.handler.reply = reply
    settings = SmtpSettings(
        host="127.0.0.1",
        port=mail.port,
        security="none",
        sender_address="rrm@agency.example",
        timeout=5,
    )
    message = rrm.AlertMessage(
        alert_id="a:1",
        message_id="<a.1@rrm.invalid>",
        to_address="ana@ustr.example",
        to_name="Ana",
        subject="Reminder",
        text="text",
        html="<p>html</p>",
        ics=None,
        language="en",
        view=None,
    )
    with pytest.raises(rrm.NotificationError) as info:
        SmtpNotifier(settings).send(message)
    assert info.value.permanent is permanent
    assert reply[:3] in str(info.value)
    assert mail.handler.messages == []
