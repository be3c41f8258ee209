"""Alert delivery figures: alerts sent per second to a local SMTP server, and the time
one tick takes to catch up on a backlog after downtime.

Run:  python tests/bench/bench_alerts.py [--cases 500] [--db sqlite|postgres]

Not part of the test suite. Prints medians over --repeat runs, measured in one run.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
import structlog
from aiosmtpd.controller import Controller

import rrm
from rrm.adapters.email import SmtpNotifier, SmtpSettings
from rrm.adapters.sql.engine import make_engine
from rrm.testing import FakeClock

PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


class Sink:
    def __init__(self) -> None:
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        return "250 OK"


def database(kind: str, folder: Path) -> tuple[str, sa.Engine | None]:
    if kind == "sqlite":
        return f"sqlite:///{folder / 'bench.sqlite'}", None
    schema = f"rrm_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    return f"{PG}?options=-csearch_path%3D{schema}", admin


def run(cases: int, kind: str, port: int, sink: Sink) -> tuple[float, float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        url, admin = database(kind, Path(tmp))
        clock = FakeClock(datetime(2025, 1, 6, 15, tzinfo=UTC))
        sql = make_engine(url)
        notifier = SmtpNotifier(
            SmtpSettings(
                host="127.0.0.1",
                port=port,
                security="none",
                sender_address="rrm@bench.example",
            )
        )
        engine = rrm.bootstrap(sql, clock=clock, upgrade=True, notifier=notifier)
        for i in range(cases):
            engine.open_case(
                rrm.OpenCase(
                    workflow="usmca-31a",
                    initiation="request",
                    complainant="US",
                    respondent="MX",
                    facility=rrm.Facility(
                        facility_id=f"F{i}",
                        name="P",
                        owner=f"O{i}",
                        country=rrm.Party.MX,
                    ),
                    claim=rrm.Claim(
                        basis="annex_23a_legislation", sector_category="manufacturing"
                    ),
                    external_ref=f"B-{i}",
                    actor="a",
                    role="ustr",
                    officers=(
                        rrm.Officer(
                            officer_id="ana", role="ustr", email="ana@bench.example"
                        ),
                    ),
                )
            )
        # The worker was down for ten days: reminders 7, 3, 1 days before and the
        # due-day alert are owed for every case.
        clock.set(datetime(2025, 1, 16, 15, tzinfo=UTC))
        before = sink.count
        start = time.perf_counter()
        report = engine.tick()
        elapsed = time.perf_counter() - start
        assert sink.count - before == report.sent, (sink.count - before, report)
        sql.dispose()
        if admin is not None:
            with admin.connect() as conn:
                schema = url.rsplit("%3D", 1)[1]
                conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()
        return elapsed, report.sent / elapsed, report.sent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    sink = Sink()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        runs = [run(args.cases, args.db, port, sink) for _ in range(args.repeat)]
    finally:
        controller.stop()
    seconds = statistics.median(r[0] for r in runs)
    rate = statistics.median(r[1] for r in runs)
    sent = runs[0][2]
    print(
        f"backend: {args.db}; cases: {args.cases}; alerts owed after downtime: {sent}"
    )
    print(f"{'catch-up tick (sweep + send), median s':<45}{seconds:>10.2f}")
    print(f"{'alerts sent per second to local SMTP, median':<45}{rate:>10.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
