"""The sweep's batches, on SQLite and PostgreSQL: fast when all is well, isolated
when one case is broken.

A batch is swept without savepoints and written in one flush; if anything in it
fails, it is rolled back and done again case by case, so one broken case (here a
case pinned to a workflow version this process does not have) never blocks the
alerts of the others.
"""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from structlog.testing import capture_logs

import rrm

from .test_engine import open_cmd


def test_one_broken_case_does_not_block_the_batch(
    clock, workflows, db_url, sql_engine_for
):
    sql = sql_engine_for(db_url)
    settings = rrm.AlertSettings(batch=10)
    engine = rrm.bootstrap(
        sql, clock=clock, workflows=workflows, upgrade=True, alert_settings=settings
    )
    cases = [engine.open_case(open_cmd(f"USTR-2025-{i:03}")) for i in range(25)]
    broken = cases[12].case_id
    with sql.begin() as conn:
        conn.execute(
            sa.text("UPDATE rrm_case SET workflow_version = 99 WHERE case_id = :c"),
            {"c": broken},
        )
    clock.advance(timedelta(days=11))  # Mexico's 10-day answer has lapsed
    with capture_logs() as logs:
        report = engine.tick()
    events = [e["event"] for e in logs]
    assert events.count("sweep_batch_retried") == 1
    assert [e["case_id"] for e in logs if e["event"] == "case_sweep_failed"] == [broken]
    assert report.lapsed == 24
    alerted = {a.case_id for a in engine.alerts()}
    assert alerted == {c.case_id for c in cases} - {broken}
    # The healthy cases moved on (Mexico's silence makes them panel-eligible);
    # the broken one is untouched and comes back on the next tick.
    assert engine.get(cases[0].case_id).version > 1
    with sql.begin() as conn:
        version = conn.execute(
            sa.text("SELECT version FROM rrm_case WHERE case_id = :c"), {"c": broken}
        ).scalar_one()
    assert version == 1
    with capture_logs() as logs:
        engine.tick()
    assert [e["case_id"] for e in logs if e["event"] == "case_sweep_failed"] == [broken]


def test_a_healthy_sweep_writes_each_batch_in_one_flush(
    clock, workflows, db_url, sql_engine_for
):
    """Statements per batch do not grow with the cases' alerts: the alerts of a
    batch are written by one statement (executemany), not one per alert."""
    sql = sql_engine_for(db_url)
    settings = rrm.AlertSettings(batch=50)
    engine = rrm.bootstrap(
        sql, clock=clock, workflows=workflows, upgrade=True, alert_settings=settings
    )
    for i in range(50):
        engine.open_case(open_cmd(f"USTR-2025-{i:03}"))
    clock.advance(timedelta(days=5))  # reminders owed, nothing lapsed
    with capture_logs() as logs:
        report = engine.tick()
    assert report.queued >= 50
    assert report.lapsed == 0
    assert "sweep_batch_retried" not in [e["event"] for e in logs]
    assert len(engine.alerts()) == report.queued
    # A second tick at the same instant owes nothing more.
    assert engine.tick().queued == 0
