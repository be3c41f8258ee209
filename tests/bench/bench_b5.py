"""B5: PostgreSQL with several worker processes (issue #5).

Scaling. 1, 2 and 4 OS processes (``multiprocessing``, spawn; four are started once
and each run uses the first N, so interpreter start-up is paid once), each with its
own engine from ``rrm.bootstrap`` (a fresh one per run) on the same PostgreSQL URL,
fire on cases of their own. Every run gets a fresh schema (dropped after) holding ``cases x processes`` open
usmca-31a cases opened by a request for review; each process bootstraps, reads one
of its cases (opening its connection pool), waits on a start barrier, then fires
round-robin over its cases the events of CYCLE: B1's four (suspend_liquidation,
respondent_agrees, respondent_finds_denial, remediation_plan_agreed, which open and
close deadlines) and then resume_liquidation / suspend_liquidation twice (state
unchanged, attributes change). Each fire is one engine transaction that persists a
history entry: a "transition" here is one such fire, as in B1. Every process does the
same work, so with perfect scaling N processes would commit N times as many fires per
second. The wall time runs from the first process leaving the barrier to the last one
finishing (``time.monotonic``, one clock for all processes on Linux). The figure is
the median over repeats, runs of 1, 2 and 4 processes interleaved.

Many writers on one case. K processes act on the SAME case at once (start barrier),
each attempt a different kind of caller, in turn:

* ``expected``: read the case, fire suspend_liquidation or resume_liquidation (which
  one the read state allows) with ``expected_version`` = the version read;
* ``plain``: fire ustr_certifies_no_panel (always legal in review_requested) with no
  expected version;
* ``stale``: fire suspend/resume chosen from the writer's last read of the case,
  without expected version (its guard refuses it when another writer toggled first);
* ``keyed``: fire ustr_certifies_no_panel with an idempotency key that the two
  writers of a pair (0-1, 2-3, ...) both send at the same attempt number, each
  retrying the same command up to 3 times after a ConcurrencyConflict.

Every operation carries a unique ``reason`` (its id; a keyed one is shared by the
pair), and every outcome is recorded: success with the version returned, or the
exception. Afterwards: each operation a caller was told succeeded is in the history
exactly once, at the version it was told (keyed: one of the pair is told the entry's
version); the history holds nothing no caller was told succeeded; versions run 1..N
with the case at N; ``engine.verify`` accepts the hash chain; suspend and resume
alternate in the history (every guard saw the latest state); every failure is an
``rrm.errors.RRMError``; every ConcurrencyConflict names two different versions.
PASS needs all of these. Reported on a row of its own: a keyed caller answered from
the idempotency key with a case OLDER than the key's entry (the case before its own
event), which PostgreSQL's READ COMMITTED allows today: the case row is read before,
the key after, another process commits the same command.

Run alone:  python tests/bench/bench_b5.py [--quick]    (PostgreSQL at common.PG)
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import queue
import sys
import time
import traceback
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).parent))

from common import START, Row, database, median, open_cmd, quiet

import rrm
from rrm.adapters.sql.engine import make_engine
from rrm.testing import FakeClock

if TYPE_CHECKING:
    from multiprocessing.context import SpawnContext, SpawnProcess
    from multiprocessing.synchronize import Barrier

Step = tuple[str, str, dict[str, Any]]

RESUME: Step = ("resume_liquidation", "ustr", {"basis": "USTR notice"})
SUSPEND: Step = ("suspend_liquidation", "ustr", {})
CYCLE: tuple[Step, ...] = (
    SUSPEND,
    ("respondent_agrees", "respondent", {}),
    ("respondent_finds_denial", "respondent", {}),
    ("remediation_plan_agreed", "ustr", {"due": "2025-09-30"}),
    RESUME,
    SUSPEND,
    RESUME,
    SUSPEND,
)
PROCESSES = (1, 2, 4)
MODES = ("expected", "plain", "stale", "keyed")
KEYED_TRIES = 3
BARRIER_TIMEOUT = 300.0
RESULT_TIMEOUT = 900.0


# -- scaling ---------------------------------------------------------------------


def _fire_cycle(url: str, case_ids: list[str], barrier: Barrier) -> dict[str, Any]:
    """Bootstrap an engine, warm it up, wait at the barrier, fire CYCLE; time it."""
    sql = make_engine(url)
    try:
        clock = FakeClock(START + timedelta(hours=1))
        engine = rrm.bootstrap(sql, clock=clock)
        engine.get(case_ids[0])
        barrier.wait(BARRIER_TIMEOUT)
        start = time.monotonic()
        fires = 0
        for event, role, payload in CYCLE:
            for case_id in case_ids:
                clock.advance(timedelta(seconds=1))
                engine.fire(
                    rrm.FireEvent(
                        case_id=case_id,
                        event=event,
                        actor="b5",
                        role=role,
                        payload=payload,
                    )
                )
                fires += 1
        end = time.monotonic()
    finally:
        sql.dispose()
    return {"start": start, "end": end, "fires": fires}


def _scale_worker(
    tasks: mp.Queue[tuple[str, list[str], int] | None],
    out: mp.Queue[dict[str, Any]],
    barriers: dict[int, Barrier],
) -> None:
    """A pooled worker process: one run per task, a fresh engine each time."""
    quiet()
    while (task := tasks.get()) is not None:
        url, case_ids, n = task
        try:
            out.put(_fire_cycle(url, case_ids, barriers[n]))
        except BaseException:  # noqa: BLE001 - the parent reports it
            barriers[n].abort()
            out.put({"error": traceback.format_exc()})


def _gather(
    procs: list[SpawnProcess], out: mp.Queue[dict[str, Any]], expected: int
) -> list[dict[str, Any]]:
    """*expected* results; raise with the children's tracebacks on failure."""
    results: list[dict[str, Any]] = []
    deadline = time.monotonic() + RESULT_TIMEOUT
    while len(results) < expected:
        try:
            results.append(out.get(timeout=1.0))
        except queue.Empty:
            if any(not p.is_alive() for p in procs) or time.monotonic() > deadline:
                break
    errors = [r["error"] for r in results if "error" in r]
    if errors or len(results) < expected:
        codes = [p.exitcode for p in procs]
        raise RuntimeError(
            f"B5 worker(s) failed (exit codes {codes}):\n" + "\n".join(errors)
        )
    return results


