"""Deadline enforcement end to end: ladders, lapses, retries, dead letters, two workers.

Every test sends real e-mail to an aiosmtpd server on loopback; time moves only with
the fake clock (``rrm.testing.skip``), never by sleeping.
"""

from __future__ import annotations

import email
import threading
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from email import policy
from typing import Any

import pytest
from aiosmtpd.controller import Controller

import rrm
from rrm.adapters.email import SmtpNotifier, SmtpSettings
from rrm.testing import FakeClock, skip

from .conftest import Recorder, free_port

SECRET = "Petra Confidencial"
FACILITY = rrm.Facility(
    facility_id="MX-A1",
    name="Planta Alerta",
    owner="Grupo A",
    country=rrm.Party.MX,
    city="Silao",
    region="Guanajuato",
)
CLAIM = rrm.Claim(basis="annex_23a_legislation", sector_category="manufacturing")
ANA = rrm.Officer(
    officer_id="ana", role="ustr", email="ana@ustr.example", language="en"
)
LUIS = rrm.Officer(
    officer_id="luis", role="ustr", email="luis@ustr.example", language="es"
)
SUP = rrm.Officer(officer_id="sam", role="supervisor", email="sam@ustr.example")
SETTINGS = rrm.AlertSettings(
    admin_address="admin@rrm.example",
    max_attempts=3,
    backoff_base=timedelta(minutes=10),
)


def messages(server: Any) -> list[email.message.EmailMessage]:
    return [
        email.message_from_bytes(e.content, policy=policy.default)
        for e in server.handler.envelopes
    ]


def make_engine(db_url, sql_engine_for, clock, workflows, port, settings=SETTINGS):
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
        sql_engine_for(db_url),
        clock=clock,
        workflows=workflows,
        upgrade=True,
        notifier=notifier,
        alert_settings=settings,
        link_template="https://cases.example/rrm/{case_id}",
    )


@pytest.fixture(name="alerting")
def _alerting(db_url, sql_engine_for, clock, workflows, smtp_server):
    return make_engine(db_url, sql_engine_for, clock, workflows, smtp_server.port)


def open_case(engine, ref="A-1", officers=(ANA, LUIS, SUP), at=None, **kw):
    return engine.open_case(
        rrm.OpenCase(
            workflow="usmca-31a",
            initiation="request",
            complainant="US",
            respondent="MX",
            facility=FACILITY,
            claim=CLAIM,
            external_ref=ref,
            actor="officer:ana",
            role="ustr",
            officers=officers,
            at=at,
            petitioners=(rrm.Petitioner(name=SECRET, confidential=True),),
            **kw,
        )
    )


class TestLadder:
    def test_whole_ladder_of_the_answer_deadline(self, alerting, clock, smtp_server):
        """Reminders 7, 3 and 1 business days before, the due day, then one missed alert
        to officers and supervisor; the lapse moves the case, each alert once."""
        case = open_case(alerting)
        skip(alerting, clock, to=datetime(2025, 1, 18, tzinfo=UTC))
        steps = Counter(
            a.step.split("@")[0]
            for a in alerting.alerts(case_id=case.case_id)
            if a.deadline_id.endswith(":respondent_answer:1")
        )
        assert steps == {
            "before-7": 2,
            "before-3": 2,
            "before-1": 2,
            "due": 2,
            "overdue-1": 3,
        }
        sent = messages(smtp_server)
        assert len(sent) == 11
        assert len({m["Message-ID"] for m in sent}) == 11
        assert {m["To"].addresses[0].addr_spec for m in sent} == {
            "ana@ustr.example",
            "luis@ustr.example",
            "sam@ustr.example",
        }
        spanish = [m for m in sent if "luis@" in str(m["To"])]
        words = ("Recordatorio", "Vence hoy", "VENCIDO")
        assert len(spanish) == 5
        assert all(any(w in m["Subject"] for w in words) for m in spanish)
        after = alerting.get(case.case_id)
        assert after.state == "panel_eligible"
        events = [e.event for e in alerting.history(case.case_id)]
        assert events[-2:] == ["deadline_missed", "respondent_answer_lapsed"]
        assert alerting.history(case.case_id)[-1].role == "system"
        assert alerting.verify(case.case_id).ok

    def test_reminder_dates_follow_business_days(self, alerting, clock):
        """The 7-business-day reminder for a 16 January deadline falls on 7 January, 08:00 Mexico City."""
        case = open_case(alerting)
        skip(alerting, clock, to=datetime(2025, 1, 8, tzinfo=UTC))
        first = [
            a
            for a in alerting.alerts(case_id=case.case_id)
            if a.step.startswith("before-7")
        ]
        assert {a.owed_at for a in first} == {datetime(2025, 1, 7, 14, tzinfo=UTC)}

    def test_alerts_never_carry_confidential_petitioners(
        self, alerting, clock, smtp_server
    ):
        """No e-mail of a whole ladder contains the confidential petitioner's name."""
        open_case(alerting)
        skip(alerting, clock, to=datetime(2025, 1, 18, tzinfo=UTC))
        raw = b"".join(e.content for e in smtp_server.handler.envelopes)
        assert raw
        assert SECRET.encode() not in raw
        assert b"https://cases.example/rrm/" in raw

    def test_extension_supersedes_old_reminders(self, alerting, clock, smtp_server):
        """After an extension, reminders follow the new date and none about the old one go out."""
        case = open_case(alerting, officers=(ANA,))
        clock.advance(timedelta(days=1))
        alerting.extend(
            rrm.ExtendDeadline(
                case_id=case.case_id,
                key="respondent_answer",
                new_date=date(2025, 1, 31),
                actor="a",
                role="ustr",
                reason="agreed by note",
            )
        )
        skip(alerting, clock, to=datetime(2025, 1, 30, tzinfo=UTC))
        subjects = [
            m["Subject"]
            for m in messages(smtp_server)
            if "answers whether" in m["Subject"]
        ]
        assert subjects
        assert all("2025-01-31" in s for s in subjects), subjects


