"""A case lived through with daily ticks, exported and imported, ends the same.

Each example opens a case on usmca-31a, then for a random number of days records
random events the state allows (and now and then an extension, a pause or a
resumption) at random hours, ticking once a day with the fake clock, so lapses and
lapse actions happen as they do in production. The case is exported, imported into
a fresh database with the clock where the live run stopped, and both must hold the
same state, attributes, deadlines (keys, dates, statuses, lapse instants) and
history; the import marks no step unknown, and a tick after it records nothing.

Runs on SQLite, and on PostgreSQL with ``--rrm-postgres``. Examples per backend come
from ``RRM_IMPORT_EQUIVALENCE_EXAMPLES`` (default 25)::

    RRM_IMPORT_EQUIVALENCE_EXAMPLES=500 pytest tests/fuzz/test_import_equivalence.py
"""

from __future__ import annotations

import contextlib
import itertools
import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rrm
from rrm.adapters.sql.engine import make_engine
from rrm.domain.deadlines import local_date
from rrm.service.transfer import export_case, import_cases
from rrm.testing import FakeClock

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

EXAMPLES = int(os.environ.get("RRM_IMPORT_EQUIVALENCE_EXAMPLES", "25"))
START = datetime(2025, 1, 6, 15, tzinfo=UTC)
MX = "America/Mexico_City"
PRECISIONS = (None, None, "month", "approx", "derived")
_refs = itertools.count(1)


@contextlib.contextmanager
def fresh_engine(
    backend: str,
    database_url_for: Callable[[str, Path], contextlib.AbstractContextManager[str]],
    folder: Path,
    clock: FakeClock,
    workflows: Any,
) -> Iterator[rrm.CaseEngine]:
    """An engine on a new database: in-memory SQLite, or a new PostgreSQL schema."""
    with contextlib.ExitStack() as stack:
        url = (
            "sqlite://"
            if backend == "sqlite"
            else stack.enter_context(database_url_for(backend, folder))
        )
        sa_engine = make_engine(url)
        stack.callback(sa_engine.dispose)
        yield rrm.bootstrap(sa_engine, clock=clock, workflows=workflows, upgrade=True)


def payload_for(t: Any, today: date, draw: Any) -> dict[str, Any]:
    """A payload the transition accepts, dated around *today*."""
    out: dict[str, Any] = {}
    for f in t.payload:
        if f.name == "follows" or (not f.required and not draw(st.booleans())):
            continue
        if f.type == "date":
            ahead = 0 if f.name in {"received_on", "on"} else draw(st.integers(1, 90))
            out[f.name] = (today + timedelta(days=ahead)).isoformat()
        elif f.type == "milestones":
            due = today + timedelta(days=draw(st.integers(1, 60)))
            out[f.name] = [{"label": "vote", "due": due.isoformat()}]
        elif f.type == "enum":
            out[f.name] = f.choices[0]
        else:
            out[f.name] = {"str": "recorded", "int": 1, "bool": True}.get(
                f.type, ["penalties"]
            )
    precision = draw(st.sampled_from(PRECISIONS))
    if precision is not None:
        out["date_precision"] = precision
    return out


def record_something(engine: rrm.CaseEngine, ref: str, draw: Any) -> None:
    """Record one random step the case allows now; a refusal writes nothing.

    Procedural steps that keep the case open are drawn most often, dated facts
    and steps that close the case less, so histories run long enough to lapse.
    """
    case = engine.get(ref)
    spec = engine.workflows.get(case.workflow_id, case.workflow_version)
    today = local_date(engine.clock.now(), MX)
    who = {"case_id": case.case_id, "actor": "officer:ana", "role": "ustr"}
    kind = draw(st.sampled_from(("event",) * 7 + ("deadline",)))
    running = sorted(case.open_deadlines.values(), key=lambda d: d.key)
    try:
        if kind == "deadline" and running:
            d = draw(st.sampled_from(running))
            if d.paused_at is not None:
                engine.resume(rrm.ResumeDeadline(key=d.key, reason="open", **who))
            elif draw(st.booleans()):
                later = d.due_date + timedelta(days=draw(st.integers(1, 30)))
                engine.extend(
                    rrm.ExtendDeadline(
                        key=d.key, new_date=later, reason="agreed", **who
                    )
                )
            else:
                engine.pause(rrm.PauseDeadline(key=d.key, reason="closed", **who))
            return
        allowed = [
            t for t in spec.transitions_from(case.state) if set(t.roles) - {"system"}
        ]
        facts = [t for t in allowed if spec.is_fact(t.event)]
        closing = [
            t
            for t in allowed
            if t not in facts and t.dest in spec.states and spec.states[t.dest].terminal
        ]
        steps = [t for t in allowed if t not in facts and t not in closing]
        pools = [*[steps] * 8, facts, closing]
        pool = draw(st.sampled_from([p for p in pools if p] or [[]]))
        if not pool or (pool is facts and draw(st.integers(0, 3))):
            return
        t = draw(st.sampled_from(pool))
        engine.fire(
            rrm.FireEvent(
                case_id=case.case_id,
                event=t.event,
                actor="officer:ana",
                role=draw(st.sampled_from([r for r in t.roles if r != "system"])),
                payload=payload_for(t, today, draw),
            )
        )
    except rrm.RRMError:
        pass  # refused (a guard, a terminal state, a pause after the lapse)