def _stop(procs: list[SpawnProcess]) -> None:
    for p in procs:
        p.join(30)
        if p.is_alive():
            p.terminate()
            p.join()


class Pool:
    """Four spawned worker processes, started once; run k uses the first n of them.

    Each run bootstraps a fresh engine in each process it uses; only the
    interpreter start and the imports (about a second each) are shared.
    """

    def __init__(self, ctx: SpawnContext) -> None:
        self.barriers = {n: ctx.Barrier(n) for n in PROCESSES}
        self.out: mp.Queue[dict[str, Any]] = ctx.Queue()
        self.tasks: list[mp.Queue[tuple[str, list[str], int] | None]] = [
            ctx.Queue() for _ in range(max(PROCESSES))
        ]
        self.procs = [
            ctx.Process(target=_scale_worker, args=(q, self.out, self.barriers))
            for q in self.tasks
        ]
        for p in self.procs:
            p.start()

    def run(self, url: str, shares: list[list[str]]) -> list[dict[str, Any]]:
        n = len(shares)
        for k, share in enumerate(shares):
            self.tasks[k].put((url, share, n))
        return _gather(self.procs, self.out, n)

    def close(self) -> None:
        for q in self.tasks:
            q.put(None)
        _stop(self.procs)


def _scaling_run(pool: Pool, n: int, cases: int) -> tuple[float, int]:
    """Fresh schema, n processes; return wall seconds and fires."""
    with database("postgres", Path(), name="b5") as url:
        sql = make_engine(url)
        engine = rrm.bootstrap(sql, clock=FakeClock(START), upgrade=True)
        ids = [
            engine.open_case(open_cmd(i, prefix=f"S{n}")).case_id
            for i in range(n * cases)
        ]
        results = pool.run(url, [ids[k * cases : (k + 1) * cases] for k in range(n)])
        fires = sum(r["fires"] for r in results)
        seconds = max(r["end"] for r in results) - min(r["start"] for r in results)
        persisted = sum(engine.get(i).version - 1 for i in ids)
        sql.dispose()
        if persisted != fires or fires != n * cases * len(CYCLE):
            raise RuntimeError(f"{n} processes: {fires} fires, {persisted} persisted")
    return seconds, fires


def scaling(
    ctx: SpawnContext, *, cases: int, repeats: int
) -> dict[int, tuple[float, list[float]]]:
    """Per process count: median fires/s and all the rates measured."""
    rates: dict[int, list[float]] = {n: [] for n in PROCESSES}
    pool = Pool(ctx)
    try:
        for _ in range(repeats):
            for n in PROCESSES:
                seconds, fires = _scaling_run(pool, n, cases)
                rates[n].append(fires / seconds)
    finally:
        pool.close()
    return {n: (median(r), r) for n, r in rates.items()}