class TestHolidays:
    def test_mexican_holiday_is_skipped(self, alerting, clock):
        """Three business days before 6 February 2025 skip Constitution Day (3 February)."""
        clock.set(datetime(2025, 1, 27, 15, tzinfo=UTC))
        case = open_case(alerting, officers=(ANA,))
        skip(alerting, clock, to=datetime(2025, 2, 1, tzinfo=UTC))
        before3 = [
            a
            for a in alerting.alerts(case_id=case.case_id)
            if a.step.startswith("before-3@2025-02-06")
        ]
        assert [a.owed_at for a in before3] == [datetime(2025, 1, 31, 14, tzinfo=UTC)]

    def test_us_holiday_is_skipped(self, alerting, clock):
        """A U.S. respondent's reminders skip Independence Day (4 July 2025)."""
        clock.set(datetime(2025, 6, 28, 15, tzinfo=UTC))
        case = alerting.open_case(
            rrm.OpenCase(
                workflow="usmca-31a-mx",
                initiation="request",
                complainant="MX",
                respondent="US",
                facility=rrm.Facility(
                    facility_id="US-1", name="P", owner="O", country=rrm.Party.US
                ),
                claim=rrm.Claim(
                    basis="enforced_nlrb_order",
                    sector_category="manufacturing",
                    nlrb_order="NLRB 1",
                ),
                external_ref="US-H",
                actor="a",
                role="se",
                officers=(
                    rrm.Officer(officer_id="mx1", role="se", email="a@se.example"),
                ),
            )
        )
        skip(alerting, clock, to=datetime(2025, 7, 7, tzinfo=UTC))
        # Due 2025-07-08 (10 days after 28 June); 3 business days before skips 4 July.
        before3 = [
            a
            for a in alerting.alerts(case_id=case.case_id)
            if a.step.startswith("before-3@2025-07-08")
        ]
        assert [a.owed_at.date() for a in before3] == [date(2025, 7, 2)]

    def test_canadian_holiday_is_skipped(self, alerting, clock):
        """A Canadian respondent's reminders skip Canada Day (1 July 2025)."""
        clock.set(datetime(2025, 6, 23, 15, tzinfo=UTC))
        case = alerting.open_case(
            rrm.OpenCase(
                workflow="usmca-31b",
                initiation="request",
                complainant="MX",
                respondent="CA",
                facility=rrm.Facility(
                    facility_id="CA-1", name="U", owner="O", country=rrm.Party.CA
                ),
                claim=rrm.Claim(
                    basis="canadian_legislation", sector_category="manufacturing"
                ),
                external_ref="CA-H",
                actor="a",
                role="complainant",
                officers=(
                    rrm.Officer(
                        officer_id="c1",
                        role="complainant",
                        email="c@se.example",
                        language="fr",
                    ),
                ),
            )
        )
        skip(alerting, clock, to=datetime(2025, 7, 3, tzinfo=UTC))
        # Due 2025-07-03; 3 business days before: 2, 30 June, 27 June (1 July skipped).
        before3 = [
            a
            for a in alerting.alerts(case_id=case.case_id)
            if a.step.startswith("before-3@2025-07-03")
        ]
        assert [a.owed_at.date() for a in before3] == [date(2025, 6, 27)]


