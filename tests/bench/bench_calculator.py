"""B3: business-day deadlines computed per second by ``compute_due`` on the union
calendar ``mx-federal+us-federal`` (a panel-phase deadline: both Parties' holidays).

Run alone:  python tests/bench/bench_calculator.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import timedelta

sys.path.insert(0, __import__("os").path.dirname(__file__))

from common import START, Row, median

import rrm
from rrm.domain.deadlines import Counting, DeadlineRule, Evidence, compute_due

CALENDAR = "mx-federal+us-federal"
TARGET = 200_000.0


def run(*, quick: bool = False) -> list[Row]:
    workflows = rrm.load_workflows()
    calendar = workflows.calendar(CALENDAR)
    # Anchors over three years at odd hours, counts from 1 to 60 business days:
    # every year's holiday table and both the rolled and unrolled paths are used.
    anchors = [
        START - timedelta(days=400) + timedelta(hours=31 * i) for i in range(997)
    ]
    rules = [
        DeadlineRule(
            key=f"k{n}",
            label="Panel step",
            days=n,
            counting=Counting.BUSINESS,
            roll_forward=True,
            anchor_label="the panel request",
            citation="USMCA Annex 31-A, Art. 31-A.7",
            evidence=Evidence.RECALLED,
        )
        for n in range(1, 61)
    ]
    work = [(rules[i % len(rules)], anchors[i % len(anchors)]) for i in range(20_000)]
    for rule, anchor in work[:2000]:  # warm the per-year tables
        compute_due(rule, anchor=anchor, calendar=calendar)
    repeats = 5 if quick else 9
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for rule, anchor in work:
            compute_due(rule, anchor=anchor, calendar=calendar)
        rates.append(len(work) / (time.perf_counter() - start))
    rate = median(rates)
    return [
        Row(
            "B3 compute_due, business days, mx+us union",
            rate,
            "deadlines/s",
            target=f">= {TARGET:,.0f}/s",
            met=rate >= TARGET,
            note=f"median of {repeats} x {len(work):,} calls; "
            f"min {min(rates):,.0f}/s max {max(rates):,.0f}/s",
        )
    ]


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    for row in run(quick=p.parse_args().quick):
        print(row)
