"""B2: one tick (the sweep) over N open deadlines of which 1,000 are due.

The data is bulk-inserted with SQLAlchemy Core: one case is opened through the engine
as a template (usmca-31a by request: two open deadlines, one officer with an
e-mail), and its rows in rrm_facility, rrm_case, rrm_case_officer, rrm_case_event and
rrm_deadline are cloned under new ids, so every case is one the engine can load
(the cloned history hash chain is the template's own, which the tick does not check).
All deadlines get ``next_action_at`` far in the future except 1,000 (one per case):
900 owe reminders (``next_action_at`` in the past, due in the future) and 100 have
lapsed (``due_at`` also in the past; their lapse action advances the case).

The tick runs without a notifier, so delivery is skipped: ``queued``/``lapsed`` come
from the sweep, plus the digest pass and the count of unsent alerts that
``CaseEngine.tick`` always does. Each timed tick runs in a fresh child process that
reports its own peak RSS; between repeats the 1,000 swept cases are restored.

Run alone:  python tests/bench/bench_tick.py [--quick] [--postgres] [--huge]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import sqlalchemy as sa
from common import START, Row, database, median, open_cmd, peak_rss_mb, quiet

import rrm
from rrm.adapters.sql.engine import make_engine
from rrm.adapters.sql.tables import (
    ALERT,
    CASE,
    CASE_EVENT,
    CASE_OFFICER,
    DEADLINE,
    FACILITY,
)
from rrm.testing import FakeClock

DUE = 1_000
LAPSED = 100
NOW = START + timedelta(days=5)  # reminders of the 10-day answer deadline are owed
FAR = datetime(2100, 1, 1, tzinfo=UTC)
CHUNK = 5_000
TARGET = 1.0


def build(url: str, deadlines: int) -> dict[str, Any]:
    """Fill a fresh database; return what a restore between repeats needs."""
    sql = make_engine(url)
    engine = rrm.bootstrap(sql, clock=FakeClock(START), upgrade=True)
    template = engine.open_case(open_cmd(0, prefix="TPL"))
    tid = template.case_id
    with sql.connect() as conn:
        case = dict(
            conn.execute(sa.select(CASE).where(CASE.c.case_id == tid)).mappings().one()
        )
        fac = dict(
            conn.execute(
                sa.select(FACILITY).where(FACILITY.c.facility_id == case["facility_id"])
            )
            .mappings()
            .one()
        )
        events = [
            dict(r)
            for r in conn.execute(
                sa.select(CASE_EVENT).where(CASE_EVENT.c.case_id == tid)
            ).mappings()
        ]
        officers = [
            dict(r)
            for r in conn.execute(
                sa.select(CASE_OFFICER).where(CASE_OFFICER.c.case_id == tid)
            ).mappings()
        ]
        dls = [
            dict(r)
            for r in conn.execute(
                sa.select(DEADLINE)
                .where(DEADLINE.c.case_id == tid)
                .order_by(DEADLINE.c.due_at)
            ).mappings()
        ]
        conn.execute(
            sa.update(DEADLINE)
            .where(DEADLINE.c.case_id == tid)
            .values(next_action_at=FAR)
        )
        conn.commit()
    per_case = len(dls)
    cases = -(-deadlines // per_case)
    lapse_at = NOW - timedelta(hours=1)
    saved: dict[str, list[dict[str, Any]]] = {"case": [], "deadline": []}
    for lo in range(0, cases, CHUNK):
        rows: dict[Any, list[dict[str, Any]]] = {
            FACILITY: [],
            CASE: [],
            CASE_OFFICER: [],
            CASE_EVENT: [],
            DEADLINE: [],
        }
        for i in range(lo, min(lo + CHUNK, cases)):
            cid = f"c{i:08d}"
            rows[FACILITY].append({**fac, "facility_id": f"f{i:08d}", "owner": f"o{i}"})
            c = {
                **case,
                "case_id": cid,
                "external_ref": f"R-{i}",
                "facility_id": f"f{i:08d}",
            }
            rows[CASE].append(c)
            rows[CASE_OFFICER] += [{**o, "case_id": cid} for o in officers]
            rows[CASE_EVENT] += [{**e, "case_id": cid} for e in events]
            for k, d in enumerate(dls):
                row = {
                    **d,
                    "deadline_id": f"d{i:08d}{k}",
                    "case_id": cid,
                    "next_action_at": FAR,
                }
                if i < DUE and k == 0:
                    row["next_action_at"] = lapse_at
                    if i < LAPSED:
                        row["due_at"], row["due_date"] = lapse_at, lapse_at.date()
                if i < DUE:
                    saved["deadline"].append(row)
                rows[DEADLINE].append(row)
            if i < DUE:
                saved["case"].append(c)
        with sql.begin() as conn:
            for table in (FACILITY, CASE, CASE_OFFICER, CASE_EVENT, DEADLINE):
                conn.execute(sa.insert(table), rows[table])
    if url.startswith("postgresql"):
        with sql.connect() as conn:
            conn.execute(sa.text("ANALYZE"))
            conn.commit()
    sql.dispose()
    return saved


def restore(url: str, saved: dict[str, list[dict[str, Any]]]) -> None:
    """Undo a tick on the swept cases: alerts, lapse entries, deadlines, case rows."""
    ids = [c["case_id"] for c in saved["case"]]
    sql = make_engine(url)
    with sql.begin() as conn:
        conn.execute(sa.delete(ALERT))
        conn.execute(
            sa.delete(CASE_EVENT).where(
                CASE_EVENT.c.case_id.in_(ids), CASE_EVENT.c.seq > 1
            )
        )
        conn.execute(sa.delete(DEADLINE).where(DEADLINE.c.case_id.in_(ids)))
        conn.execute(sa.insert(DEADLINE), saved["deadline"])
        cols = ("state", "version", "attributes", "updated_at", "last_event_at")
        stmt = (
            sa.update(CASE)
            .where(CASE.c.case_id == sa.bindparam("b_id"))
            .values({c: sa.bindparam(f"b_{c}") for c in cols})
        )
        conn.execute(
            stmt,
            [
                {"b_id": c["case_id"], **{f"b_{k}": c[k] for k in cols}}
                for c in saved["case"]
            ],
        )
    sql.dispose()


def tick_child(url: str) -> None:
    """Time one tick in this (fresh) process; print JSON."""
    quiet()
    sql = make_engine(url)
    engine = rrm.bootstrap(sql, clock=FakeClock(NOW))
    engine.next_wakeup()  # open the pool, as a running worker would have
    before = peak_rss_mb()
    start = time.perf_counter()
    report = engine.tick()
    seconds = time.perf_counter() - start
    sql.dispose()
    print(
        json.dumps(
            {
                "seconds": seconds,
                "rss_before": before,
                "rss_peak": peak_rss_mb(),
                **{
                    k: getattr(report, k)
                    for k in ("cases", "queued", "lapsed", "advanced", "unsent")
                },
            }
        )
    )


def _tick(url: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--tick-child", url],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"tick child failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(kind: str, deadlines: int, repeats: int) -> tuple[dict[str, Any], float]:
    with tempfile.TemporaryDirectory() as tmp, database(kind, Path(tmp)) as url:
        t0 = time.perf_counter()
        saved = build(url, deadlines)
        built = time.perf_counter() - t0
        runs = []
        for r in range(repeats):
            if r:
                restore(url, saved)
            runs.append(_tick(url))
        first = runs[0]
        if any(
            (x["queued"], x["lapsed"]) != (first["queued"], first["lapsed"])
            for x in runs
        ):
            raise RuntimeError(f"ticks differ between repeats: {runs}")
        res = {
            **first,
            "seconds": median([x["seconds"] for x in runs]),
            "rss_peak": max(x["rss_peak"] for x in runs),
            "rss_before": max(x["rss_before"] for x in runs),
            "min": min(x["seconds"] for x in runs),
            "max": max(x["seconds"] for x in runs),
        }
        return res, built


def run(
    *, quick: bool = False, postgres: bool = False, huge: bool = False
) -> list[Row]:
    quiet()
    sizes = [10_000] if quick else [10_000, 100_000]
    if huge:
        sizes.append(1_000_000)
    kinds = ["sqlite"] + (["postgres"] if postgres else [])
    repeats = 3
    rows = []
    for kind in kinds:
        base = None
        for n in sizes:
            res, built = measure(kind, n, repeats if n < 1_000_000 else 1)
            s = res["seconds"]
            scale = "" if base is None else f"; x{s / base:.2f} the 10k time"
            rows.append(
                Row(
                    f"B2 tick, {kind}, {n:,} open deadlines, {DUE:,} due",
                    s,
                    "s",
                    reference=base,
                    reference_unit="s (10k tick)" if base else "",
                    target=f"<= {TARGET:g} s",
                    met=s <= TARGET,
                    note=f"queued {res['queued']}, lapsed {res['lapsed']}, "
                    f"advanced {res['advanced']}, cases {res['cases']}; "
                    f"min {res['min']:.3f} max {res['max']:.3f} s; peak RSS "
                    f"{res['rss_peak']:.0f} MiB ({res['rss_before']:.0f} before the tick); "
                    f"built in {built:.0f} s{scale}",
                )
            )
            base = base if base is not None else s
    return rows


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    p.add_argument("--postgres", action="store_true")
    p.add_argument("--huge", action="store_true")
    p.add_argument("--tick-child")
    a = p.parse_args()
    if a.tick_child:
        tick_child(a.tick_child)
    else:
        for row in run(quick=a.quick, postgres=a.postgres, huge=a.huge):
            print(row)