class TestOutage:
    def test_worker_down_sends_missed_alerts_once_marked_late(
        self, alerting, clock, smtp_server
    ):
        """After ten days without a tick, one tick sends every owed alert, late, once."""
        case = open_case(alerting, officers=(ANA,))
        clock.advance(timedelta(days=10))
        report = alerting.tick()
        # Owed meanwhile: reminders 7, 3 and 1 business days before, and the due day.
        assert report.sent == report.late == 4
        again = alerting.tick()
        assert again.sent == 0
        assert len(messages(smtp_server)) == 4
        assert all(a.late for a in alerting.alerts(case_id=case.case_id))

    def test_mail_server_down_then_up_loses_nothing(
        self, db_url, sql_engine_for, clock, workflows
    ):
        """Alerts owed during an hour-long mail outage are retried and all arrive, once."""
        port = free_port()
        settings = rrm.AlertSettings(admin_address="admin@rrm.example")
        engine = make_engine(db_url, sql_engine_for, clock, workflows, port, settings)
        open_case(engine, officers=(ANA, LUIS))
        skip(engine, clock, to=datetime(2025, 1, 7, 15, tzinfo=UTC))
        failed = engine.alerts(status=("failed",))
        assert len(failed) == 2
        assert all(a.attempts >= 3 for a in failed)
        recorder = Recorder()
        controller = Controller(recorder, hostname="127.0.0.1", port=port)
        controller.start()
        try:
            skip(engine, clock, by=timedelta(hours=2))
        finally:
            controller.stop()
        assert engine.alerts(status=("failed", "pending", "sending", "dead")) == []
        assert len(recorder.envelopes) == len(engine.alerts(status=("sent",))) == 2

    def test_dead_letter_after_n_failures(self, alerting, clock, smtp_server):
        """A recipient refused three times (4xx) is dead-lettered; the administrator is told once."""
        smtp_server.handler.rcpt_replies["ana@ustr.example"] = "451 4.3.0 try later"
        case = open_case(alerting, officers=(ANA,))
        skip(alerting, clock, to=datetime(2025, 1, 8, tzinfo=UTC))
        dead = alerting.alerts(status=("dead",), case_id=case.case_id)
        assert [a.attempts for a in dead] == [3]
        admin = [m for m in messages(smtp_server) if "admin@" in str(m["To"])]
        assert len(admin) == 1
        again = alerting.retry(dead[0].alert_id)
        assert again.status is rrm.AlertStatus.PENDING

    def test_permanent_refusal_is_dead_at_once(self, alerting, clock, smtp_server):
        """A 550 refusal is not retried."""
        smtp_server.handler.rcpt_replies["ana@ustr.example"] = "550 5.1.1 no such user"
        case = open_case(alerting, officers=(ANA,))
        skip(alerting, clock, to=datetime(2025, 1, 8, tzinfo=UTC))
        dead = alerting.alerts(status=("dead",), case_id=case.case_id)
        assert [a.attempts for a in dead] == [1]

    def test_acknowledgement_is_recorded(self, alerting, clock):
        """An officer's acknowledgement is stored with who and when."""
        case = open_case(alerting, officers=(ANA,))
        skip(alerting, clock, to=datetime(2025, 1, 8, tzinfo=UTC))
        alert = alerting.alerts(case_id=case.case_id)[0]
        acked = alerting.acknowledge(alert.alert_id, officer_id="ana")
        assert acked.acknowledged_by == "ana"
        assert alerting.alerts(case_id=case.case_id)[0].acknowledged_at is not None
        with pytest.raises(rrm.AlertNotFound):
            alerting.acknowledge("nope", officer_id="ana")


