"""Fuzz ``import_cases`` with mutated and random documents: all or nothing.

The seeds are the public-case histories (``rrm-history/1``, tests/data/public-cases)
and one ``rrm-case/1`` export; each example drops keys, swaps types, reorders or
duplicates events, breaks dates, adds unknown fields or huge payloads, anywhere in
the document. ``import_cases`` must either import or raise an ``RRMError`` with a
message, and a refused batch must leave the database exactly as it was.

Examples per test come from ``RRM_FUZZ_EXAMPLES`` (default 200; the full run uses
``RRM_FUZZ_EXAMPLES=10000``). Named malformed documents are in
``tests/integration/test_transfer.py``; this file does not repeat them.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import rrm
from rrm.service.transfer import export_case, import_cases
from rrm.testing import FakeClock

from .conftest import FUZZ, anything, check_rejection, json_values, mutate

# A 100 kB example makes Hypothesis warn about its repr; the suite turns warnings
# into errors, and the size is the point here.
pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")

PUBLIC = Path(__file__).resolve().parents[1] / "data" / "public-cases"
SEEDS = [json.loads(p.read_text()) for p in sorted(PUBLIC.glob("*.json"))]
WORKFLOWS = rrm.load_workflows()


def _export_seed() -> dict[str, Any]:
    clock = FakeClock(datetime(2025, 1, 6, 15, tzinfo=UTC))
    engine = rrm.bootstrap("sqlite://", clock=clock, workflows=WORKFLOWS, upgrade=True)
    case = engine.open_case(
        rrm.OpenCase(
            workflow="usmca-31a",
            initiation="request",
            complainant="US",
            respondent="MX",
            facility=rrm.Facility(
                facility_id="MX-EXP", name="P", owner="G", country=rrm.Party.MX
            ),
            claim=rrm.Claim(
                basis="annex_23a_legislation", sector_category="manufacturing"
            ),
            petitioners=(rrm.Petitioner(name="Secreto", confidential=True),),
            officers=(rrm.Officer(officer_id="ana", role="ustr"),),
            external_ref="EXP-1",
            actor="officer:ana",
            role="ustr",
        )
    )
    clock.advance(timedelta(days=1))
    engine.fire(
        rrm.FireEvent(
            case_id=case.case_id,
            event="respondent_agrees",
            actor="mx",
            role="respondent",
        )
    )
    clock.advance(timedelta(days=1))
    engine.pause(
        rrm.PauseDeadline(
            case_id=case.case_id,
            key="respondent_review",
            actor="a",
            role="ustr",
            reason="closure",
        )
    )
    return export_case(engine, case.case_id)


SEEDS.append(_export_seed())


@pytest.fixture(name="target", scope="module")
def _target() -> rrm.CaseEngine:
    """One in-memory engine, late enough for every public case, reused throughout."""
    clock = FakeClock(datetime(2026, 1, 5, tzinfo=UTC))
    return rrm.bootstrap("sqlite://", clock=clock, workflows=WORKFLOWS, upgrade=True)


def snapshot(engine: rrm.CaseEngine) -> dict[str, Any]:
    return {
        c.case_id: (c, tuple(e.hash for e in engine.history(c.case_id)))
        for c in engine.find()
    }


def _unhashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return True
    return False


def _surrogate_ref(doc: dict[str, Any]) -> bool:
    case = doc.get("case")
    ref = case.get("external_ref") if isinstance(case, dict) else None
    return isinstance(ref, str) and any(0xD800 <= ord(c) <= 0xDFFF for c in ref)


def _unhashable_format(documents: Any) -> bool:
    """The known bugs pinned by ``test_format_of_a_wrong_type`` and
    ``test_surrogate_in_the_reference`` (regressions of bugs it found)."""
    docs = documents if isinstance(documents, list) else [documents]
    return any(
        isinstance(d, dict) and (_unhashable(d.get("format")) or _surrogate_ref(d))
        for d in docs
    )


def attempt(engine: rrm.CaseEngine, documents: Any, sources: Any = None) -> None:
    assume(not _unhashable_format(documents))
    before = snapshot(engine)
    try:
        report = import_cases(engine, documents, sources=sources)
    except Exception as exc:  # noqa: BLE001 - the point is to see what escapes
        check_rejection(exc)
        name = type(exc).__name__
        assert snapshot(engine) == before, f"{name} wrote something"
        return
    after = snapshot(engine)
    assert set(before) <= set(after)
    for cid in before:
        assert before[cid] == after[cid], "an import changed an existing case"
    for item in report.cases:
        assert engine.verify(item.case_id).ok


@FUZZ
@given(data=st.data())
def test_mutated_documents(target: rrm.CaseEngine, data: st.DataObject) -> None:
    seed = copy.deepcopy(data.draw(st.sampled_from(SEEDS)))
    rounds = data.draw(st.integers(1, 3))
    doc: Any = seed
    for _ in range(rounds):
        doc = mutate(data.draw, doc)
    attempt(target, [doc])


@FUZZ
@given(data=st.data())
def test_batches_with_one_bad_document(
    target: rrm.CaseEngine, data: st.DataObject
) -> None:
    """A good document next to a mutated one: the whole batch or none of it."""
    good = copy.deepcopy(data.draw(st.sampled_from(SEEDS)))
    bad = mutate(data.draw, copy.deepcopy(data.draw(st.sampled_from(SEEDS))))
    docs = data.draw(st.permutations([good, bad]))
    sources = data.draw(
        st.one_of(
            st.none(), st.just(["a.json", "b.json"]), st.lists(anything, max_size=3)
        )
    )
    attempt(target, docs, sources)


@FUZZ
@given(
    documents=st.one_of(
        json_values,
        st.lists(json_values, max_size=3),
        st.lists(
            st.fixed_dictionaries(
                {"format": st.sampled_from(["rrm-history/1", "rrm-case/1", "x"])},
                optional={
                    "case": st.one_of(
                        json_values, st.dictionaries(st.text(), anything)
                    ),
                    "events": st.lists(json_values, max_size=3),
                    "history": st.lists(json_values, max_size=3),
                },
            ),
            max_size=2,
        ),
        anything,
    )
)
def test_random_documents(target: rrm.CaseEngine, documents: Any) -> None:
    attempt(target, documents)


def test_huge_payload_is_refused_whole(target: rrm.CaseEngine) -> None:
    """A 1 MB note in one event's payload is past the 64 KiB limit (issue #12):
    refused with the event's place named, and nothing written."""
    doc = copy.deepcopy(SEEDS[0])
    doc["case"]["external_ref"] = "HUGE-1"
    doc["case"]["facility"]["facility_id"] = "HUGE-1"
    doc["events"][-1].setdefault("payload", {})["note"] = "x" * 1_000_000
    before = snapshot(target)
    with pytest.raises(rrm.InvalidInput) as info:
        import_cases(target, [doc])
    assert info.value.field == f"events[{len(doc['events']) - 1}].payload"
    assert "64 KiB" in info.value.reason
    assert snapshot(target) == before


@pytest.mark.parametrize("fmt", [[], {"a": 1}, bytearray(b"x")])
def test_format_of_a_wrong_type(target: rrm.CaseEngine, fmt: Any) -> None:
    doc = copy.deepcopy(SEEDS[0])
    doc["format"] = fmt
    with pytest.raises(rrm.InvalidInput) as info:
        import_cases(target, [doc])
    assert "format" in info.value.field


def test_surrogate_in_the_reference(target: rrm.CaseEngine) -> None:
    doc = copy.deepcopy(SEEDS[0])
    doc["case"]["external_ref"] = "\ud800"
    with pytest.raises(rrm.InvalidInput):
        import_cases(target, [doc])
