"""The case cache, on SQLite and PostgreSQL: a cached copy is never served stale.

Two engines on one database stand for two processes: each has its own cache, and
every change one makes must be seen by the other at its next read.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

import rrm
from rrm.adapters.sql.cache import CaseCache
from rrm.adapters.sql.engine import make_engine
from rrm.adapters.sql.uow import SqlUnitOfWorkFactory

from .test_engine import FACILITY, fire, open_cmd


@pytest.fixture(name="other")
def _other(engine, clock, workflows, db_url, sql_engine_for) -> rrm.CaseEngine:
    """A second engine (a second process) on the same database, its own cache."""
    return rrm.bootstrap(sql_engine_for(db_url), clock=clock, workflows=workflows)


def fresh(db_url: str, workflows, clock, case_id: str) -> rrm.Case:
    """The case as a new process with an empty cache loads it."""
    sql = make_engine(db_url)
    try:
        return rrm.bootstrap(sql, clock=clock, workflows=workflows).get(case_id)
    finally:
        sql.dispose()


def test_a_change_by_another_process_is_seen(engine, other, clock):
    """A fire by one engine is seen by the other, whose cached copy is now old."""
    case = engine.open_case(open_cmd())
    clock.advance(timedelta(hours=1))
    engine.fire(fire(case, "suspend_liquidation"))  # cached in `engine`
    clock.advance(timedelta(hours=1))
    other.fire(fire(case, "respondent_agrees", "respondent"))
    clock.advance(timedelta(hours=1))
    after = engine.fire(fire(case, "respondent_finds_denial", "respondent"))
    assert after.version == 4
    assert after.state == engine.get(case.case_id).state
    assert engine.verify(case.case_id).ok
    # The 10-day answer closed by `other` is closed in `engine`'s copy too.
    assert "respondent_answer" not in after.open_deadlines


def test_cached_copy_equals_a_fresh_load(engine, clock, workflows, db_url):
    """Through fires, an extension, a pause and a resume, what the engine returns
    from its cache is exactly what a new process loads."""
    case = engine.open_case(open_cmd())
    steps = [
        lambda: engine.fire(fire(case, "suspend_liquidation")),
        lambda: engine.extend(
            rrm.ExtendDeadline(
                case_id=case.case_id,
                key="respondent_review",
                new_date=case.open_deadlines["respondent_review"].due_date
                + timedelta(days=10),
                actor="officer:ana",
                role="ustr",
                reason="agreed by both Parties",
            )
        ),
        lambda: engine.pause(
            rrm.PauseDeadline(
                case_id=case.case_id,
                key="respondent_review",
                actor="officer:ana",
                role="ustr",
                reason="tolled",
            )
        ),
        lambda: engine.resume(
            rrm.ResumeDeadline(
                case_id=case.case_id,
                key="respondent_review",
                actor="officer:ana",
                role="ustr",
                reason="resumed",
            )
        ),
        lambda: engine.fire(fire(case, "respondent_agrees", "respondent")),
    ]
    for step in steps:
        clock.advance(timedelta(hours=5))
        step()
        assert engine.get(case.case_id) == fresh(
            db_url, engine.workflows, clock, case.case_id
        )


def test_the_sweep_of_another_process_is_not_undone(engine, other, clock):
    """Alert bookkeeping written by another worker's sweep (no new version) is not
    overwritten from a cached copy: no alert is owed twice, nothing is re-queued."""
    case = engine.open_case(open_cmd())
    clock.advance(timedelta(hours=1))
    engine.fire(fire(case, "suspend_liquidation"))  # cached in `engine`
    clock.advance(timedelta(days=6))
    other.tick()  # reminders of the 10-day answer: alerts_through moves on
    swept = other.get(case.case_id).open_deadlines["respondent_answer"]
    queued = len(other.alerts())
    assert queued > 0
    assert swept.alerts_through is not None
    # `engine` still caches version 2 with alerts_through unset; what it returns
    # and writes next must start from the swept row.
    clock.advance(timedelta(minutes=1))
    after = engine.fire(
        fire(case, "resume_liquidation", payload={"basis": "USTR notice"})
    )
    answer = after.open_deadlines["respondent_answer"]
    assert (answer.alerts_through, answer.next_action_at) == (
        swept.alerts_through,
        swept.next_action_at,
    )
    engine.tick()
    assert len(engine.alerts()) == queued


def test_facility_details_come_from_the_registry(engine, other, clock):
    """Facility details updated by another case's opening show in a cached case."""
    case = engine.open_case(open_cmd())
    clock.advance(timedelta(hours=1))
    engine.fire(fire(case, "suspend_liquidation"))
    renamed = rrm.Facility(
        facility_id=FACILITY.facility_id,
        name="Planta Renombrada",
        owner=FACILITY.owner,
        country=FACILITY.country,
        sector=FACILITY.sector,
    )
    other.open_case(open_cmd("USTR-2025-002", facility=renamed))
    assert engine.get(case.case_id).facility.name == "Planta Renombrada"


