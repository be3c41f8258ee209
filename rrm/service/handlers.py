"""Use cases: turn a command and the stored case into one ``CaseChange``.

Each handler reads what it needs through the unit of work, decides with the pure
workflow functions, and returns the change; the engine writes it in the same
transaction and commits. Nothing here reads the wall clock: ``now`` is passed in.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rrm.domain.case import (
    GENESIS_HASH,
    Case,
    Deadline,
    Facility,
    HistoryEntry,
    JSONValue,
    Officer,
    Party,
    entry_hash,
    require_aware,
)
from rrm.domain.commands import (
    AssignOfficers,
    Claim,
    ExtendDeadline,
    FireEvent,
    OpenCase,
    PauseDeadline,
    ResumeDeadline,
)
from rrm.errors import (
    CaseAlreadyExists,
    CaseNotFound,
    ConcurrencyConflict,
    DeadlineNotFound,
    GuardRejected,
    InvalidInput,
    RoleNotAllowed,
    TransitionNotAllowed,
)
from rrm.service.ports import CaseChange, Determination, UnitOfWork
from rrm.workflow.clocks import (
    EventFacts,
    extend_deadline,
    pause_deadline,
    plan_deadlines,
    resume_deadline,
)
from rrm.workflow.effects import EFFECTS, EffectContext
from rrm.workflow.guards import GUARDS, GuardContext
from rrm.workflow.machine import decide, validate_payload

if TYPE_CHECKING:
    from rrm.workflow.registry import Workflows
    from rrm.workflow.spec import WorkflowSpec

__all__ = [
    "CLAIM_BASES",
    "assign_officers",
    "change_deadline",
    "fire_event",
    "open_case",
]

CLAIM_BASES = frozenset(
    {"annex_23a_legislation", "enforced_nlrb_order", "canadian_legislation"}
)


def _when(at: datetime | None, now: datetime, last: datetime | None) -> datetime:
    """Validate the instant an event happened: aware, not future, not out of order."""
    if at is None:
        when = now
    else:
        when = require_aware("at", at).astimezone(UTC)
        if when > now:
            raise InvalidInput("at", f"{when.isoformat()} is in the future")
    if last is not None and when < last:
        raise InvalidInput(
            "at",
            f"{when.isoformat()} is before the case's last event "
            f"({last.isoformat()}); record events in the order they happened",
        )
    return when


def _check_payload(payload: object) -> Mapping[str, JSONValue]:
    """Refuse a payload that is not a JSON object with text keys."""
    if not isinstance(payload, Mapping) or not all(isinstance(k, str) for k in payload):
        raise InvalidInput("payload", "must be a mapping of field names to values")
    try:
        json.dumps(payload, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInput("payload", f"must hold only JSON values ({exc})") from None
    return payload


def _check_fire(cmd: FireEvent) -> None:
    if not isinstance(cmd, FireEvent):
        raise InvalidInput("command", "must be a FireEvent")
    for name in ("case_id", "event", "role"):
        _text(name, getattr(cmd, name))
    _check_payload(cmd.payload)
    if cmd.at is not None and not isinstance(cmd.at, datetime):
        raise InvalidInput("at", "must be a datetime with a time zone")
    if cmd.idempotency_key is not None:
        _text("idempotency_key", cmd.idempotency_key)
    if cmd.expected_version is not None and (
        not isinstance(cmd.expected_version, int) or cmd.expected_version < 1
    ):
        raise InvalidInput("expected_version", "must be a case version (1 or more)")


def _text(field: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(field, "is required and must be non-empty text")
    return value.strip()


def _party(field: str, value: Party | str) -> Party:
    try:
        return Party(value)
    except ValueError:
        raise InvalidInput(field, f"{value!r} is not a Party (US, MX or CA)") from None


def _check_facility(facility: Facility, respondent: Party) -> Facility:
    if not isinstance(facility, Facility):
        raise InvalidInput("facility", "must be a Facility")
    for name in ("facility_id", "name", "owner"):
        _text(f"facility.{name}", getattr(facility, name))
    country = _party("facility.country", facility.country)
    if country is not respondent:
        raise InvalidInput(
            "facility.country",
            f"the facility is in {country}, but the respondent Party is {respondent}; "
            "a request concerns a facility in the respondent's territory",
        )
    return dataclasses.replace(facility, country=country)


def _claim_attributes(claim: Claim) -> dict[str, JSONValue]:
    if not isinstance(claim, Claim):
        raise InvalidInput("claim", "must be a Claim")
    if claim.basis not in CLAIM_BASES:
        raise InvalidInput(
            "claim.basis", f"must be one of {', '.join(sorted(CLAIM_BASES))}"
        )
    _text("claim.sector_category", claim.sector_category)
    return {
        "basis": claim.basis,
        "sector_category": claim.sector_category,
        "legal_provisions": list(claim.legal_provisions),
        "nlrb_order": claim.nlrb_order,
        "alleged_conduct_from": (
            claim.alleged_conduct_from.isoformat()
            if claim.alleged_conduct_from
            else None
        ),
    }


def _check_officers(officers: tuple[Officer, ...], spec: WorkflowSpec) -> None:
    for i, o in enumerate(officers):
        _text(f"officers[{i}].officer_id", o.officer_id)
        if o.role not in spec.roles:
            raise InvalidInput(
                f"officers[{i}].role",
                f"unknown role {o.role!r}; roles: {', '.join(spec.roles)}",
            )


def _entry(
    case: Case,
    *,
    prev_hash: str,
    seq: int,
    event: str,
    from_state: str | None,
    actor: str,
    role: str,
    reason: str,
    payload: Mapping[str, JSONValue],
    at: datetime,
    now: datetime,
    key: str | None,
) -> HistoryEntry:
    fields: dict[str, object] = {
        "case_id": case.case_id,
        "seq": seq,
        "event": event,
        "from_state": from_state,
        "to_state": case.state,
        "actor": actor,
        "role": role,
        "reason": reason,
        "payload": dict(payload),
        "occurred_at": at,
        "recorded_at": now,
        "idempotency_key": key,
    }
    digest = entry_hash(prev_hash=prev_hash, **fields)  # type: ignore[arg-type]
    return HistoryEntry(prev_hash=prev_hash, hash=digest, **fields)  # type: ignore[arg-type]


def _apply_effects(
    effects: tuple[str, ...],
    attributes: Mapping[str, JSONValue],
    *,
    event: str,
    payload: Mapping[str, JSONValue],
    at: datetime,
    citation: str,
) -> tuple[dict[str, JSONValue], bool]:
    attrs = dict(attributes)
    determination = False
    for effect in effects:
        name, _, arg = effect.partition(":")
        outcome = EFFECTS[name](
            EffectContext(
                attributes=attrs,
                event=event,
                payload=payload,
                at=at,
                citation=citation,
                arg=arg or None,
            )
        )
        attrs.update(outcome.updates)
        determination = determination or outcome.determination
    return attrs, determination


def _merge(case: Case, changed: tuple[Deadline, ...]) -> tuple[Deadline, ...]:
    by_id = {d.deadline_id: d for d in case.deadlines}
    by_id.update({d.deadline_id: d for d in changed})
    return tuple(sorted(by_id.values(), key=lambda d: (d.opened_seq, d.key)))


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class _Record:
    """What one history entry says happened."""

    event: str
    actor: str
    role: str
    reason: str
    payload: Mapping[str, JSONValue]
    at: datetime
    key: str | None = None


def _append(
    uow: UnitOfWork,
    case: Case,
    record: _Record,
    *,
    now: datetime,
    deadlines: tuple[Deadline, ...] = (),
    officers: tuple[Officer, ...] | None = None,
    determined: bool = False,
    **changes: Any,
) -> CaseChange:
    """Build the change that appends *record* to an existing case's history."""
    seq = case.version + 1
    after = dataclasses.replace(
        case,
        version=seq,
        updated_at=now,
        last_event_at=record.at,
        deadlines=_merge(case, deadlines),
        officers=case.officers if officers is None else officers,
        **changes,
    )
    entry = _entry(
        after,
        prev_hash=uow.cases.last_hash(case.case_id),
        seq=seq,
        event=record.event,
        from_state=case.state,
        actor=record.actor,
        role=record.role,
        reason=record.reason,
        payload=record.payload,
        at=record.at,
        now=now,
        key=record.key,
    )
    determination = None
    if determined:
        determination = Determination(
            case_id=case.case_id,
            facility_id=case.facility.facility_id,
            owner=case.facility.owner,
            determined_at=record.at,
            seq=seq,
        )
    return CaseChange(
        case=after,
        expected_version=case.version,
        entry=entry,
        deadlines=deadlines,
        officers=officers,
        determination=determination,
    )


