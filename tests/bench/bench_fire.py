"""B1: persisted transitions per second on a SQLite file, against a plain ``sqlite3``
script writing the same rows in the same run.

Every fire is a realistic one that moves deadlines: on each of many usmca-31a cases
opened by a request for review, ``suspend_liquidation`` (state unchanged, attributes
change), ``respondent_agrees`` (closes the 10-day answer deadline) and
``respondent_finds_denial`` (closes the 45-day review) and
``remediation_plan_agreed`` (opens the agreed remediation deadline), fired round-robin across the cases. Each fire is one transaction of the engine.

The reference replays, with the standard library's ``sqlite3`` on a copy of the
database taken before the fires, the rows the engine wrote: per fire one
``BEGIN IMMEDIATE``, an UPDATE of the case row guarded by its version, the INSERT of
the history entry, the INSERT of each deadline it opened and an UPDATE of each
deadline it changed (the same columns the engine updates: those a change can
move), then COMMIT, with the engine's pragmas (WAL, synchronous=NORMAL,
foreign_keys=ON). Statements are counted at the driver (``set_trace_callback``),
BEGIN and COMMIT included.

Run alone:  python tests/bench/bench_fire.py [--quick]
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import sqlalchemy as sa
from common import START, Row, median, open_cmd, quiet

import rrm
from rrm.adapters.sql.engine import make_engine
from rrm.adapters.sql.repository import DEADLINE_MUTABLE
from rrm.testing import FakeClock

TARGET = 0.25
CYCLE = (
    ("suspend_liquidation", "ustr"),
    ("respondent_agrees", "respondent"),
    ("respondent_finds_denial", "respondent"),
    ("remediation_plan_agreed", "ustr"),
)
PAYLOADS = {"remediation_plan_agreed": {"due": "2025-09-30"}}
PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA busy_timeout=5000",
    "PRAGMA foreign_keys=ON",
    "PRAGMA synchronous=NORMAL",
)


def _engine_run(path: Path, copy: Path, cases: int) -> tuple[float, int, int]:
    """Open the cases, copy the file, fire; return seconds, fires, statements."""
    clock = FakeClock(START)
    sql = make_engine(f"sqlite:///{path}")
    engine = rrm.bootstrap(sql, clock=clock, upgrade=True)
    ids = [engine.open_case(open_cmd(i)).case_id for i in range(cases)]
    sql.dispose()  # checkpoints the WAL so the copy holds everything
    shutil.copyfile(path, copy)
    sql = make_engine(f"sqlite:///{path}")
    statements = [0]

    def _count(_sql: str) -> None:
        statements[0] += 1

    @sa.event.listens_for(sql, "connect")
    def _trace(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        dbapi_connection.set_trace_callback(_count)

    engine = rrm.bootstrap(sql, clock=clock)

    clock.advance(timedelta(hours=1))
    statements[0] = 0
    fires = 0
    start = time.perf_counter()
    for event, role in CYCLE:
        for case_id in ids:
            clock.advance(timedelta(seconds=1))
            engine.fire(
                rrm.FireEvent(
                    case_id=case_id,
                    event=event,
                    actor="b",
                    role=role,
                    payload=PAYLOADS.get(event, {}),
                )
            )
            fires += 1
    seconds = time.perf_counter() - start
    sql.dispose()
    return seconds, fires, statements[0]


def _writes(path: Path) -> list[tuple[tuple, tuple, list[tuple], list[tuple]]]:
    """Per fire, in the engine's order: case update, entry, opened and changed deadlines."""
    db = sqlite3.connect(path)
    events = db.execute(
        "SELECT * FROM rrm_case_event WHERE seq > 1 ORDER BY recorded_at, case_id"
    ).fetchall()
    ecols = [c[1] for c in db.execute("PRAGMA table_info(rrm_case_event)")]
    dcols = [c[1] for c in db.execute("PRAGMA table_info(rrm_deadline)")]
    deadlines = db.execute("SELECT * FROM rrm_deadline").fetchall()
    cases = {
        r[0]: r
        for r in db.execute(
            "SELECT case_id, state, attributes, updated_at, last_event_at FROM rrm_case"
        )
    }
    db.close()
    ci, si, ti = ecols.index("case_id"), ecols.index("seq"), ecols.index("to_state")
    d_case, d_open, d_closed = (
        dcols.index(k) for k in ("case_id", "opened_seq", "closed_seq")
    )
    out = []
    for e in events:
        case_id, seq = e[ci], e[si]
        c = cases[case_id]
        update = (e[ti], seq, c[2], c[3], c[4], case_id, seq - 1)
        opened = [d for d in deadlines if d[d_case] == case_id and d[d_open] == seq]
        changed = [
            (*(d[dcols.index(c)] for c in DEADLINE_MUTABLE), d[0])
            for d in deadlines
            if d[d_case] == case_id and d[d_closed] == seq
        ]
        out.append((update, e, opened, changed))
    return out


