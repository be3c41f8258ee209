"""The chain check follows the states and the case row, not only the hashes (#13).

Each test tampers with the database through its own client (``sqlite3``, or
``psycopg`` on PostgreSQL), as someone with write access would, then checks what
``engine.verify`` and ``rrm audit verify`` find:

- a state edited in the case row and then carried on by a legal event: the
  event's entry is whole, but it starts from a state the entry before it never
  ended in;
- a state, version or workflow version edited in the case row alone: the row no
  longer agrees with its last entry (or last migration);
- the newest entry deleted with the row set back to the entry before it: every
  check of the chain passes, and only an anchor taken since that entry finds it.
"""

from __future__ import annotations

import contextlib
import io
import json
import sqlite3
from contextlib import redirect_stderr, redirect_stdout
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import psycopg
import pytest

import rrm
from rrm.cli import main

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

FACILITY = rrm.Facility(
    facility_id="MX-C", name="Planta", owner="Grupo", country=rrm.Party.MX
)
CLAIM = rrm.Claim(basis="annex_23a_legislation", sector_category="manufacturing")
REF = "CHAIN-1"


@contextlib.contextmanager
def raw(db_url: str) -> Iterator[Any]:
    """A cursor of the database's own client, committed on leaving the block."""
    if db_url.startswith("sqlite:///"):
        conn: Any = sqlite3.connect(db_url.removeprefix("sqlite:///"))
        style = "?"
    else:
        conn = psycopg.connect(db_url.replace("postgresql+psycopg://", "postgresql://"))
        style = "%s"
    try:
        cursor = conn.cursor()
        # One placeholder style for both clients: write "?" in the statements.
        yield lambda sql, *args: cursor.execute(sql.replace("?", style), args)
        conn.commit()
    finally:
        conn.close()


def audit(db_url: str, *args: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["audit", "verify", "--db", db_url, *args])
    return code, out.getvalue() + err.getvalue()


def fire(engine: rrm.CaseEngine, case: rrm.Case, event: str, role: str) -> rrm.Case:
    return engine.fire(
        rrm.FireEvent(case_id=case.case_id, event=event, actor="ana", role=role)
    )


@pytest.fixture(name="case")
def _case(engine: rrm.CaseEngine, clock: Any) -> rrm.Case:
    """A case opened (review_requested) and agreed to (respondent_reviewing)."""
    case = engine.open_case(
        rrm.OpenCase(
            workflow="usmca-31a",
            initiation="request",
            complainant="US",
            respondent="MX",
            facility=FACILITY,
            claim=CLAIM,
            external_ref=REF,
            actor="ana",
            role="ustr",
        )
    )
    clock.advance(timedelta(days=1))
    case = fire(engine, case, "respondent_agrees", "respondent")
    clock.advance(timedelta(days=1))
    assert (case.state, case.version) == ("respondent_reviewing", 2)
    return case