def open_case(
    uow: UnitOfWork, workflows: Workflows, cmd: OpenCase, *, case_id: str, now: datetime
) -> CaseChange:
    """Validate an ``OpenCase`` command and build the change that opens the case."""
    spec = workflows.get(_text("workflow", cmd.workflow), cmd.workflow_version)
    complainant = _party("complainant", cmd.complainant)
    respondent = _party("respondent", cmd.respondent)
    direction = spec.direction(complainant, respondent)
    if direction is None:
        pairs = ", ".join(f"{d.complainant}→{d.respondent}" for d in spec.directions)
        raise InvalidInput(
            "respondent",
            f"workflow {spec.workflow_id} covers {pairs}, "
            f"not {complainant}→{respondent}",
        )
    opening = spec.openings.get(cmd.initiation)
    if opening is None or cmd.initiation not in direction.openings:
        raise InvalidInput(
            "initiation",
            f"{cmd.initiation!r} is not a way to open a {complainant}→{respondent} "
            f"case; use one of {', '.join(direction.openings)}",
        )
    ref = _text("external_ref", cmd.external_ref)
    existing = uow.cases.get_by_ref(ref)
    if existing is not None:
        raise CaseAlreadyExists(ref, existing.case_id)
    facility = _check_facility(cmd.facility, respondent)
    for i, p in enumerate(cmd.petitioners):
        _text(f"petitioners[{i}].name", p.name)
    _check_officers(cmd.officers, spec)
    actor = _text("actor", cmd.actor)
    if cmd.role not in opening.roles:
        raise RoleNotAllowed("(new case)", opening.event, cmd.role, opening.roles)
    validate_payload(opening.payload, _check_payload(cmd.payload))
    if cmd.at is not None and not isinstance(cmd.at, datetime):
        raise InvalidInput("at", "must be a datetime with a time zone")
    at = _when(cmd.at, now, None)
    case = Case(
        case_id=case_id,
        external_ref=ref,
        workflow_id=spec.workflow_id,
        workflow_version=spec.version,
        state=opening.state,
        version=1,
        complainant=complainant,
        respondent=respondent,
        initiation=cmd.initiation,
        facility=facility,
        petitioners=tuple(cmd.petitioners),
        officers=tuple(cmd.officers),
        attributes={"claim": _claim_attributes(cmd.claim)},
        opened_at=at,
        updated_at=now,
        last_event_at=at,
    )
    ctx = GuardContext(
        case=case,
        event=opening.event,
        payload=cmd.payload,
        at=at,
        prior_determinations=0,
        parameters={},
    )
    for guard in (*direction.guards, *opening.guards):
        rejection = GUARDS[guard](ctx)
        if rejection is not None:
            raise GuardRejected("(new case)", opening.event, guard, rejection.reason)
    attrs, _ = _apply_effects(
        opening.effects,
        case.attributes,
        event=opening.event,
        payload=cmd.payload,
        at=at,
        citation=opening.citation,
    )
    case = dataclasses.replace(case, attributes=attrs)
    facts = EventFacts(
        case=case,
        event=opening.event,
        to_state=opening.state,
        payload=cmd.payload,
        at=at,
        seq=1,
    )
    deadlines = plan_deadlines(spec, facts, workflows.calendars)
    case = dataclasses.replace(case, deadlines=deadlines)
    entry = _entry(
        case,
        prev_hash=GENESIS_HASH,
        seq=1,
        event=opening.event,
        from_state=None,
        actor=actor,
        role=cmd.role,
        reason=cmd.reason,
        payload=cmd.payload,
        at=at,
        now=now,
        key=None,
    )
    return CaseChange(
        case=case,
        expected_version=0,
        entry=entry,
        deadlines=deadlines,
        officers=tuple(cmd.officers),
    )