def _plain_run(copy: Path, writes: list, dcols: list[str], ecols: list[str]) -> float:
    db = sqlite3.connect(copy, isolation_level=None)
    for p in PRAGMAS:
        db.execute(p)
    upd_case = (
        "UPDATE rrm_case SET state=?, version=?, attributes=?, updated_at=?, "
        "last_event_at=? WHERE case_id=? AND version=?"
    )
    ins_event = f"INSERT INTO rrm_case_event VALUES ({','.join('?' * len(ecols))})"
    ins_dl = f"INSERT INTO rrm_deadline VALUES ({','.join('?' * len(dcols))})"
    upd_dl = (
        "UPDATE rrm_deadline SET "
        + ", ".join(f"{c}=?" for c in DEADLINE_MUTABLE)
        + " WHERE deadline_id=?"
    )
    start = time.perf_counter()
    for update, entry, opened, changed in writes:
        db.execute("BEGIN IMMEDIATE")
        if db.execute(upd_case, update).rowcount != 1:
            raise RuntimeError("plain script: case version mismatch")
        db.execute(ins_event, entry)
        if opened:
            db.executemany(ins_dl, opened)
        if changed:
            db.executemany(upd_dl, changed)
        db.execute("COMMIT")
    seconds = time.perf_counter() - start
    db.close()
    return seconds


def run(*, quick: bool = False) -> list[Row]:
    quiet()
    cases = 60 if quick else 300
    repeats = 3 if quick else 5
    engine_rates, plain_rates = [], []
    stmts = rows_per_fire = 0.0
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            path, copy = Path(tmp) / "rrm.sqlite", Path(tmp) / "plain.sqlite"
            seconds, fires, statements = _engine_run(path, copy, cases)
            writes = _writes(path)
            if len(writes) != fires:
                raise RuntimeError(f"expected {fires} entries, found {len(writes)}")
            db = sqlite3.connect(path)
            dcols = [c[1] for c in db.execute("PRAGMA table_info(rrm_deadline)")]
            ecols = [c[1] for c in db.execute("PRAGMA table_info(rrm_case_event)")]
            db.close()
            plain = _plain_run(copy, writes, dcols, ecols)
            engine_rates.append(fires / seconds)
            plain_rates.append(fires / plain)
            stmts = statements / fires
            rows_per_fire = sum(2 + len(w[2]) + len(w[3]) for w in writes) / fires
    rate, ref = median(engine_rates), median(plain_rates)
    return [
        Row(
            "B1 fire, SQLite file (vs plain sqlite3)",
            rate,
            "fires/s",
            reference=ref,
            reference_unit="fires/s",
            target=">= 0.25 x plain",
            met=rate / ref >= TARGET,
            note=f"{cases} cases x {len(CYCLE)} events, median of {repeats}; "
            f"{rows_per_fire:.1f} rows written/fire, engine issues {stmts:.1f} "
            "SQL statements/fire",
        )
    ]


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    for row in run(quick=p.parse_args().quick):
        print(row, row.ratio)