def test_a_rolled_back_change_is_not_cached(engine, clock, sql_engine_for, db_url):
    """A change whose transaction does not commit leaves no trace in the cache."""
    case = engine.open_case(open_cmd())
    clock.advance(timedelta(hours=1))
    before = engine.fire(fire(case, "suspend_liquidation"))
    # A subscriber cannot undo a commit, so break the commit itself: a trigger
    # that refuses the next history entry makes the transaction fail.
    sql = sql_engine_for(db_url)
    with sql.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.execute(
                sa.text(
                    "CREATE TRIGGER no_more BEFORE INSERT ON rrm_case_event "
                    "BEGIN SELECT RAISE(ABORT, 'refused'); END"
                )
            )
        else:
            conn.execute(
                sa.text(
                    "CREATE FUNCTION refuse() RETURNS trigger AS "
                    "$$ BEGIN RAISE EXCEPTION 'refused'; END $$ LANGUAGE plpgsql"
                )
            )
            conn.execute(
                sa.text(
                    "CREATE TRIGGER no_more BEFORE INSERT ON rrm_case_event "
                    "FOR EACH ROW EXECUTE FUNCTION refuse()"
                )
            )
    clock.advance(timedelta(hours=1))
    with pytest.raises(rrm.StorageError):
        engine.fire(fire(case, "respondent_agrees", "respondent"))
    with sql.begin() as conn:
        conn.execute(
            sa.text(
                "DROP TRIGGER no_more"
                + ("" if conn.dialect.name == "sqlite" else " ON rrm_case_event")
            )
        )
    assert engine.get(case.case_id) == before
    clock.advance(timedelta(hours=1))
    after = engine.fire(fire(case, "respondent_agrees", "respondent"))
    assert after.version == 3
    assert engine.verify(case.case_id).ok


def test_cache_is_bounded_and_can_be_off():
    """The cache keeps at most its size, evicting the least recently used case."""
    from rrm.adapters.sql.cache import CachedChildren

    cache = CaseCache(2)

    def children(version: int) -> CachedChildren:
        return CachedChildren(
            version=version,
            schedule_seq=0,
            last_hash="h",
            petitioners=(),
            officers=(),
            deadlines=(),
        )

    cache.publish({"a": children(1), "b": children(1)})
    assert cache.get("a", version=1, schedule_seq=0) is not None  # a is now recent
    cache.publish({"c": children(1)})
    assert cache.get("b", version=1, schedule_seq=0) is None
    assert cache.get("a", version=2, schedule_seq=0) is None  # stale: dropped
    assert len(cache) == 1
    assert SqlUnitOfWorkFactory(make_engine("sqlite://"), cache_size=0).cache is None
    with pytest.raises(ValueError, match="negative"):
        CaseCache(-1)


def test_a_refusal_on_a_stale_copy_is_decided_again(engine, other, clock):
    """The copy says the event is not allowed, but another process has moved the
    case to a state where it is: the fire is decided again on the stored case."""
    case = engine.open_case(open_cmd())
    clock.advance(timedelta(hours=1))
    engine.fire(fire(case, "suspend_liquidation"))  # engine's copy: review_requested
    clock.advance(timedelta(hours=1))
    other.fire(fire(case, "respondent_agrees", "respondent"))  # now reviewing
    clock.advance(timedelta(hours=1))
    # Only possible once Mexico reviews; the copy still says "review requested".
    after = engine.fire(fire(case, "respondent_finds_denial", "respondent"))
    assert after.version == 4
    assert [e.seq for e in engine.history(case.case_id)] == [1, 2, 3, 4]
    assert engine.verify(case.case_id).ok


def test_an_expected_version_newer_than_the_copy(engine, other, clock):
    """A caller who read the case after another process changed it passes that
    newer version; the stale copy must not turn it into a conflict."""
    case = engine.open_case(open_cmd())
    clock.advance(timedelta(hours=1))
    engine.fire(fire(case, "suspend_liquidation"))
    clock.advance(timedelta(hours=1))
    moved = other.fire(fire(case, "respondent_agrees", "respondent"))
    clock.advance(timedelta(hours=1))
    after = engine.fire(
        fire(
            case,
            "respondent_finds_denial",
            "respondent",
            expected_version=moved.version,
        )
    )
    assert after.version == moved.version + 1
    # And an expected version that is really out of date is still refused.
    with pytest.raises(rrm.ConcurrencyConflict):
        engine.fire(
            fire(
                case,
                "remediation_plan_agreed",
                payload={"due": "2025-09-30"},
                expected_version=moved.version,
            )
        )


def test_a_fire_returns_the_registry_facility(engine, other, clock):
    """A fire decided on this process's copy shows facility details another
    process changed since (the change moves the case's stamp)."""
    case = engine.open_case(open_cmd())
    clock.advance(timedelta(hours=1))
    engine.fire(fire(case, "suspend_liquidation"))
    renamed = rrm.Facility(
        facility_id=FACILITY.facility_id,
        name="Planta Renombrada",
        owner=FACILITY.owner,
        country=FACILITY.country,
        sector=FACILITY.sector,
    )
    other.open_case(open_cmd("USTR-2025-002", facility=renamed))
    clock.advance(timedelta(hours=1))
    after = engine.fire(fire(case, "respondent_agrees", "respondent"))
    assert after.facility.name == "Planta Renombrada"


def test_a_caller_editing_a_returned_case_changes_nothing(engine, clock):
    """Attributes of a returned case are the caller's own: editing them in place
    (which the Mapping type forbids, but Python allows) reaches neither the
    cache nor the next write."""
    case = engine.open_case(open_cmd())
    clock.advance(timedelta(hours=1))
    returned = engine.fire(fire(case, "suspend_liquidation"))
    returned.attributes["claim"]["basis"] = "tampered"  # type: ignore[index]
    clock.advance(timedelta(hours=1))
    after = engine.fire(fire(case, "respondent_agrees", "respondent"))
    assert after.attributes["claim"]["basis"] == "annex_23a_legislation"
    assert engine.get(case.case_id).attributes == after.attributes