def _load(uow: UnitOfWork, case_id: str, expected: int | None) -> Case:
    case = uow.cases.get(case_id)
    if case is None:
        raise CaseNotFound(case_id)
    if expected is not None and expected != case.version:
        raise ConcurrencyConflict(case_id, expected, case.version)
    return case


def _prior(uow: UnitOfWork, spec: WorkflowSpec, case: Case, event: str) -> int:
    needs = any(
        "remedies_allowed" in t.guards
        for t in spec.transitions_from(case.state)
        if t.event == event
    )
    if not needs:
        return 0
    return uow.cases.prior_determinations(
        facility_id=case.facility.facility_id,
        owner=case.facility.owner,
        case_id=case.case_id,
    )


def fire_event(
    uow: UnitOfWork, workflows: Workflows, cmd: FireEvent, *, now: datetime
) -> CaseChange | Case:
    """Build the change an event makes, or return the case for a repeated key."""
    _check_fire(cmd)
    case = uow.cases.get(cmd.case_id)
    if case is None:
        raise CaseNotFound(cmd.case_id)
    if cmd.idempotency_key is not None:
        seen = uow.cases.entry_by_idempotency_key(case.case_id, cmd.idempotency_key)
        if seen is not None:
            if seen.event != cmd.event:
                raise InvalidInput(
                    "idempotency_key", f"already used for event {seen.event!r}"
                )
            return case
    if cmd.expected_version is not None and cmd.expected_version != case.version:
        raise ConcurrencyConflict(case.case_id, cmd.expected_version, case.version)
    actor = _text("actor", cmd.actor)
    at = _when(cmd.at, now, case.last_event_at)
    spec = workflows.get(case.workflow_id, case.workflow_version)
    if spec.states[case.state].terminal:
        raise TransitionNotAllowed(case.case_id, case.state, cmd.event)
    decision = decide(
        spec,
        case,
        event=cmd.event,
        role=cmd.role,
        payload=cmd.payload,
        at=at,
        prior_determinations=_prior(uow, spec, case, cmd.event),
    )
    t = decision.transition
    attrs, determined = _apply_effects(
        t.effects,
        case.attributes,
        event=cmd.event,
        payload=cmd.payload,
        at=at,
        citation=t.citation,
    )
    if t.flags:
        flags = attrs.get("flags")
        merged = dict(flags) if isinstance(flags, dict) else {}
        merged.update(t.flags)
        attrs["flags"] = merged
    facts = EventFacts(
        case=case,
        event=cmd.event,
        to_state=decision.to_state,
        payload=cmd.payload,
        at=at,
        seq=case.version + 1,
    )
    record = _Record(
        event=cmd.event,
        actor=actor,
        role=cmd.role,
        reason=cmd.reason,
        payload=cmd.payload,
        at=at,
        key=cmd.idempotency_key,
    )
    return _append(
        uow,
        case,
        record,
        now=now,
        deadlines=plan_deadlines(spec, facts, workflows.calendars),
        determined=determined,
        state=decision.to_state,
        attributes=attrs,
    )