def live_run(engine: rrm.CaseEngine, clock: FakeClock, draw: Any) -> str:
    """Open a case and live through random days; return its reference."""
    spec = engine.workflows.get("usmca-31a")
    n = next(_refs)
    ref = f"EQ-{n}"
    opening = spec.openings[draw(st.sampled_from(spec.directions[0].openings))]
    engine.open_case(
        rrm.OpenCase(
            workflow="usmca-31a",
            initiation=opening.name,
            complainant="US",
            respondent="MX",
            facility=rrm.Facility(
                facility_id=f"MX-EQ-{n}",
                name="Planta",
                owner=f"G{n}",
                country=rrm.Party.MX,
            ),
            claim=rrm.Claim(
                basis="annex_23a_legislation", sector_category="manufacturing"
            ),
            officers=(rrm.Officer(officer_id="ana", role="ustr", email="a@x.gov"),),
            external_ref=ref,
            actor="officer:ana",
            role=opening.roles[0],
            payload=payload_for(opening, local_date(clock.now(), MX), draw),
        )
    )
    start = clock.now()
    for day in range(1, draw(st.integers(5, 150)) + 1):
        hour = draw(st.integers(0, 23))
        clock.set(
            max(clock.now(), start + timedelta(days=day, hours=hour - start.hour))
        )
        for _ in range(draw(st.sampled_from((0,) * 12 + (1, 1, 2)))):
            record_something(engine, ref, draw)
        engine.tick()
    return ref


def summary(engine: rrm.CaseEngine, ref: str) -> dict[str, Any]:
    """What must agree: state, attributes, deadlines and history (ids aside)."""
    case = engine.get(ref)
    return {
        "state": case.state,
        "version": case.version,
        "attributes": case.attributes,
        "deadlines": [
            (
                d.key,
                d.status,
                d.due_date,
                d.due_at,
                d.lapsed_at,
                d.opened_at,
                d.closed_at,
                d.paused_at,
                d.extensions,
                d.opened_seq,
                d.closed_seq,
                d.explanation,
            )
            for d in case.deadlines
        ],
        "history": [
            (
                e.seq,
                e.event,
                e.from_state,
                e.to_state,
                e.actor,
                e.role,
                e.reason,
                dict(e.payload),
                e.occurred_at,
            )
            for e in engine.history(case.case_id)
        ],
    }


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(data=st.data())
def test_import_and_live_run_end_the_same(
    data: st.DataObject,
    backend: str,
    database_url_for: Any,
    tmp_path: Path,
    workflows: Any,
) -> None:
    """Importing a history and living through it with ticks give the same case."""
    clock = FakeClock(START)
    with fresh_engine(backend, database_url_for, tmp_path, clock, workflows) as live:
        ref = live_run(live, clock, data.draw)
        lived = summary(live, ref)
        doc = export_case(live, ref)
    later = FakeClock(clock.now())
    with fresh_engine(backend, database_url_for, tmp_path, later, workflows) as other:
        report = import_cases(other, [doc])

        assert report.cases[0].unknown_steps == ()
        assert summary(other, ref) == lived
        other.tick()
        assert summary(other, ref) == lived, "a tick after the import changed it"
        assert other.verify(ref).ok
