"""Shared helpers of the benchmark scripts: databases, medians, result rows.

Not part of the test suite (pytest collects only ``test_*.py``).
"""

from __future__ import annotations

import resource
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import structlog

import rrm

PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
# Monday 2025-01-06 15:00 UTC, as in tests/conftest.py.
START = datetime(2025, 1, 6, 15, 0, tzinfo=UTC)


@dataclass
class Row:
    """One line of the summary table."""

    benchmark: str
    figure: float
    unit: str
    reference: float | None = None
    reference_unit: str = ""
    target: str = ""
    met: bool | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.reference in (None, 0):
            return None
        return self.figure / self.reference  # type: ignore[operator]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def quiet() -> None:
    """Silence RRM's structured logs below ERROR (the tick logs every lapse)."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))


def median(values: list[float]) -> float:
    return statistics.median(values)


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (Linux: KiB units)."""
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 1024 if sys.platform != "darwin" else kib / 2**20


@contextmanager
def database(kind: str, folder: Path, name: str = "bench") -> Iterator[str]:
    """A URL for a fresh SQLite file or a fresh PostgreSQL schema (dropped after)."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / f'{name}.sqlite'}"
        return
    schema = f"rrm_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG}?options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def open_cmd(i: int, *, prefix: str = "B", at: datetime | None = None) -> rrm.OpenCase:
    """A request-initiated usmca-31a case with one officer holding an e-mail."""
    return rrm.OpenCase(
        workflow="usmca-31a",
        initiation="request",
        complainant="US",
        respondent="MX",
        facility=rrm.Facility(
            facility_id=f"{prefix}F{i}", name="P", owner=f"O{i}", country=rrm.Party.MX
        ),
        claim=rrm.Claim(basis="annex_23a_legislation", sector_category="manufacturing"),
        external_ref=f"{prefix}-{i}",
        actor="a",
        role="ustr",
        officers=(
            rrm.Officer(officer_id="ana", role="ustr", email="ana@bench.example"),
        ),
        at=at,
    )


class Skipped(Exception):
    """Raised by a benchmark that cannot run here; the message says why."""