def _check_role(spec: WorkflowSpec, case: Case, role: str, what: str) -> None:
    if role not in spec.roles:
        raise RoleNotAllowed(case.case_id, what, role, tuple(spec.roles))


def change_deadline(
    uow: UnitOfWork,
    workflows: Workflows,
    cmd: ExtendDeadline | PauseDeadline | ResumeDeadline,
    *,
    now: datetime,
) -> CaseChange:
    """Build the change for extending, pausing or resuming one open deadline."""
    case = _load(uow, cmd.case_id, cmd.expected_version)
    spec = workflows.get(case.workflow_id, case.workflow_version)
    deadline = case.open_deadlines.get(cmd.key)
    if deadline is None:
        raise DeadlineNotFound(case.case_id, cmd.key)
    actor = _text("actor", cmd.actor)
    reason = _text("reason", cmd.reason)
    at = _when(cmd.at, now, case.last_event_at)
    payload: dict[str, JSONValue] = {
        "deadline": cmd.key,
        "previous_due": deadline.due_date.isoformat(),
    }
    if isinstance(cmd, ExtendDeadline):
        event = "deadline_extended"
        _check_role(spec, case, cmd.role, event)
        changed = extend_deadline(
            spec,
            case,
            deadline,
            new_date=cmd.new_date,
            reason=reason,
            calendars=workflows.calendars,
        )
    elif isinstance(cmd, PauseDeadline):
        event = "deadline_paused"
        _check_role(spec, case, cmd.role, event)
        changed = (pause_deadline(deadline, at=at),)
    else:
        event = "deadline_resumed"
        _check_role(spec, case, cmd.role, event)
        changed = resume_deadline(
            spec, case, deadline, at=at, calendars=workflows.calendars
        )
    payload["new_due"] = changed[0].due_date.isoformat()
    record = _Record(
        event=event, actor=actor, role=cmd.role, reason=reason, payload=payload, at=at
    )
    return _append(uow, case, record, now=now, deadlines=changed)


def assign_officers(
    uow: UnitOfWork, workflows: Workflows, cmd: AssignOfficers, *, now: datetime
) -> CaseChange:
    """Build the change that assigns or unassigns officers on a case."""
    case = _load(uow, cmd.case_id, cmd.expected_version)
    spec = workflows.get(case.workflow_id, case.workflow_version)
    _check_role(spec, case, cmd.role, "officers_assigned")
    _check_officers(cmd.assign, spec)
    actor = _text("actor", cmd.actor)
    if not cmd.assign and not cmd.remove:
        raise InvalidInput("assign", "name officers to assign or remove")
    kept = [o for o in case.officers if o.officer_id not in set(cmd.remove)]
    keys = {(o.officer_id, o.role) for o in cmd.assign}
    officers = (*[o for o in kept if (o.officer_id, o.role) not in keys], *cmd.assign)
    payload: dict[str, JSONValue] = {
        "assigned": [f"{o.officer_id}:{o.role}" for o in cmd.assign],
        "removed": list(cmd.remove),
    }
    at = max(now, case.last_event_at)
    record = _Record(
        event="officers_assigned",
        actor=actor,
        role=cmd.role,
        reason=cmd.reason,
        payload=payload,
        at=at,
    )
    return _append(uow, case, record, now=now, officers=officers)
