"""Fuzz the embedding API with hostile commands: typed refusals, nothing written.

Every command class (OpenCase, FireEvent, ExtendDeadline, PauseDeadline,
ResumeDeadline, AssignOfficers) and the query methods are built from hostile
strategies (wrong types, huge strings, control characters, lone surrogates, NUL,
nested payloads, naive/aware/extreme datetimes, unknown events and roles) and run
against one real engine on in-memory SQLite. A refusal must be an ``RRMError`` with a
message, and must leave the database exactly as it was; an accepted command must add
exactly one history entry to one case (or one case).

Examples per test come from ``RRM_FUZZ_EXAMPLES`` (default 200; the full run uses
``RRM_FUZZ_EXAMPLES=10000``). The named, one-value regressions live in
``tests/contract/test_engine.py::TestHardening``; this file does not repeat them.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import rrm
from rrm.testing import FakeClock

from .conftest import (
    FUZZ,
    anything,
    check_rejection,
    dates,
    datetimes,
    hostile_text,
    json_values,
    maybe,
    query_text,
)

# A 100 kB example makes Hypothesis warn about its repr; the suite turns warnings
# into errors, and the size is the point here.
pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")

START = datetime(2025, 1, 6, 15, tzinfo=UTC)
WORKFLOWS = rrm.load_workflows()
EVENTS = sorted({t.event for s in WORKFLOWS.latest() for t in s.transitions})
ROLES = sorted({r for s in WORKFLOWS.latest() for r in s.roles} | {"system"})
DEADLINE_KEYS = sorted({k for s in WORKFLOWS.latest() for k in s.deadlines})
FACILITY = rrm.Facility(
    facility_id="MX-F", name="Planta", owner="Grupo", country=rrm.Party.MX
)
CLAIM = rrm.Claim(basis="annex_23a_legislation", sector_category="manufacturing")


@pytest.fixture(name="world", scope="module")
def _world() -> Any:
    """One engine on in-memory SQLite with two open cases, reused by every example."""
    clock = FakeClock(START)
    engine = rrm.bootstrap("sqlite://", clock=clock, workflows=WORKFLOWS, upgrade=True)
    ids = []
    for ref in ("FUZZ-1", "FUZZ-2"):
        case = engine.open_case(
            rrm.OpenCase(
                workflow="usmca-31a",
                initiation="request",
                complainant="US",
                respondent="MX",
                facility=FACILITY,
                claim=CLAIM,
                external_ref=ref,
                actor="officer:ana",
                role="ustr",
                officers=(rrm.Officer(officer_id="ana", role="ustr"),),
            )
        )
        ids.append(case.case_id)
    clock.advance(timedelta(hours=1))
    return engine, clock, ids


def snapshot(engine: rrm.CaseEngine) -> dict[str, Any]:
    """Everything a command could write: cases (with deadlines) and histories."""
    cases = engine.find()
    return {
        c.case_id: (c, tuple(e.hash for e in engine.history(c.case_id))) for c in cases
    }


def run_and_check(engine: rrm.CaseEngine, clock: FakeClock, call: Any) -> None:
    before = snapshot(engine)
    try:
        result = call()
    except Exception as exc:  # noqa: BLE001 - the point is to see what escapes
        check_rejection(exc)
        name = type(exc).__name__
        assert snapshot(engine) == before, f"{name} wrote something"
        return
    after = snapshot(engine)
    changed = [cid for cid in after if before.get(cid) != after[cid]]
    assert len(changed) <= 1, changed
    for cid in changed:
        old = len(before[cid][1]) if cid in before else 0
        assert len(after[cid][1]) == old + 1
        assert engine.verify(cid).ok
    if isinstance(result, rrm.Case):
        assert result.version == len(after[result.case_id][1])
    clock.advance(timedelta(minutes=1))


def case_ids(ids: list[str]) -> Any:
    return maybe(st.sampled_from([*ids, "FUZZ-1", "no-such-case"]))


versions = maybe(st.integers(min_value=-3, max_value=10))
roles = maybe(st.sampled_from([*ROLES, "bogus", "USTR", " ustr"]))
events = maybe(st.sampled_from([*EVENTS, "nope", "__init__", "trigger", "to_closed"]))
keys = maybe(st.sampled_from([*DEADLINE_KEYS, "nope"]))
ats = st.one_of(st.none(), st.none(), datetimes, anything)


@FUZZ
@given(data=st.data())
def test_fire_event(world: Any, data: st.DataObject) -> None:
    engine, clock, ids = world
    cmd = rrm.FireEvent(
        case_id=data.draw(case_ids(ids)),
        event=data.draw(events),
        actor=data.draw(maybe("officer:x")),
        role=data.draw(roles),
        reason=data.draw(maybe("")),
        payload=data.draw(
            st.one_of(
                st.just({}),
                st.dictionaries(hostile_text, json_values, max_size=4),
                anything,
            )
        ),
        idempotency_key=data.draw(st.one_of(st.none(), maybe("k"))),
        expected_version=data.draw(st.one_of(st.none(), versions)),
        at=data.draw(ats),
    )
    run_and_check(engine, clock, lambda: engine.fire(cmd))


officers = st.one_of(
    st.builds(
        rrm.Officer,
        officer_id=maybe(st.sampled_from(["ana", "bo", "cy"])),
        role=roles,
        name=maybe(""),
        email=maybe(st.sampled_from(["", "a@b.example", "a@b\r\nBcc: c@d"])),
        language=maybe(st.sampled_from(["en", "es", "fr", "de"])),
        timezone=maybe(
            st.sampled_from(["", "America/Mexico_City", "Mars/Base", "UTC"])
        ),
    ),
    anything,
)


@FUZZ
@given(data=st.data())
def test_deadline_commands(world: Any, data: st.DataObject) -> None:
    engine, clock, ids = world
    kind = data.draw(st.sampled_from(["extend", "pause", "resume"]))
    common = {
        "case_id": data.draw(case_ids(ids)),
        "key": data.draw(keys),
        "actor": data.draw(maybe("officer:x")),
        "role": data.draw(roles),
        "reason": data.draw(maybe("agreed")),
        "expected_version": data.draw(st.one_of(st.none(), versions)),
        "at": data.draw(ats),
    }
    if kind == "extend":
        cmd: Any = rrm.ExtendDeadline(
            new_date=data.draw(maybe(dates, st.one_of(anything, datetimes))),
            **common,
        )
        run_and_check(engine, clock, lambda: engine.extend(cmd))
    elif kind == "pause":
        cmd = rrm.PauseDeadline(**common)
        run_and_check(engine, clock, lambda: engine.pause(cmd))
    else:
        cmd = rrm.ResumeDeadline(**common)
        run_and_check(engine, clock, lambda: engine.resume(cmd))


@FUZZ
@given(data=st.data())
def test_assign_officers(world: Any, data: st.DataObject) -> None:
    engine, clock, ids = world
    cmd = rrm.AssignOfficers(
        case_id=data.draw(case_ids(ids)),
        actor=data.draw(maybe("officer:x")),
        role=data.draw(roles),
        assign=data.draw(
            st.one_of(
                st.lists(officers, max_size=3).map(tuple),
                anything,
            )
        ),
        remove=data.draw(
            st.one_of(st.lists(maybe("ana"), max_size=3).map(tuple), anything)
        ),
        reason=data.draw(maybe("")),
        expected_version=data.draw(st.one_of(st.none(), versions)),
    )
    run_and_check(engine, clock, lambda: engine.assign(cmd))


@FUZZ
@given(data=st.data())
def test_open_case(world: Any, data: st.DataObject) -> None:
    engine, clock, _ = world
    facility = data.draw(
        st.one_of(
            st.builds(
                rrm.Facility,
                facility_id=maybe(st.sampled_from(["MX-F", "MX-G"])),
                name=maybe("Planta"),
                owner=maybe("Grupo"),
                country=maybe(st.sampled_from([*rrm.Party, "MX", "FR"])),
                city=maybe(""),
                region=maybe(""),
                sector=maybe(""),
            ),
            anything,
        )
    )
    claim = data.draw(
        st.one_of(
            st.builds(
                rrm.Claim,
                basis=maybe(
                    st.sampled_from(["annex_23a_legislation", "enforced_nlrb_order"])
                ),
                sector_category=maybe(
                    st.sampled_from(["manufacturing", "services", "mining", "x"])
                ),
                legal_provisions=st.one_of(
                    st.lists(maybe("LFT 1"), max_size=2).map(tuple), anything
                ),
                nlrb_order=maybe(""),
                alleged_conduct_from=st.one_of(st.none(), dates, anything),
            ),
            anything,
        )
    )
    petitioners = data.draw(
        st.one_of(
            st.lists(
                st.one_of(
                    st.builds(
                        rrm.Petitioner,
                        name=maybe("Sindicato"),
                        confidential=maybe(st.booleans()),
                        contact=maybe(""),
                    ),
                    anything,
                ),
                max_size=3,
            ).map(tuple),
            anything,
        )
    )
    cmd = rrm.OpenCase(
        workflow=data.draw(
            maybe(st.sampled_from([*WORKFLOWS.ids(), "usmca-99", "../usmca-31a"]))
        ),
        initiation=data.draw(
            maybe(st.sampled_from(["request", "petition", "claim", "self_initiated"]))
        ),
        complainant=data.draw(maybe(st.sampled_from(["US", "MX", "CA", "FR"]))),
        respondent=data.draw(maybe(st.sampled_from(["US", "MX", "CA", "FR"]))),
        facility=facility,
        claim=claim,
        external_ref=data.draw(maybe(st.sampled_from(["FUZZ-1", "NEW-1", "NEW-2"]))),
        actor=data.draw(maybe("officer:ana")),
        role=data.draw(roles),
        petitioners=petitioners,
        officers=data.draw(
            st.one_of(
                st.lists(officers, max_size=3).map(tuple),
                anything,
            )
        ),
        reason=data.draw(maybe("")),
        payload=data.draw(
            st.one_of(
                st.just({}), st.dictionaries(hostile_text, json_values, max_size=3)
            )
        ),
        workflow_version=data.draw(st.one_of(st.none(), versions)),
        at=data.draw(ats),
    )
    run_and_check(engine, clock, lambda: engine.open_case(cmd))


@FUZZ
@given(data=st.data())
def test_queries(world: Any, data: st.DataObject) -> None:
    """Read methods refuse hostile arguments with RRMError and never write.

    Inputs with their own regression test below (lone surrogates, a text
    ``limit`` or a list in ``status`` of ``alerts``) are left out here.
    """
    engine, clock, ids = world
    which = data.draw(
        st.sampled_from(
            ["get", "history", "verify", "find", "due", "alerts", "ack", "retry"]
        )
    )
    ref = data.draw(st.one_of(st.sampled_from([*ids, "FUZZ-1"]), query_text))
    opt_text = st.one_of(st.none(), query_text)
    calls = {
        "get": lambda: engine.get(ref),
        "history": lambda: engine.history(ref),
        "verify": lambda: engine.verify(ref),
        "find": lambda: engine.find(
            state=data.draw(opt_text),
            workflow=data.draw(opt_text),
            facility_id=data.draw(opt_text),
            officer_id=data.draw(opt_text),
            limit=data.draw(st.one_of(st.none(), anything, st.integers())),
        ),
        "due": lambda: engine.due(
            data.draw(st.one_of(st.integers(-5, 4000), anything)),
            unit=data.draw(maybe(st.sampled_from(["calendar", "business"]))),
            officer_id=data.draw(opt_text),
        ),
        "alerts": lambda: engine.alerts(
            status=data.draw(st.one_of(st.none(), st.lists(query_text).map(tuple))),
            case_id=data.draw(opt_text),
            recipient_id=data.draw(opt_text),
            limit=data.draw(st.one_of(st.none(), st.integers(1, 5))),
        ),
        "ack": lambda: engine.acknowledge(ref, officer_id=data.draw(query_text)),
        "retry": lambda: engine.retry(ref),
    }
    run_and_check(engine, clock, calls[which])


class TestFoundByFuzzing:
    """Regressions of the bugs the fuzzing found (all fixed)."""

    @pytest.mark.parametrize(
        "call",
        [
            "get",
            "history",
            "verify",
            "find",
            "due",
            "overdue",
            "alerts",
            "acknowledge",
            "retry",
        ],
    )
    def test_lone_surrogate_in_a_read(self, engine: Any, call: str) -> None:
        s = "\ud800"
        calls = {
            "get": lambda: engine.get(s),
            "history": lambda: engine.history(s),
            "verify": lambda: engine.verify(s),
            "find": lambda: engine.find(state=s),
            "due": lambda: engine.due(3, officer_id=s),
            "overdue": lambda: engine.overdue(officer_id=s),
            "alerts": lambda: engine.alerts(case_id=s),
            "acknowledge": lambda: engine.acknowledge(s, officer_id="ana"),
            "retry": lambda: engine.retry(s),
        }
        with pytest.raises(rrm.RRMError) as info:
            calls[call]()
        assert str(info.value)

    def test_alerts_limit_must_be_a_number(self, engine: Any) -> None:
        with pytest.raises(rrm.InvalidInput):
            engine.alerts(limit="x")

    def test_alerts_status_of_lists(self, engine: Any) -> None:
        with pytest.raises(rrm.InvalidInput):
            engine.alerts(status=(["pending"],))


def test_extension_to_the_end_of_time(world: Any) -> None:
    """A date.max extension is refused or stored, never an OverflowError."""
    engine, clock, ids = world
    case = engine.get(ids[1])
    key = next(iter(case.open_deadlines), "respondent_answer")
    cmd = rrm.ExtendDeadline(
        case_id=ids[1],
        key=key,
        new_date=date.max,
        actor="a",
        role="ustr",
        reason="r",
    )
    run_and_check(engine, clock, lambda: engine.extend(cmd))


@pytest.mark.parametrize("unit", [[], {}, ["business"], 3])
def test_due_with_a_non_text_unit(world: Any, unit: Any) -> None:
    """Found by the 10,000-example run: ``due(0, unit=[])`` raised TypeError."""
    engine, _, _ = world
    with pytest.raises(rrm.InvalidInput, match="unit"):
        engine.due(0, unit=unit)


@pytest.mark.parametrize("limit", [2**63, 10**100])
def test_limit_beyond_64_bits(world: Any, limit: int) -> None:
    """Found by the second 10,000-example run: ``find(limit=10**100)`` raised
    OverflowError from the SQLite driver."""
    engine, _, _ = world
    with pytest.raises(rrm.InvalidInput, match="limit"):
        engine.find(limit=limit)
    assert len(engine.find(limit=2**63 - 1)) >= 1