# -- many writers on one case ------------------------------------------------------


@dataclass
class Outcome:
    """What one call told its caller."""

    op: str
    mode: str
    kind: str  # ok, or the exception's class name
    version: int | None = None  # returned on success
    expected: int | None = None  # ConcurrencyConflict.expected_version
    actual: int | None = None  # ConcurrencyConflict.actual_version
    typed: bool = True
    detail: str = ""


def _toggle(case: rrm.Case) -> Step:
    liq = case.attributes.get("liquidation")
    suspended = isinstance(liq, dict) and liq.get("status") == "suspended"
    return RESUME if suspended else SUSPEND


def _call(op: str, mode: str, fn: Any) -> tuple[Outcome, rrm.Case | None]:
    try:
        case = fn()
    except rrm.ConcurrencyConflict as exc:
        return Outcome(
            op,
            mode,
            "ConcurrencyConflict",
            expected=exc.expected_version,
            actual=exc.actual_version,
        ), None
    except rrm.RRMError as exc:
        return Outcome(op, mode, type(exc).__name__, detail=str(exc)), None
    except Exception as exc:  # noqa: BLE001 - an untyped error is what we look for
        return Outcome(
            op, mode, type(exc).__name__, typed=False, detail=traceback.format_exc()
        ), None
    return Outcome(op, mode, "ok", version=case.version), case


