"""Tampering with the stored history is found by ``engine.verify`` and ``rrm audit verify``.

Each test edits, deletes or inserts a row of ``rrm_case_event`` with plain SQL (on
SQLite and PostgreSQL), then checks that the engine names the first broken entry and
that ``rrm audit verify`` exits 1 and names it too. The single-column edit of
``test_tampered_history_is_detected`` (tests/contract/test_engine.py) is not repeated.
"""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

import rrm
from rrm.cli import main
from rrm.domain.case import entry_hash

FACILITY = rrm.Facility(
    facility_id="MX-T", name="Planta", owner="Grupo", country=rrm.Party.MX
)
CLAIM = rrm.Claim(basis="annex_23a_legislation", sector_category="manufacturing")


@pytest.fixture(name="case")
def _case(engine: rrm.CaseEngine, clock: Any) -> rrm.Case:
    """A case with four history entries (open, agree, pause, a second case beside)."""
    case = engine.open_case(
        rrm.OpenCase(
            workflow="usmca-31a",
            initiation="request",
            complainant="US",
            respondent="MX",
            facility=FACILITY,
            claim=CLAIM,
            external_ref="TAMPER-1",
            actor="officer:ana",
            role="ustr",
            payload={"note": "first"},
        )
    )
    clock.advance(timedelta(days=1))
    engine.fire(
        rrm.FireEvent(
            case_id=case.case_id,
            event="respondent_agrees",
            actor="mx",
            role="respondent",
            payload={"note": "agreed"},
        )
    )
    clock.advance(timedelta(days=1))
    engine.pause(
        rrm.PauseDeadline(
            case_id=case.case_id,
            key="respondent_review",
            actor="ana",
            role="ustr",
            reason="closure",
        )
    )
    clock.advance(timedelta(days=1))
    engine.resume(
        rrm.ResumeDeadline(
            case_id=case.case_id,
            key="respondent_review",
            actor="ana",
            role="ustr",
            reason="reopened",
        )
    )
    return engine.get(case.case_id)


def sql(url: str, sql_engine_for: Any, statement: str, **params: Any) -> None:
    with sql_engine_for(url).begin() as conn:
        conn.execute(sa.text(statement), params)


def audit(db_url: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["audit", "verify", "--db", db_url])
    return code, out.getvalue() + err.getvalue()


def assert_broken_at(engine: rrm.CaseEngine, case: rrm.Case, url: str, seq: int):
    assert engine.verify(case.case_id).first_broken_seq == seq
    code, text = audit(url)
    assert code == 1, text
    assert f"BROKEN at entry {seq}" in text
    assert "Traceback" not in text


def test_untouched_history_verifies(engine, case, db_url):
    assert engine.verify(case.case_id).ok
    code, text = audit(db_url)
    assert code == 0, text


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("reason", "nothing happened"),
        ("role", "ustr"),
        ("event", "respondent_declines"),
        ("to_state", "closed"),
        ("occurred_at", "2020-01-01 00:00:00"),
        ("idempotency_key", "forged"),
    ],
)
def test_edited_column_is_found(engine, case, db_url, sql_engine_for, column, value):
    sql(
        db_url,
        sql_engine_for,
        f"UPDATE rrm_case_event SET {column} = :v WHERE seq = 2 AND case_id = :c",
        v=value,
        c=case.case_id,
    )
    assert_broken_at(engine, case, db_url, 2)


def test_edited_payload_is_found(engine, case, db_url, sql_engine_for):
    sql(
        db_url,
        sql_engine_for,
        "UPDATE rrm_case_event SET payload = :p WHERE seq = 1 AND case_id = :c",
        p='{"note": "rewritten"}',
        c=case.case_id,
    )
    assert_broken_at(engine, case, db_url, 1)


