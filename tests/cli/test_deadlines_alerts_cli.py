"""``rrm deadlines`` and ``rrm alerts``: what is due, what was sent, retry, ack."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

import rrm
from rrm.testing import FakeClock


class TestDeadlines:
    def test_lists_upcoming_deadlines_with_case_refs(self, any_db, run, open_args):
        """Within 15 days: the 10-day answer, not the 45-day review."""
        assert run(*open_args(any_db)).code == 0

        rows = run("deadlines", "--db", any_db, "--within", "15", "--json").json()
        human = run("deadlines", "--db", any_db, "--within", "60")

        assert [(r["ref"], r["key"]) for r in rows] == [
            ("USTR-2025-001", "respondent_answer")
        ]
        row = rows[0]
        assert row["days_left"] in {9, 10}
        assert row["overdue"] is False
        assert row["nominal"] is False
        assert row["timezone"] == "America/Mexico_City"
        assert "10 calendar days after the request for review" in row["explanation"]
        assert human.code == 0
        assert "respondent_review" in human.out
        assert "USTR-2025-001" in human.out

    def test_business_days_reach_further(self, opened, run):
        """--business counts --within in business days of the deadline's calendar."""
        calendar = run("deadlines", "--db", opened, "--within", "33", "--json").json()
        business = run(
            "deadlines", "--db", opened, "--within", "33", "--business", "--json"
        ).json()

        assert {r["key"] for r in calendar} == {"respondent_answer"}
        assert {r["key"] for r in business} == {
            "respondent_answer",
            "respondent_review",
        }

    def test_overdue_and_officer_filters(self, overdue, run):
        """--overdue lists lapsed deadlines; --officer keeps an officer's cases."""
        rows = run("deadlines", "--db", overdue, "--overdue", "--json").json()
        mine = run(
            "deadlines", "--db", overdue, "--overdue", "--officer", "ana", "--json"
        ).json()
        theirs = run(
            "deadlines", "--db", overdue, "--overdue", "--officer", "bob", "--json"
        ).json()

        assert {r["key"] for r in rows} == {"respondent_answer", "respondent_review"}
        assert all(r["overdue"] and r["days_left"] < 0 for r in rows)
        assert mine == rows
        assert theirs == []

    def test_a_negative_window_is_a_usage_error(self, opened, run):
        assert run("deadlines", "--db", opened, "--within", "-1").code == 2

    def test_nothing_due(self, sqlite_db, run):
        result = run("deadlines", "--db", sqlite_db)

        assert result.code == 0
        assert "no open deadlines" in result.out


@pytest.fixture(name="alerted")
def _alerted(sqlite_db, sql_engine_for):
    """A case opened in January 2025 and ticked nine days later: reminders queued.

    The engine's own API with a fake clock makes the outbox; the CLI only reads it.
    """
    clock = FakeClock(datetime(2025, 1, 6, 15, tzinfo=UTC))
    engine = rrm.bootstrap(sql_engine_for(sqlite_db), clock=clock)
    engine.open_case(
        rrm.OpenCase(
            workflow="usmca-31a", initiation="request", complainant="US",
            respondent="MX",
            facility=rrm.Facility(facility_id="MX-7", name="Planta", owner="Grupo",
                                  country=rrm.Party.MX),
            claim=rrm.Claim(basis="annex_23a_legislation",
                            sector_category="manufacturing"),
            external_ref="USTR-ALERTS", actor="officer:ana", role="ustr",
            officers=(rrm.Officer(officer_id="ana", role="ustr",
                                  email="ana@ustr.example"),),
        )
    )  # fmt: skip
    clock.advance(timedelta(days=9))
    engine.tick()
    assert engine.alerts()
    return sqlite_db


class TestAlerts:
    def _queued(self, db, run):
        return run("alerts", "--db", db, "--json").json()

    def test_lists_the_outbox(self, alerted, run):
        """Queued reminders, with filters by status, case and officer."""
        alerts = self._queued(alerted, run)
        pending = run("alerts", "--db", alerted, "--status", "pending", "--json").json()
        sent = run("alerts", "--db", alerted, "--status", "sent", "--json").json()
        by_case = run(
            "alerts", "--db", alerted, "--case", "USTR-ALERTS", "--json"
        ).json()
        to_ana = run("alerts", "--db", alerted, "--officer", "ana", "--json").json()
        to_bob = run("alerts", "--db", alerted, "--officer", "bob", "--json").json()
        human = run("alerts", "--db", alerted)

        assert alerts
        assert {a["ref"] for a in alerts} == {"USTR-ALERTS"}
        assert pending == alerts
        assert sent == []
        assert by_case == alerts
        assert to_ana == alerts
        assert to_bob == []
        assert human.code == 0
        assert "USTR-ALERTS" in human.out

    def test_an_unknown_status_is_a_user_error(self, sqlite_db, run, user_error):
        error = user_error(run("alerts", "--db", sqlite_db, "--status", "lost"))

        assert "lost" in error

    def test_acknowledges_an_alert(self, alerted, run):
        alert = self._queued(alerted, run)[0]

        result = run(
            "alerts", "ack", alert["alert_id"], "--officer", "ana", "--db", alerted,
            "--json",
        )  # fmt: skip

        assert result.code == 0, result.err
        assert result.json()["acknowledged_by"] == "ana"

    def test_retries_a_failed_alert(self, alerted, run, user_error, sql_engine_for):
        """Only failed or dead alerts can be retried; they go back to pending."""
        alert = self._queued(alerted, run)[0]
        user_error(run("alerts", "retry", alert["alert_id"], "--db", alerted))
        with sql_engine_for(alerted).begin() as conn:
            conn.execute(
                sa.text("UPDATE rrm_alert SET status = 'dead' WHERE alert_id = :a"),
                {"a": alert["alert_id"]},
            )

        result = run("alerts", "retry", alert["alert_id"], "--db", alerted, "--json")

        assert result.code == 0, result.err
        assert result.json()["status"] == "pending"

    def test_unknown_alert(self, sqlite_db, run, user_error):
        assert "nope" in user_error(run("alerts", "retry", "nope", "--db", sqlite_db))
        assert "nope" in user_error(
            run("alerts", "ack", "nope", "--officer", "a", "--db", sqlite_db)
        )
