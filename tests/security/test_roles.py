"""Role enforcement: no role may record what its workflow does not grant it.

For every bundled workflow, every transition, every source state and every role
(each declared one, the reserved ``system`` and a bogus one) the decision function
is asked directly, on constructed cases: a role outside every candidate transition's
``roles`` gets ``RoleNotAllowed``; an event with no transition from the state gets
``TransitionNotAllowed``. The engine is then checked to enforce the same rules (on
openings, and on every event in each opening's first state) and to write nothing.
``test_respondent_cannot_move_its_clock`` in tests/contract/test_engine.py covers
the deadline commands.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any

import pytest

import rrm
from rrm.workflow.machine import decide

WORKFLOWS = rrm.load_workflows()
SPECS = WORKFLOWS.latest()
AT = datetime(2025, 1, 6, 15, tzinfo=UTC)
BOGUS = "mallory"
BASIS = {
    rrm.Party.MX: "annex_23a_legislation",
    rrm.Party.US: "enforced_nlrb_order",
    rrm.Party.CA: "canadian_legislation",
}


def roles_of(spec: rrm.WorkflowSpec) -> list[str]:
    return [*spec.roles, "system", BOGUS, "", "USTR", "ustr "]


def case_in(spec: rrm.WorkflowSpec, state: str) -> rrm.Case:
    d = spec.directions[0]
    return rrm.Case(
        case_id="c-sec",
        external_ref="SEC-1",
        workflow_id=spec.workflow_id,
        workflow_version=spec.version,
        state=state,
        version=3,
        complainant=d.complainant,
        respondent=d.respondent,
        initiation=next(iter(d.openings)),
        facility=rrm.Facility(
            facility_id="F", name="F", owner="O", country=d.respondent
        ),
        opened_at=AT,
        updated_at=AT,
        last_event_at=AT,
    )


def matrix() -> list[Any]:
    params = []
    for spec in SPECS:
        events = sorted({t.event for t in spec.transitions})
        for state in spec.states:
            params.extend(
                pytest.param(
                    spec, state, event, id=f"{spec.workflow_id}:{state}:{event}"
                )
                for event in events
            )
    return params


@pytest.mark.parametrize(("spec", "state", "event"), matrix())
def test_decide_enforces_roles(spec: rrm.WorkflowSpec, state: str, event: str) -> None:
    """Every (state, event, role): refused unless some candidate transition grants the role."""
    candidates = [t for t in spec.transitions_from(state) if t.event == event]
    granted = {r for t in candidates for r in t.roles}
    case = case_in(spec, state)
    for role in roles_of(spec):
        call = {
            "event": event,
            "role": role,
            "payload": {},
            "at": AT,
            "prior_determinations": 0,
        }
        if not candidates:
            with pytest.raises(rrm.TransitionNotAllowed) as info:
                decide(spec, case, **call)
            assert info.value.event == event
        elif role not in granted:
            with pytest.raises(rrm.RoleNotAllowed) as refused:
                decide(spec, case, **call)
            assert refused.value.role == role
            assert set(refused.value.allowed) == granted
        else:
            # A granted role may still be stopped by a guard or a payload check,
            # never by the role check.
            with contextlib.suppress(rrm.GuardRejected, rrm.InvalidInput):
                decide(spec, case, **call)


def test_every_bundled_transition_is_in_the_matrix() -> None:
    """Sanity: the matrix covers every transition of every bundled workflow."""
    covered = {(p.values[0].workflow_id, p.values[2]) for p in matrix()}
    assert covered == {(s.workflow_id, t.event) for s in SPECS for t in s.transitions}


def openings() -> list[Any]:
    return [
        pytest.param(spec, d, name, id=f"{spec.workflow_id}:{d.complainant}-{name}")
        for spec in SPECS
        for d in spec.directions
        for name in d.openings
    ]


def open_cmd(spec: Any, direction: Any, initiation: str, role: str) -> rrm.OpenCase:
    return rrm.OpenCase(
        workflow=spec.workflow_id,
        initiation=initiation,
        complainant=direction.complainant,
        respondent=direction.respondent,
        facility=rrm.Facility(
            facility_id="F-SEC",
            name="Planta",
            owner="Grupo",
            country=direction.respondent,
        ),
        claim=rrm.Claim(
            basis=BASIS[direction.respondent],
            sector_category="manufacturing",
            nlrb_order="NLRB 1-CA-1" if direction.respondent is rrm.Party.US else "",
        ),
        external_ref=f"SEC-{spec.workflow_id}-{initiation}-{role or 'empty'}",
        actor="officer:x",
        role=role,
        payload=(
            {"submitter_category": "organization_in_canada"}
            if initiation == "claim"
            else {}
        ),
    )


@pytest.mark.parametrize(("spec", "direction", "initiation"), openings())
def test_engine_enforces_roles_on_open_and_first_events(
    engine: rrm.CaseEngine, spec: Any, direction: Any, initiation: str
) -> None:
    """Opening with an ungranted role writes nothing; so does every wrong first event."""
    allowed = spec.openings[initiation].roles
    for role in roles_of(spec):
        if role.strip() in allowed:
            continue  # open_case strips the role, as every text field
        with pytest.raises(rrm.RoleNotAllowed if role.strip() else rrm.RRMError):
            engine.open_case(open_cmd(spec, direction, initiation, role))
    assert engine.find() == []
    try:
        case = engine.open_case(open_cmd(spec, direction, initiation, allowed[0]))
    except rrm.GuardRejected:
        pytest.skip("the sample facts do not pass this opening's guards")
    for event in sorted({t.event for t in spec.transitions}):
        candidates = [t for t in spec.transitions_from(case.state) if t.event == event]
        granted = {r for t in candidates for r in t.roles}
        for role in [*spec.roles, "system", BOGUS]:
            if role in granted:
                continue
            expected = rrm.RoleNotAllowed if candidates else rrm.TransitionNotAllowed
            with pytest.raises(expected):
                engine.fire(
                    rrm.FireEvent(
                        case_id=case.case_id, event=event, actor="x", role=role
                    )
                )
    assert engine.get(case.case_id).version == case.version
    assert len(engine.history(case.case_id)) == case.version
