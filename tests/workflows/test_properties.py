"""Properties over random event sequences: the chain, the version and the open clocks hold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rrm
from rrm.adapters.sql.engine import make_engine
from rrm.domain.deadlines import local_date
from rrm.testing import FakeClock
from rrm.workflow.clocks import spec_key

START = datetime(2025, 1, 6, 15, tzinfo=UTC)
FACILITIES = {
    party: rrm.Facility(
        facility_id=f"{party}-P", name="Plant", owner="Owner", country=rrm.Party(party)
    )
    for party in ("US", "MX", "CA")
}
BASIS = {
    "MX": "annex_23a_legislation",
    "US": "enforced_nlrb_order",
    "CA": "canadian_legislation",
}


def payload_for(t, clock: FakeClock, draw) -> dict:
    due = (
        local_date(clock.now(), "America/Mexico_City") + timedelta(days=60)
    ).isoformat()
    values = {
        "str": "recorded",
        "int": 1,
        "bool": True,
        "date": due,
        "list[str]": ["penalties"],
        "milestones": [{"label": "vote", "due": due}],
    }
    out = {}
    for f in t.payload:
        if f.name == "follows":
            # Workflow v2: "follows" must name an earlier case on the same
            # facility; a random text would be refused as invalid input.
            continue
        if not f.required and not draw(st.booleans()):
            continue
        out[f.name] = f.choices[0] if f.type == "enum" else values[f.type]
    return out


def check_invariants(engine: rrm.CaseEngine, spec, case_id: str) -> None:
    case = engine.get(case_id)
    history = engine.history(case_id)
    assert case.version == len(history)
    assert engine.verify(case_id).ok
    for d in case.open_deadlines.values():
        assert case.state in spec.deadlines[spec_key(d.key)].active_in
    if spec.states[case.state].terminal:
        assert case.open_deadlines == {}


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_random_event_sequences_keep_invariants(data, workflows):
    """Any sequence of allowed or refused events keeps the chain valid, the version equal to
    the history length, and open deadlines consistent with the state."""
    clock = FakeClock(START)
    sa_engine = make_engine("sqlite://")
    try:
        engine = rrm.bootstrap(
            sa_engine, clock=clock, workflows=workflows, upgrade=True
        )
        spec = workflows.get(data.draw(st.sampled_from(workflows.ids())))
        direction = data.draw(st.sampled_from(spec.directions))
        opening = spec.openings[data.draw(st.sampled_from(direction.openings))]
        respondent = direction.respondent.value
        case = engine.open_case(
            rrm.OpenCase(
                workflow=spec.workflow_id,
                initiation=opening.name,
                complainant=direction.complainant,
                respondent=respondent,
                facility=FACILITIES[respondent],
                claim=rrm.Claim(
                    basis=BASIS[respondent],
                    sector_category="manufacturing",
                    nlrb_order="NLRB 1",
                ),
                external_ref="P",
                actor="a",
                role=opening.roles[0],
                payload=payload_for(opening, clock, data.draw),
            )
        )
        check_invariants(engine, spec, case.case_id)
        for _ in range(data.draw(st.integers(1, 20))):
            case = engine.get(case.case_id)
            candidates = spec.transitions_from(case.state)
            if not candidates:
                break
            t = data.draw(st.sampled_from(candidates))
            clock.advance(
                timedelta(
                    days=data.draw(st.integers(0, 30)),
                    hours=data.draw(st.integers(0, 23)),
                )
            )
            cmd = rrm.FireEvent(
                case_id=case.case_id,
                event=t.event,
                actor="a",
                role=data.draw(st.sampled_from(t.roles)),
                payload=payload_for(t, clock, data.draw),
                expected_version=case.version,
            )
            try:
                engine.fire(cmd)
            except rrm.GuardRejected:
                assert engine.get(case.case_id).version == case.version
            check_invariants(engine, spec, case.case_id)
    finally:
        sa_engine.dispose()
