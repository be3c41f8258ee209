"""A history rewritten with every hash recomputed is found against an anchor.

The hash chain alone finds an edited entry, but someone with write access to the
database can rewrite an entry and recompute the hashes of it and every later
entry: the chain is whole again. An anchor (the newest entry's hash, taken by
``rrm audit anchor`` and kept outside the database) finds that rewrite.
Runs on SQLite and PostgreSQL with the case of the tamper suite.
"""

from __future__ import annotations

import io
import json
from contextlib import redirect_stderr, redirect_stdout
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa

import rrm
from rrm.cli import main
from rrm.domain.case import entry_hash

from .test_tamper import _case  # noqa: F401 - the shared `case` fixture

if TYPE_CHECKING:
    from pathlib import Path


def cli(*argv: str, stdout_only: bool = False) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue() + ("" if stdout_only else err.getvalue())


def rewrite_from(engine: rrm.CaseEngine, sql: sa.Engine, case_id: str, seq: int):
    """Change the actor of entry *seq* and recompute every hash from there on."""
    entries = engine.history(case_id)
    prev = entries[seq - 2].hash if seq > 1 else "0" * 64
    with sql.begin() as conn:
        for e in entries[seq - 1 :]:
            actor = "mallory" if e.seq == seq else e.actor
            new = entry_hash(
                prev_hash=prev,
                case_id=e.case_id,
                seq=e.seq,
                event=e.event,
                from_state=e.from_state,
                to_state=e.to_state,
                actor=actor,
                role=e.role,
                reason=e.reason,
                payload=e.payload,
                occurred_at=e.occurred_at,
                recorded_at=e.recorded_at,
                idempotency_key=e.idempotency_key,
            )
            conn.execute(
                sa.text(
                    "UPDATE rrm_case_event SET actor = :a, prev_hash = :p, hash = :h "
                    "WHERE case_id = :c AND seq = :s"
                ),
                {"a": actor, "p": prev, "h": new, "c": case_id, "s": e.seq},
            )
            prev = new


def test_rewrite_passes_the_chain_but_not_the_anchor(
    engine, case, db_url, sql_engine_for
):
    anchor = engine.anchor(case.case_id)
    assert (anchor.case_id, anchor.seq) == (case.case_id, case.version)
    assert engine.verify(case.case_id, anchor=anchor).ok
    rewrite_from(engine, sql_engine_for(db_url), case.case_id, 2)
    assert engine.verify(case.case_id).ok  # the chain alone cannot tell
    report = engine.verify(case.case_id, anchor=anchor)
    assert not report.ok
    assert report.first_broken_seq is None
    assert report.anchor_mismatch_seq == anchor.seq


def test_entries_after_the_anchor_are_allowed(engine, case, clock):
    """Fires after the anchor was taken do not disturb it."""
    anchor = engine.anchor(case.case_id)
    engine.fire(
        rrm.FireEvent(
            case_id=case.case_id,
            event="suspend_liquidation",
            actor="officer:ana",
            role="ustr",
        )
    )
    assert engine.verify(case.case_id, anchor=anchor).ok


def test_anchor_of_another_case_is_refused(engine, case):
    other = rrm.ChainAnchor(case_id="someone-else", seq=1, hash="0" * 64)
    with pytest.raises(rrm.InvalidInput, match="anchor"):
        engine.verify(case.case_id, anchor=other)


def test_cli_anchor_then_verify(engine, case, db_url, sql_engine_for, tmp_path: Path):
    kept = tmp_path / "anchors.json"
    code, text = cli("audit", "anchor", "--db", db_url, "--out", str(kept))
    assert code == 0, text
    data = json.loads(kept.read_text())
    assert data["format"] == "rrm-anchors/1"
    refs = {a["ref"] for a in data["anchors"]}
    assert case.external_ref in refs
    code, text = cli("audit", "verify", "--db", db_url, "--anchors", str(kept))
    assert code == 0, text
    rewrite_from(engine, sql_engine_for(db_url), case.case_id, 3)
    code, text = cli("audit", "verify", "--db", db_url)
    assert code == 0, text  # without the anchors the rewrite goes unseen
    code, text = cli("audit", "verify", "--db", db_url, "--anchors", str(kept))
    assert code == 1, text
    assert f"CHANGED at or before entry {case.version}" in text
    code, text = cli(
        "audit",
        "verify",
        "--db",
        db_url,
        "--anchors",
        str(kept),
        "--json",
        stdout_only=True,
    )
    rows = {r["ref"]: r for r in json.loads(text)}
    assert rows[case.external_ref]["anchor_mismatch_seq"] == case.version


def test_cli_finds_a_deleted_case(engine, case, db_url, sql_engine_for, tmp_path):
    kept = tmp_path / "anchors.json"
    assert cli("audit", "anchor", "--db", db_url, "--out", str(kept))[0] == 0
    with sql_engine_for(db_url).begin() as conn:
        for table in (
            "rrm_alert",
            "rrm_deadline",
            "rrm_case_event",
            "rrm_case_officer",
            "rrm_petitioner",
            "rrm_determination",
            "rrm_case",
        ):
            conn.execute(
                sa.text(f"DELETE FROM {table} WHERE case_id = :c"),
                {"c": case.case_id},
            )
    code, text = cli("audit", "verify", "--db", db_url, "--anchors", str(kept))
    assert code == 1, text
    assert "CASE MISSING" in text


@pytest.mark.parametrize(
    "content",
    ["not json", "[]", '{"format": "other"}', '{"format": "rrm-anchors/1"}',
     '{"format": "rrm-anchors/1", "anchors": [{"case_id": "x", "seq": 0, "hash": "a"}]}'],
)  # fmt: skip
def test_bad_anchors_file_is_a_one_line_error(
    engine, case, db_url, tmp_path, content: Any
):
    bad = tmp_path / "anchors.json"
    bad.write_text(content)
    code, text = cli("audit", "verify", "--db", db_url, "--anchors", str(bad))
    assert code == 1
    assert text.strip().count("\n") == 0, text
    assert "--anchors" in text
