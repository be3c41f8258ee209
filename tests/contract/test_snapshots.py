"""Consistency under concurrent writers, on SQLite and PostgreSQL.

Found by benchmark B5 (many writers on one case): on PostgreSQL each statement
of a transaction used to see its own snapshot, so a read could mix two versions
of a case, and a retry under an idempotency key could be answered with a case
older than its own entry. A second engine on the same database stands in for a
second process; a hook on the first engine's statements makes the race happen
at the worst moment every time.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa

import rrm
from rrm.adapters.sql.repository import SqlCaseRepository

from .test_engine import fire, open_cmd


@pytest.fixture(name="pair")
def _pair(clock, workflows, db_url, sql_engine_for):
    """Two engines (two processes) on one database, each on its own pool."""
    first, second = sql_engine_for(db_url), sql_engine_for(db_url)
    a = rrm.bootstrap(first, clock=clock, workflows=workflows, upgrade=True)
    b = rrm.bootstrap(second, clock=clock, workflows=workflows)
    return a, b, first


def test_a_read_is_one_snapshot(pair, clock, backend):
    """Cases read while another process commits a change are all old or all new,
    never the old case row with the new deadlines."""
    if backend != "postgres":
        pytest.skip("SQLite's transaction holds the database: no writer can interleave")
    a, b, first = pair
    case = a.open_case(open_cmd())
    a.open_case(open_cmd("USTR-2025-002"))
    clock.advance(timedelta(hours=1))
    written: list[rrm.Case] = []

    @sa.event.listens_for(first, "before_cursor_execute")
    def _between(_conn, _cursor, statement, *_rest) -> None:
        # Between the read of the case rows and the read of their deadlines.
        if (
            not written
            and statement.lstrip().startswith("SELECT")
            and ("FROM rrm_deadline" in statement)
        ):
            written.append(b.fire(fire(case, "respondent_agrees", "respondent")))

    got = {c.case_id: c for c in a.find(workflow="usmca-31a")}[case.case_id]
    assert written, "the other process did not write during the read"
    assert written[0].version == 2
    assert got.version == 1
    assert got.state == "review_requested"
    assert got.open_deadlines["respondent_answer"].status is rrm.DeadlineStatus.OPEN


def test_a_race_under_one_idempotency_key_answers_with_the_entry(
    pair, clock, monkeypatch
):
    """Two processes send the same keyed command at once: one entry is written and
    both are answered with the case that includes it."""
    a, b, _ = pair
    case = a.open_case(open_cmd())
    clock.advance(timedelta(hours=1))
    cmd = fire(
        case,
        "ustr_certifies_no_panel",
        payload={"reasons": "no denial found"},
        idempotency_key="K",
    )
    answers: dict[str, rrm.Case | BaseException] = {}

    def other() -> None:
        try:
            answers["b"] = b.fire(cmd)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion
            answers["b"] = exc

    racer = threading.Thread(target=other)
    main = threading.current_thread()
    look_up = SqlCaseRepository.entry_by_idempotency_key

    def between(self, case_id: str, key: str):
        if (
            threading.current_thread() is main
            and not racer.is_alive()
            and ("b" not in answers)
        ):
            # The other process sends the same command between this one's read
            # of the case and its look-up of the key.
            racer.start()
            racer.join(timeout=0.5)
        return look_up(self, case_id, key)

    monkeypatch.setattr(SqlCaseRepository, "entry_by_idempotency_key", between)
    answers["a"] = a.fire(cmd)
    racer.join(timeout=30)
    assert not racer.is_alive()
    entries = [e.seq for e in a.history(case.case_id) if e.idempotency_key == "K"]
    assert entries == [2]
    assert isinstance(answers["b"], rrm.Case), answers["b"]
    assert answers["a"].version == answers["b"].version == 2
    assert a.verify(case.case_id).ok


def test_plain_fires_on_one_case_queue_instead_of_failing(pair, clock):
    """Writers that do not ask for a version check are serialised, not refused:
    each fire is decided on the case as the previous one left it."""
    a, b, _ = pair
    case = a.open_case(open_cmd())
    results: list[rrm.Case | BaseException] = []
    lock = threading.Lock()

    def toggle(engine: rrm.CaseEngine, n: int) -> None:
        for _ in range(n):
            try:
                got: rrm.Case | BaseException = engine.fire(
                    fire(case, "ustr_certifies_no_panel", payload={"reasons": "r"})
                )
            except BaseException as exc:  # noqa: BLE001 - collected for the assertion
                got = exc
            with lock:
                results.append(got)

    threads = [threading.Thread(target=toggle, args=(e, 10)) for e in (a, b, a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    failures = [r for r in results if not isinstance(r, rrm.Case)]
    assert failures == []
    assert a.get(case.case_id).version == 1 + 40
    assert a.verify(case.case_id).ok