class TestLaunderedState:
    def test_edited_state_then_legal_event_is_found(self, engine, case, db_url):
        """A state edited in the row and then moved on by a legal event breaks there."""
        with raw(db_url) as sql:
            sql(
                "UPDATE rrm_case SET state = 'panel_eligible' WHERE case_id = ?",
                case.case_id,
            )
        # panel_eligible allows the panel request, so the engine records it.
        moved = fire(engine, case, "panel_requested", "ustr")
        assert moved.version == 3

        report = engine.verify(case.case_id)

        assert not report.ok
        assert report.first_broken_seq == 3
        assert report.problems == (
            (
                "entry 3 starts from 'panel_eligible' but entry 2 ended in "
                "'respondent_reviewing'"
            ),
        )

    def test_audit_verify_names_the_discontinuity(self, engine, case, db_url):
        """``rrm audit verify`` exits 1, names the entry and says why, in words and JSON."""
        with raw(db_url) as sql:
            sql(
                "UPDATE rrm_case SET state = 'panel_eligible' WHERE case_id = ?",
                case.case_id,
            )
        fire(engine, case, "panel_requested", "ustr")

        code, text = audit(db_url)
        json_code, out = audit(db_url, "--json")

        assert code == 1, text
        assert "BROKEN at entry 3" in text
        assert (
            f"{REF}: entry 3 starts from 'panel_eligible' but entry 2 ended in "
            "'respondent_reviewing'" in text
        )
        (row,) = json.loads(out)
        assert json_code == 1
        assert row["first_broken_seq"] == 3
        assert row["problems"] == [
            (
                "entry 3 starts from 'panel_eligible' but entry 2 ended in "
                "'respondent_reviewing'"
            )
        ]

    def test_edited_state_alone_is_found(self, engine, case, db_url):
        """A state edited in the row, nothing fired since: the row contradicts entry 2."""
        with raw(db_url) as sql:
            sql("UPDATE rrm_case SET state = 'closed' WHERE case_id = ?", case.case_id)

        report = engine.verify(case.case_id)

        assert report.first_broken_seq == 2
        assert report.problems == (
            (
                "case row says state 'closed', its last entry (2) ended in "
                "'respondent_reviewing'"
            ),
        )
        code, text = audit(db_url)
        assert code == 1
        assert "BROKEN at entry 2" in text

    def test_first_entry_starting_from_a_state_is_found(self, engine, case, db_url):
        """A case's first entry starts from nothing; one that starts from a state is
        broken (here re-hashed too, so only the state gives it away)."""
        first = engine.history(case.case_id)[0]
        assert first.from_state is None  # what opening a case writes
        rest = engine.history(case.case_id)[1:]
        forged = rrm_hash(first, from_state="panel_eligible")
        with raw(db_url) as sql:
            sql(
                "UPDATE rrm_case_event SET from_state = 'panel_eligible', hash = ? "
                "WHERE case_id = ? AND seq = 1",
                forged,
                case.case_id,
            )
            prev = forged
            for e in rest:  # re-link the later entries to the forged one
                new = rrm_hash(e, prev_hash=prev)
                sql(
                    "UPDATE rrm_case_event SET prev_hash = ?, hash = ? "
                    "WHERE case_id = ? AND seq = ?",
                    prev,
                    new,
                    case.case_id,
                    e.seq,
                )
                prev = new

        report = engine.verify(case.case_id)

        assert report.first_broken_seq == 1
        assert report.problems == (
            "entry 1 starts from 'panel_eligible', but a case opens from none",
        )


def rrm_hash(entry: rrm.HistoryEntry, **changes: Any) -> str:
    """The hash of *entry* with *changes* (a forger's recomputation)."""
    from rrm.domain.case import entry_hash

    fields = {
        "prev_hash": entry.prev_hash,
        "case_id": entry.case_id,
        "seq": entry.seq,
        "event": entry.event,
        "from_state": entry.from_state,
        "to_state": entry.to_state,
        "actor": entry.actor,
        "role": entry.role,
        "reason": entry.reason,
        "payload": entry.payload,
        "occurred_at": entry.occurred_at,
        "recorded_at": entry.recorded_at,
        "idempotency_key": entry.idempotency_key,
        "via": entry.via,
        "subject": entry.subject,
    }
    fields.update(changes)
    return entry_hash(**fields)


class TestCaseRow:
    def test_lowered_version_is_found(self, engine, case, db_url):
        """A row whose version is below its history's length names the uncounted entry."""
        with raw(db_url) as sql:
            sql("UPDATE rrm_case SET version = 1 WHERE case_id = ?", case.case_id)

        report = engine.verify(case.case_id)

        assert report.first_broken_seq == 2
        assert report.problems == (
            "case row says version 1, but the history goes on to entry 2",
        )

    def test_deleted_newest_entry_alone_is_found(self, engine, case, db_url):
        """Deleting the newest entry and leaving the row: that entry is missing."""
        with raw(db_url) as sql:
            sql(
                "DELETE FROM rrm_case_event WHERE case_id = ? AND seq = 2", case.case_id
            )

        report = engine.verify(case.case_id)

        assert report.first_broken_seq == 2
        assert report.problems == (
            (
                "case row says version 2, but the history ends at entry 1: entry 2 is "
                "missing"
            ),
        )

    def test_deleted_newest_entry_with_version_only_is_found(
        self, engine, case, db_url
    ):
        """Deleting the newest entry and lowering the version, but not the state."""
        with raw(db_url) as sql:
            sql(
                "DELETE FROM rrm_case_event WHERE case_id = ? AND seq = 2", case.case_id
            )
            sql("UPDATE rrm_case SET version = 1 WHERE case_id = ?", case.case_id)

        report = engine.verify(case.case_id)

        assert report.first_broken_seq == 1
        assert report.problems == (
            (
                "case row says state 'respondent_reviewing', its last entry (1) ended "
                "in 'review_requested'"
            ),
        )

    def test_edited_workflow_version_is_found_after_a_migration(
        self, engine, clock, db_url
    ):
        """A migrated case's row must carry the version its last migration moved to."""
        case = engine.open_case(
            rrm.OpenCase(
                workflow="usmca-31a",
                workflow_version=1,
                initiation="request",
                complainant="US",
                respondent="MX",
                facility=FACILITY,
                claim=CLAIM,
                external_ref="CHAIN-V1",
                actor="ana",
                role="ustr",
            )
        )
        clock.advance(timedelta(days=1))
        moved = engine.migrate_case(case.case_id, to_version=2, actor="admin")
        assert moved.workflow_version == 2
        assert engine.verify(case.case_id).ok
        with raw(db_url) as sql:
            sql(
                "UPDATE rrm_case SET workflow_version = 1 WHERE case_id = ?",
                case.case_id,
            )

        report = engine.verify(case.case_id)

        assert report.first_broken_seq == 2
        assert report.problems == (
            (
                "case row says workflow version 1, its last migration (entry 2) moved "
                "it to 2"
            ),
        )