def test_rehashed_entry_breaks_the_next_link(engine, case, db_url, sql_engine_for):
    """Editing an entry and recomputing its own hash still breaks the link after it."""
    entry = engine.history(case.case_id)[1]
    forged = entry_hash(
        prev_hash=entry.prev_hash,
        case_id=entry.case_id,
        seq=entry.seq,
        event=entry.event,
        from_state=entry.from_state,
        to_state=entry.to_state,
        actor="mallory",
        role=entry.role,
        reason=entry.reason,
        payload=entry.payload,
        occurred_at=entry.occurred_at,
        recorded_at=entry.recorded_at,
        idempotency_key=entry.idempotency_key,
    )
    sql(
        db_url,
        sql_engine_for,
        "UPDATE rrm_case_event SET actor = 'mallory', hash = :h "
        "WHERE seq = 2 AND case_id = :c",
        h=forged,
        c=case.case_id,
    )
    assert_broken_at(engine, case, db_url, 3)


def test_deleted_middle_entry_is_found(engine, case, db_url, sql_engine_for):
    sql(
        db_url,
        sql_engine_for,
        "DELETE FROM rrm_case_event WHERE seq = 2 AND case_id = :c",
        c=case.case_id,
    )
    # Entry 3 now stands second: its number and its link are both wrong.
    assert_broken_at(engine, case, db_url, 3)


def _copy_entry(db_url, sql_engine_for, case_id, seq, new_seq, **changes):
    """Insert a copy of entry *seq* as *new_seq* with *changes* (a forged row)."""
    columns = (
        "case_id", "event", "from_state", "to_state", "actor", "role", "reason",
        "payload", "occurred_at", "recorded_at", "prev_hash", "hash",
    )  # fmt: skip
    chosen = [f":{c}" if c in changes else c for c in columns]
    sql(
        db_url,
        sql_engine_for,
        f"INSERT INTO rrm_case_event (seq, idempotency_key, {', '.join(columns)}) "
        f"SELECT :new_seq, NULL, {', '.join(chosen)} FROM rrm_case_event "
        "WHERE case_id = :c AND seq = :s",
        new_seq=new_seq,
        c=case_id,
        s=seq,
        **changes,
    )


def test_inserted_entry_with_a_bad_hash_is_found(engine, case, db_url, sql_engine_for):
    last = engine.history(case.case_id)[-1]
    _copy_entry(
        db_url,
        sql_engine_for,
        case.case_id,
        last.seq,
        last.seq + 1,
        prev_hash=last.hash,
        actor="mallory",
    )
    assert_broken_at(engine, case, db_url, last.seq + 1)


def test_inserted_entry_with_a_stolen_hash_is_found(
    engine, case, db_url, sql_engine_for
):
    """A forged row that copies the next entry's hash still fails its own check."""
    entries = engine.history(case.case_id)
    _copy_entry(
        db_url,
        sql_engine_for,
        case.case_id,
        entries[-1].seq,
        entries[-1].seq + 1,
        prev_hash=entries[-1].hash,
        hash=entries[1].hash,
    )
    assert_broken_at(engine, case, db_url, entries[-1].seq + 1)


def test_deleted_newest_entry_is_found(engine, case, db_url, sql_engine_for):
    sql(
        db_url,
        sql_engine_for,
        "DELETE FROM rrm_case_event WHERE seq = :s AND case_id = :c",
        s=case.version,
        c=case.case_id,
    )
    assert not engine.verify(case.case_id).ok
    code, _ = audit(db_url)
    assert code == 1


def test_appended_entry_with_a_recomputed_hash_is_found(
    engine, case, db_url, sql_engine_for
):
    last = engine.history(case.case_id)[-1]
    forged = entry_hash(
        prev_hash=last.hash,
        case_id=last.case_id,
        seq=last.seq + 1,
        event=last.event,
        from_state=last.from_state,
        to_state=last.to_state,
        actor="mallory",
        role=last.role,
        reason=last.reason,
        payload=last.payload,
        occurred_at=last.occurred_at,
        recorded_at=last.recorded_at,
        idempotency_key=None,
    )
    _copy_entry(
        db_url,
        sql_engine_for,
        case.case_id,
        last.seq,
        last.seq + 1,
        prev_hash=last.hash,
        actor="mallory",
        hash=forged,
    )
    assert not engine.verify(case.case_id).ok
    code, _ = audit(db_url)
    assert code == 1