def _writer(
    url: str,
    case_id: str,
    index: int,
    attempts: int,
    barrier: Barrier,
    out: mp.Queue[dict[str, Any]],
) -> None:
    """One of K processes acting on the same case; records every outcome."""
    try:
        quiet()
        sql = make_engine(url)
        clock = FakeClock(START + timedelta(hours=1))
        engine = rrm.bootstrap(sql, clock=clock)
        last = engine.get(case_id)
        barrier.wait(BARRIER_TIMEOUT)
        outcomes: list[Outcome] = []
        start = time.monotonic()
        for a in range(attempts):
            # The two writers of a pair take the same mode at each attempt.
            mode = MODES[(a + index // 2) % len(MODES)]
            op = f"p{index // 2}-a{a}" if mode == "keyed" else f"w{index}-a{a}"
            clock.advance(timedelta(seconds=1))
            tries = KEYED_TRIES if mode == "keyed" else 1
            for _ in range(tries):
                cmd = _command(engine, case_id, op, mode, last, outcomes, index)
                if cmd is None:
                    break
                outcome, case = _call(op, mode, lambda c=cmd: engine.fire(c))
                outcomes.append(outcome)
                last = case or last
                if outcome.kind != "ConcurrencyConflict":
                    break
        end = time.monotonic()
        sql.dispose()
        out.put({"start": start, "end": end, "outcomes": outcomes})
    except BaseException:  # noqa: BLE001 - the parent reports it
        barrier.abort()
        out.put({"error": traceback.format_exc()})


def _command(
    engine: rrm.CaseEngine,
    case_id: str,
    op: str,
    mode: str,
    last: rrm.Case,
    outcomes: list[Outcome],
    index: int,
) -> rrm.FireEvent | None:
    """The command an attempt sends; None if the read before it failed."""
    plain = ("ustr_certifies_no_panel", "ustr", {"reasons": op})
    if mode == "expected":
        read, case = _call(op, "read", lambda: engine.get(case_id))
        if case is None:
            outcomes.append(read)
            return None
        event, role, payload = _toggle(case)
        expected: int | None = case.version
    elif mode == "stale":
        (event, role, payload), expected = _toggle(last), None
    else:
        (event, role, payload), expected = plain, None
    return rrm.FireEvent(
        case_id=case_id,
        event=event,
        actor=f"writer-{index}",
        role=role,
        reason=op,
        payload=payload,
        idempotency_key=op if mode == "keyed" else None,
        expected_version=expected,
    )


@dataclass
class Audit:
    """The checks after the many-writers run."""

    attempts: int = 0
    successes: int = 0  # calls told success
    ops_told: int = 0  # operations told success (a keyed pair counts once)
    kinds: Counter[str] = field(default_factory=Counter)
    by_mode: dict[str, Counter[str]] = field(
        default_factory=lambda: defaultdict(Counter)
    )
    untyped: list[Outcome] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    unreported: list[str] = field(default_factory=list)
    wrong_version: list[str] = field(default_factory=list)
    stale_answers: list[str] = field(default_factory=list)
    odd_conflicts: list[Outcome] = field(default_factory=list)
    chain_ok: bool = False
    contiguous: bool = False
    alternating: bool = False
    entries: int = 0
    seconds: float = 0.0

    def failed_checks(self) -> list[str]:
        """The names of the checks that did not hold (empty: PASS)."""
        checks = {
            "every failure typed": not self.untyped,
            "no lost update": not self.lost,
            "no unreported write": not self.unreported,
            "no duplicated entry": not self.duplicated,
            "versions told = entries": not self.wrong_version,
            "conflicts name two versions": not self.odd_conflicts,
            "hash chain verifies": self.chain_ok,
            "versions contiguous": self.contiguous,
            "suspend/resume alternate": self.alternating,
        }
        return [name for name, ok in checks.items() if not ok]


def _audit(engine: rrm.CaseEngine, case_id: str, outcomes: list[Outcome]) -> Audit:
    audit = Audit(attempts=len(outcomes))
    told: dict[str, list[Outcome]] = defaultdict(list)
    for o in outcomes:
        audit.kinds[o.kind] += 1
        audit.by_mode[o.mode][o.kind] += 1
        if not o.typed:
            audit.untyped.append(o)
        if o.kind == "ok":
            told[o.op].append(o)
        if o.kind == "ConcurrencyConflict" and (
            o.expected is None or o.actual is None or o.expected == o.actual
        ):
            audit.odd_conflicts.append(o)
    audit.successes = sum(len(v) for v in told.values())
    audit.ops_told = len(told)
    case = engine.get(case_id)
    history = engine.history(case_id)
    audit.entries = len(history)
    audit.contiguous = [e.seq for e in history] == list(
        range(1, len(history) + 1)
    ) and case.version == len(history)
    audit.chain_ok = engine.verify(case_id).ok
    written: dict[str, list[int]] = defaultdict(list)
    for e in history[1:]:
        written[e.reason].append(e.seq)
    audit.duplicated = sorted(op for op, seqs in written.items() if len(seqs) > 1)
    audit.unreported = sorted(set(written) - set(told))
    audit.lost = sorted(set(told) - set(written))
    for op, oks in told.items():
        seqs = written.get(op)
        if not seqs:
            continue
        told_versions = [o.version for o in oks if o.version is not None]
        seen = f"{op}: told {told_versions}, entry {seqs}"
        if oks[0].mode != "keyed":
            if told_versions != seqs[:1]:
                audit.wrong_version.append(seen)
            continue
        # Keyed: the writer that committed is told the entry's version, its pair
        # partner (answered from the key) the case as it is then, never older.
        if seqs[0] not in told_versions or len(told_versions) != len(oks):
            audit.wrong_version.append(seen)
        if min(told_versions) < seqs[0]:
            audit.stale_answers.append(seen)
    toggles = [e.event for e in history if e.event in {SUSPEND[0], RESUME[0]}]
    audit.alternating = all(
        ev == (SUSPEND[0] if i % 2 == 0 else RESUME[0]) for i, ev in enumerate(toggles)
    )
    return audit


def many_writers(ctx: SpawnContext, *, writers: int, attempts: int) -> Audit:
    """K processes on one case; return the audit of what they were told."""
    with database("postgres", Path(), name="b5") as url:
        sql = make_engine(url)
        engine = rrm.bootstrap(sql, clock=FakeClock(START), upgrade=True)
        case_id = engine.open_case(open_cmd(0, prefix="W")).case_id
        barrier = ctx.Barrier(writers)
        out: mp.Queue[dict[str, Any]] = ctx.Queue()
        procs = [
            ctx.Process(target=_writer, args=(url, case_id, k, attempts, barrier, out))
            for k in range(writers)
        ]
        for p in procs:
            p.start()
        results = _gather(procs, out, writers)
        _stop(procs)
        outcomes = [o for r in results for o in r["outcomes"]]
        audit = _audit(engine, case_id, outcomes)
        audit.seconds = max(r["end"] for r in results) - min(
            r["start"] for r in results
        )
        sql.dispose()
    return audit


def _report_failures(audit: Audit) -> None:
    """Print what went wrong in detail (stderr), for a bug report."""
    for o in audit.untyped[:3]:
        print(f"B5 untyped error in {o.op} ({o.mode}):\n{o.detail}", file=sys.stderr)
    for name in ("lost", "unreported", "duplicated", "wrong_version", "stale_answers"):
        items = getattr(audit, name)
        if items:
            print(f"B5 {name}: {items[:10]}", file=sys.stderr)
    if audit.odd_conflicts:
        print(f"B5 odd conflicts: {audit.odd_conflicts[:5]}", file=sys.stderr)


def writer_rows(audit: Audit, writers: int) -> list[Row]:
    """The table rows of the many-writers run."""
    name = f"B5 PostgreSQL, {writers} writers on one case:"
    other = Counter(
        {
            k: v
            for k, v in audit.kinds.items()
            if k not in {"ok", "ConcurrencyConflict"}
            and k not in {o.kind for o in audit.untyped}
        }
    )
    modes = "; ".join(
        f"{m}: " + ", ".join(f"{k} {v}" for k, v in sorted(c.items()))
        for m, c in sorted(audit.by_mode.items())
    )
    failed = audit.failed_checks()
    added = audit.entries - 1
    return [
        Row(
            f"{name} attempts",
            audit.attempts,
            "calls",
            note=f"{audit.seconds:.1f} s from the barrier, "
            f"{added / audit.seconds:.0f} commits/s on the case; by mode "
            f"(read = the get before an expected-version fire): {modes}",
        ),
        Row(
            f"{name} operations told success",
            audit.ops_told,
            "ops",
            reference=added,
            reference_unit="entries added",
            target="ratio 1.00",
            met=audit.ops_told == added and not audit.lost and not audit.unreported,
            note=f"{audit.successes} calls told success (both writers of a keyed "
            "pair are told when their shared command is recorded)",
        ),
        Row(f"{name} ConcurrencyConflict", audit.kinds["ConcurrencyConflict"], "calls"),
        Row(
            f"{name} other typed errors",
            other.total(),
            "calls",
            note=", ".join(f"{k} {v}" for k, v in sorted(other.items())) or "none",
        ),
        Row(
            f"{name} untyped errors",
            len(audit.untyped),
            "calls",
            target="0",
            met=not audit.untyped,
            note="; ".join(f"{o.op}: {o.kind}" for o in audit.untyped[:5])
            or "every failure was an rrm.errors.RRMError",
        ),
        Row(
            f"{name} lost updates",
            len(audit.lost),
            "ops",
            target="0",
            met=not audit.lost,
            note=f"told success, not in history: {len(audit.lost)}; in history, "
            f"no caller told: {len(audit.unreported)}; twice in history: "
            f"{len(audit.duplicated)}; version told != entry: "
            f"{len(audit.wrong_version)}",
        ),
        Row(
            f"{name} checks failed",
            len(failed),
            "checks",
            target="0 (PASS)",
            met=not failed,
            note=("FAIL: " + ", ".join(failed))
            if failed
            else f"PASS: {audit.entries} entries, versions 1..{audit.entries} "
            "contiguous, engine.verify ok, suspend/resume alternate, every "
            "conflict names two versions",
        ),
        Row(
            f"{name} repeated key answered with an older case",
            len(audit.stale_answers),
            "ops",
            target="0",
            met=not audit.stale_answers,
            note="; ".join(audit.stale_answers[:3])
            or "every keyed answer at or after its entry",
        ),
    ]


# -- entry -------------------------------------------------------------------------


def run(*, quick: bool = False) -> list[Row]:
    quiet()
    ctx = mp.get_context("spawn")
    cases, repeats = (40, 2) if quick else (60, 3)
    writers, attempts = (4, 40) if quick else (8, 100)
    cpus = os.cpu_count()
    rates = scaling(ctx, cases=cases, repeats=repeats)
    one = rates[1][0]
    rows = []
    for n in PROCESSES:
        rate, all_rates = rates[n]
        spread = ", ".join(f"{r:.0f}" for r in all_rates)
        rows.append(
            Row(
                f"B5 PostgreSQL, {n} process{'es' if n > 1 else ''} on distinct cases",
                rate,
                "fires/s",
                reference=one if n > 1 else None,
                reference_unit="fires/s (1 process)" if n > 1 else "",
                target=f"report (ratio {n}/1; os.cpu_count()={cpus})" if n > 1 else "",
                note=f"{cases} cases x {len(CYCLE)} fires per process "
                f"({n * cases * len(CYCLE)} in all), median of {repeats} "
                f"({spread} fires/s); os.cpu_count()={cpus}, PostgreSQL on the "
                "same machine",
            )
        )
    audit = many_writers(ctx, writers=writers, attempts=attempts)
    if audit.failed_checks() or audit.stale_answers:
        _report_failures(audit)
    rows += writer_rows(audit, writers)
    return rows


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    for row in run(quick=p.parse_args().quick):
        print(row, row.ratio)