def delete_newest_consistently(db_url: str, engine: rrm.CaseEngine, case: rrm.Case):
    """Delete the newest entry and set the row back to the entry before it."""
    entries = engine.history(case.case_id)
    newest, before = entries[-1], entries[-2]
    with raw(db_url) as sql:
        sql(
            "DELETE FROM rrm_case_event WHERE case_id = ? AND seq = ?",
            case.case_id,
            newest.seq,
        )
        sql(
            "UPDATE rrm_case SET version = ?, state = ? WHERE case_id = ?",
            before.seq,
            before.to_state,
            case.case_id,
        )


class TestDeletedNewestEntry:
    def test_without_an_anchor_only_the_replay_finds_it(self, engine, case, db_url):
        """The newest entry deleted and the row's version and state set back to the
        one before it: the chain alone cannot tell (the limit the README states);
        the replay names the rows the deleted entry changed, unless they are set
        back too."""
        delete_newest_consistently(db_url, engine, case)

        assert engine.verify(case.case_id, rows=False).ok
        report = engine.verify(case.case_id)
        assert report.first_broken_seq is None
        assert report.entries == 1
        assert "last_event_at" in {d.field for d in report.differences}
        assert audit(db_url)[0] == 1

    def test_an_anchor_taken_since_finds_it(self, engine, case, db_url):
        """An anchor of the deleted entry names it missing, in the engine and the CLI."""
        anchor = engine.anchor(case.case_id)
        assert anchor.seq == 2
        delete_newest_consistently(db_url, engine, case)

        report = engine.verify(case.case_id, anchor=anchor, rows=False)

        assert not report.ok
        assert report.first_broken_seq is None
        assert report.anchor_mismatch_seq == 2
        assert report.problems == ("anchored entry 2 is missing",)

    def test_audit_verify_with_anchors_finds_it(
        self, engine, case, db_url, tmp_path: Path
    ):
        """``rrm audit verify --anchors`` exits 1 and says the anchored entry is gone."""
        kept = tmp_path / "anchors.json"
        out = io.StringIO()
        with redirect_stdout(out):
            assert main(["audit", "anchor", "--db", db_url, "--out", str(kept)]) == 0
        delete_newest_consistently(db_url, engine, case)

        code, text = audit(db_url, "--anchors", str(kept))

        assert code == 1, text
        assert "CHANGED at or before entry 2" in text
        assert f"{REF}: anchored entry 2 is missing" in text

    def test_an_anchor_taken_before_the_deleted_entry_cannot(
        self, engine, case, db_url, clock
    ):
        """An anchor older than the deleted entry still holds: the anchor must be
        taken after the entry it is to protect."""
        anchor = engine.anchor(case.case_id)
        clock.advance(timedelta(hours=1))
        fire(engine, case, "suspend_liquidation", "ustr")
        delete_newest_consistently(db_url, engine, case)

        assert engine.verify(case.case_id, anchor=anchor, rows=False).ok