@pytest.mark.postgres
class TestTwoWorkers:
    @pytest.mark.parametrize("backend", ["postgres"], indirect=True)
    def test_no_alert_sent_twice(self, db_url, sql_engine_for, workflows, smtp_server):
        """Two workers ticking at once over 30 cases send each alert exactly once."""
        clock = FakeClock(datetime(2025, 1, 6, 15, tzinfo=UTC))
        first = make_engine(db_url, sql_engine_for, clock, workflows, smtp_server.port)
        second = make_engine(db_url, sql_engine_for, clock, workflows, smtp_server.port)
        for i in range(30):
            open_case(first, ref=f"W-{i}", officers=(ANA,))
        clock.set(datetime(2025, 1, 18, tzinfo=UTC))
        reports: list[rrm.TickReport] = []
        threads = [
            threading.Thread(target=lambda e=e: reports.append(e.tick()))
            for e in (first, second, first, second)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        ids = [m["Message-ID"] for m in messages(smtp_server)]
        assert len(ids) == len(set(ids)) == sum(r.sent for r in reports)
        assert len(ids) == len(first.alerts(status=("sent",)))
        assert first.alerts(status=("pending", "failed", "sending")) == []


class TestDigest:
    def test_one_digest_per_officer_per_day(
        self, db_url, sql_engine_for, clock, workflows, smtp_server
    ):
        """With digests on, each officer gets exactly one digest a day, at the local hour."""
        settings = rrm.AlertSettings(
            digest_hour=7, digest_timezone="America/Mexico_City"
        )
        engine = make_engine(
            db_url, sql_engine_for, clock, workflows, smtp_server.port, settings
        )
        open_case(engine, ref="D-1", officers=(ANA,))
        open_case(engine, ref="D-2", officers=(ANA, LUIS))
        skip(engine, clock, to=datetime(2025, 1, 9, 14, tzinfo=UTC))
        digests = engine.alerts(status=("sent",))
        days = Counter(
            (a.recipient_id, a.step) for a in digests if a.kind is rrm.AlertKind.DIGEST
        )
        assert days == {
            ("ana", "digest@2025-01-07"): 1,
            ("ana", "digest@2025-01-08"): 1,
            ("ana", "digest@2025-01-09"): 1,
            ("luis", "digest@2025-01-07"): 1,
            ("luis", "digest@2025-01-08"): 1,
            ("luis", "digest@2025-01-09"): 1,
        }
        first = min(a.sent_at for a in digests if a.kind is rrm.AlertKind.DIGEST)
        assert first == datetime(2025, 1, 7, 13, tzinfo=UTC)  # 07:00 in Mexico City

    def test_digests_are_off_by_default(self, alerting, clock):
        """Without a digest hour no digest is queued."""
        open_case(alerting, officers=(ANA,))
        skip(alerting, clock, to=datetime(2025, 1, 9, tzinfo=UTC))
        assert not [a for a in alerting.alerts() if a.kind is rrm.AlertKind.DIGEST]


class TestWithoutNotifier:
    def test_queued_alerts_do_not_hold_the_wakeup(self, engine, clock):
        """Without a notifier, alerts are queued and the next wake-up still moves on."""
        open_case(engine, officers=(ANA,))
        clock.set(datetime(2025, 1, 8, tzinfo=UTC))
        report = engine.tick()
        assert report.unsent == 1
        assert engine.next_wakeup() > clock.now()


class TestBackdatedCases:
    def test_a_migrated_overdue_case_does_not_flood(self, alerting, clock, smtp_server):
        """A case recorded years after its request owes no alerts from before it was
        recorded; its lapse and lapse action are still recorded."""
        clock.set(datetime(2026, 1, 5, 15, tzinfo=UTC))
        case = open_case(
            alerting, officers=(ANA,), at=datetime(2023, 6, 16, 17, tzinfo=UTC)
        )
        report = alerting.tick()
        assert report.queued == 0
        assert report.lapsed >= 1
        assert messages(smtp_server) == []
        skip(alerting, clock, by=timedelta(days=5))
        recorded = datetime(2026, 1, 5, 15, tzinfo=UTC)
        assert all(a.owed_at > recorded for a in alerting.alerts(case_id=case.case_id))
        assert alerting.get(case.case_id).state == "panel_eligible"


class TestLongOutage:
    def test_an_outage_longer_than_every_retry_loses_nothing(
        self, db_url, sql_engine_for, clock, workflows
    ):
        """Alerts dead-lettered during a ten-hour outage are sent once the server is back."""
        port = free_port()
        settings = rrm.AlertSettings(admin_address="admin@rrm.example")
        engine = make_engine(db_url, sql_engine_for, clock, workflows, port, settings)
        open_case(engine, officers=(ANA,))
        # Ten hours down: more than the twelve attempts (about 7.5 hours) of a round.
        skip(engine, clock, to=datetime(2025, 1, 8, 1, tzinfo=UTC))
        (reminder,) = [a for a in engine.alerts() if a.kind is rrm.AlertKind.REMINDER]
        assert reminder.status in {rrm.AlertStatus.FAILED, rrm.AlertStatus.DEAD}
        recorder = Recorder()
        controller = Controller(recorder, hostname="127.0.0.1", port=port)
        controller.start()
        try:
            skip(engine, clock, by=timedelta(hours=2))
        finally:
            controller.stop()
        reminders = [a for a in engine.alerts() if a.kind is rrm.AlertKind.REMINDER]
        assert [a.status for a in reminders] == [rrm.AlertStatus.SENT]
        to = [addr for e in recorder.envelopes for addr in e.rcpt_tos]
        assert to.count("ana@ustr.example") == 1
        assert to.count("admin@rrm.example") <= 1
