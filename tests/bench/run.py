"""Run RRM's benchmarks and print one table.

    python tests/bench/run.py [--quick] [--only B1,B3] [--postgres] [--huge] [--json FILE]

B1 fire throughput vs plain sqlite3, B2 tick at scale, B3 deadline calculator,
B4 import, B5 PostgreSQL with 1, 2 and 4 worker processes and many writers on one
case (only with --postgres; skipped otherwise), B6 fires through the HTTP API of
``rrm serve`` with 1 and 2 server processes beside engine.fire, and p50/p99 at 100
requests/s (only with --postgres), B7 server time (p50, p95) of the console's case
list over 100,000 cases and of a case page with 1,000 history entries beside the
API's for the same data (SQLite; also PostgreSQL with --postgres), B8 verify by
replay (engine.verify_all) over 100,000 cases: total time against one hour, cases/s,
median and p95 per case, time per history entry, peak RSS growth, and ``rrm audit
verify --json`` timed once (SQLite; also PostgreSQL with --postgres), A alerts sent
per second (tests/bench/bench_alerts.py). Figures are
medians over repeats measured in this run; a missed target prints "no" and does not
fail the run, but an error in a benchmark does (exit status 1, after the table).
Not part of the test suite: pytest collects only test_*.py.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import PG, Row, Skipped, quiet


def alerts(*, quick: bool, postgres: bool) -> list[Row]:
    """Alerts sent per second to a local SMTP server, via bench_alerts.run."""
    import bench_alerts
    from aiosmtpd.controller import Controller

    quiet()
    cases, repeats = (50, 1) if quick else (500, 3)
    sink = bench_alerts.Sink()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    rows = []
    try:
        for kind in ["sqlite"] + (["postgres"] if postgres else []):
            runs = [bench_alerts.run(cases, kind, port, sink) for _ in range(repeats)]
            rate = statistics.median(r[1] for r in runs)
            seconds = statistics.median(r[0] for r in runs)
            rows.append(
                Row(
                    f"A alerts sent/s to local SMTP, {kind}",
                    rate,
                    "alerts/s",
                    note=f"{cases} cases, {runs[0][2]} alerts owed after 10 days down; "
                    f"catch-up tick {seconds:.2f} s; median of {repeats}",
                )
            )
    finally:
        controller.stop()
    return rows


def benchmarks(args: argparse.Namespace) -> dict:
    import bench_api
    import bench_b5
    import bench_calculator
    import bench_console
    import bench_fire
    import bench_import
    import bench_tick
    import bench_verify

    q = args.quick
    return {
        "B1": lambda: bench_fire.run(quick=q),
        "B2": lambda: bench_tick.run(quick=q, postgres=args.postgres, huge=args.huge),
        "B3": lambda: bench_calculator.run(quick=q),
        "B4": lambda: bench_import.run(quick=q, huge=args.huge),
        "B5": lambda: bench_b5.run(quick=q) if args.postgres else _skip_b5(),
        "B6": lambda: bench_api.run(quick=q) if args.postgres else _skip_pg("B6"),
        "B7": lambda: bench_console.run(quick=q, postgres=args.postgres),
        "B8": lambda: _pg_part(
            "B8", bench_verify.run(quick=q, postgres=args.postgres), args.postgres
        ),
        "A": lambda: alerts(quick=q, postgres=args.postgres),
    }


def _skip_b5() -> list[Row]:
    raise Skipped(f"needs PostgreSQL; pass --postgres to run it against {PG}")


def _skip_pg(name: str) -> list[Row]:
    raise Skipped(f"{name} needs PostgreSQL; pass --postgres to run it against {PG}")


class _PartSkipped(Skipped):
    """A benchmark that measured some rows and skipped its PostgreSQL part."""

    def __init__(self, message: str, rows: list[Row]) -> None:
        super().__init__(message)
        self.rows = rows


def _pg_part(name: str, rows: list[Row], postgres: bool) -> list[Row]:
    """*rows* (SQLite, and PostgreSQL with --postgres); the PostgreSQL part is
    listed as skipped without --postgres."""
    if postgres:
        return rows
    msg = f"{name} on PostgreSQL: pass --postgres to also run it against {PG}"
    raise _PartSkipped(msg, rows)


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):  # counts (B5)
        return f"{value:,}"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}" if value < 10 else f"{value:.1f}"


def table(rows: list[Row]) -> str:
    head = ("benchmark", "figure", "reference", "ratio", "target", "met?")
    lines = [
        (
            r.benchmark,
            f"{fmt(r.figure)} {r.unit}",
            f"{fmt(r.reference)} {r.reference_unit}"
            if r.reference is not None
            else "-",
            f"{r.ratio:.2f}" if r.ratio is not None else "-",
            r.target or "-",
            "-" if r.met is None else ("yes" if r.met else "no"),
        )
        for r in rows
    ]
    widths = [max(len(x[i]) for x in [head, *lines]) for i in range(len(head))]
    out = [" | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))]
    out.append("-+-".join("-" * w for w in widths))
    out += [
        " | ".join(c.ljust(w) for c, w in zip(x, widths, strict=True)) for x in lines
    ]
    notes = [f"  {r.benchmark}: {r.note}" for r in rows if r.note]
    return "\n".join([*out, "", "notes:", *notes])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="CI smoke: under 2 min")
    parser.add_argument("--only", default="", help="comma list, e.g. B1,B3")
    parser.add_argument(
        "--postgres",
        action="store_true",
        help="also PostgreSQL (B2, B7, B8, A; B5 and B6 need it) at common.PG",
    )
    parser.add_argument(
        "--huge", action="store_true", help="add B2 at 1M open deadlines"
    )
    parser.add_argument("--json", help="also write the rows as JSON here")
    args = parser.parse_args()
    todo = benchmarks(args)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(todo)
    unknown = set(names) - set(todo)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    rows: list[Row] = []
    failed = []
    skipped = []
    start = time.perf_counter()
    for name in names:
        t0 = time.perf_counter()
        try:
            rows += todo[name]()
        except Skipped as why:
            rows += getattr(why, "rows", [])
            skipped.append(f"  {name}: {why}")
        except Exception:  # noqa: BLE001 - report every failure, then exit 1
            failed.append(name)
            traceback.print_exc()
        print(f"[{name} done in {time.perf_counter() - t0:.1f} s]", file=sys.stderr)
    print(table(rows))
    if skipped:
        print("\nskipped:", *skipped, sep="\n")
    print(
        f"\nwall time {time.perf_counter() - start:.1f} s"
        f"{' (quick)' if args.quick else ''}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps([r.as_dict() for r in rows], indent=2))
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
