"""Use cases: turn a command and the stored case into one ``CaseChange``.

Each handler reads what it needs through the unit of work, decides with the pure
workflow functions, and returns the change; the engine writes it in the same
transaction and commits. Nothing here reads the wall clock: ``now`` is passed in.
"""

from __future__ import annotations

import dataclasses
import secrets
from typing import TYPE_CHECKING, Any

from rrm.domain.case import (
    GENESIS_HASH,
    Case,
    Deadline,
    DeadlineStatus,
    Facility,
    HistoryEntry,
    JSONValue,
    Officer,
    entry_hash,
)
from rrm.domain.commands import (
    AssignOfficers,
    ExtendDeadline,
    FireEvent,
    OpenCase,
    PauseDeadline,
    ResumeDeadline,
)
from rrm.domain.subject import OPENING_GROUPS, seal
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
from rrm.service import validation as v
from rrm.service.access import OPEN_GATE, Action, Gate
from rrm.service.ports import CaseChange, Determination, UnitOfWork
from rrm.workflow.clocks import (
    EventFacts,
    calendar_for,
    extend_deadline,
    pause_deadline,
    plan_deadlines,
    recompute_deadline,
    resume_deadline,
    scheduled,
    spec_key,
)
from rrm.workflow.effects import EFFECTS, EffectContext
from rrm.workflow.guards import GUARDS, GuardContext
from rrm.workflow.machine import decide, validate_payload

if TYPE_CHECKING:
    from collections.abc import Mapping
    from datetime import datetime

    from rrm.workflow.migration import MigrationMap
    from rrm.workflow.registry import Workflows
    from rrm.workflow.spec import WorkflowSpec

__all__ = [
    "MIGRATED",
    "assign_officers",
    "change_deadline",
    "fire_event",
    "migrate_case",
    "open_case",
]

#: The history event of a case moved to another version of its workflow.
MIGRATED = "workflow_migrated"


def _check_fire(cmd: FireEvent) -> None:
    if not isinstance(cmd, FireEvent):
        raise InvalidInput("command", "must be a FireEvent")
    for name in ("case_id", "event", "role", "actor"):
        v.text(name, getattr(cmd, name))
    v.optional_text("reason", cmd.reason)
    v.check_payload(cmd.payload)
    v.check_at("at", cmd.at)
    if cmd.idempotency_key is not None:
        v.text("idempotency_key", cmd.idempotency_key)
    v.check_expected_version(cmd.expected_version)


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
    via: str = "",
    sealed: tuple[str, ...] = (),
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
        "via": via,
        # What the entry gave beside the event (parties, people), as digests.
        "subject": seal(case, sealed, secrets.token_hex(16)) if sealed else None,
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
    via: str = ""
    # The groups of rrm.domain.subject this entry gives (and so seals).
    sealed: tuple[str, ...] = ()


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
        via=record.via,
        sealed=record.sealed,
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
    uow: UnitOfWork,
    workflows: Workflows,
    cmd: OpenCase,
    *,
    case_id: str,
    now: datetime,
    gate: Gate = OPEN_GATE,
) -> CaseChange:
    """Validate an ``OpenCase`` command and build the change that opens the case.

    The gate decides on the case as it would be opened: a principal opens a case
    in a role it holds, assigned to it in that role or covered by a grant.
    """
    if not isinstance(cmd, OpenCase):
        raise InvalidInput("command", "must be an OpenCase")
    version = cmd.workflow_version
    if version is not None and type(version) is not int:
        raise InvalidInput("workflow_version", "must be a whole number")
    spec = workflows.get(v.text("workflow", cmd.workflow), version)
    complainant = v.party("complainant", cmd.complainant)
    respondent = v.party("respondent", cmd.respondent)
    direction = spec.direction(complainant, respondent)
    if direction is None:
        pairs = ", ".join(f"{d.complainant}→{d.respondent}" for d in spec.directions)
        raise InvalidInput(
            "respondent",
            f"workflow {spec.workflow_id} covers {pairs}, "
            f"not {complainant}→{respondent}",
        )
    initiation = v.text("initiation", cmd.initiation)
    opening = spec.openings.get(initiation)
    if opening is None or initiation not in direction.openings:
        raise InvalidInput(
            "initiation",
            f"{initiation!r} is not a way to open a {complainant}→{respondent} "
            f"case; use one of {', '.join(direction.openings)}",
        )
    ref = v.text("external_ref", cmd.external_ref)
    facility = v.check_facility(cmd.facility, respondent)
    petitioners = v.check_petitioners(cmd.petitioners)
    officers = v.check_officers(cmd.officers, spec)
    attributes: dict[str, JSONValue] = {"claim": v.check_claim(cmd.claim)}
    actor, via = gate.actor(v.text("actor", cmd.actor))
    reason = v.optional_text("reason", cmd.reason)
    role = v.text("role", cmd.role)
    if role not in opening.roles:
        raise RoleNotAllowed("(new case)", opening.event, role, opening.roles)
    validate_payload(opening.payload, v.check_payload(cmd.payload))
    at = v.when(cmd.at, now, None)
    existing = uow.cases.get_by_ref(ref)
    if existing is not None:
        raise CaseAlreadyExists(ref, existing.case_id)
    _check_registry(uow, facility)
    follows = _follows(uow, cmd.payload.get("follows"), facility)
    if follows is not None:
        attributes["follows"] = follows
    case = Case(
        case_id=case_id,
        external_ref=ref,
        workflow_id=spec.workflow_id,
        workflow_version=spec.version,
        state=opening.state,
        version=1,
        complainant=complainant,
        respondent=respondent,
        initiation=initiation,
        facility=facility,
        petitioners=petitioners,
        officers=officers,
        attributes=attributes,
        opened_at=at,
        updated_at=now,
        last_event_at=at,
    )
    gate.check(Action.OPEN, role, case)
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
        recorded_at=now,
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
        role=role,
        reason=reason,
        payload=cmd.payload,
        at=at,
        now=now,
        key=None,
        via=via,
        sealed=OPENING_GROUPS,
    )
    return CaseChange(
        case=case,
        expected_version=0,
        entry=entry,
        deadlines=deadlines,
        officers=officers,
    )


def _follows(
    uow: UnitOfWork, named: JSONValue, facility: Facility
) -> dict[str, JSONValue] | None:
    """Resolve the earlier case a second request on a facility follows.

    The opening payload's ``follows`` names it (reference or id); it must exist
    and concern the same facility, so the registry counts both requests there.
    """
    if named is None:
        return None
    if not isinstance(named, str):
        raise InvalidInput("payload.follows", "must name an earlier case")
    earlier = uow.cases.get_by_ref(named) or uow.cases.get(named)
    if earlier is None:
        raise InvalidInput(
            "payload.follows",
            f"no case {named!r}: open or import the earlier one first",
        )
    if earlier.facility.facility_id != facility.facility_id:
        raise InvalidInput(
            "payload.follows",
            f"case {earlier.external_ref} concerns facility "
            f"{earlier.facility.facility_id!r}, not {facility.facility_id!r}",
        )
    return {"case_id": earlier.case_id, "external_ref": earlier.external_ref}


def _check_registry(uow: UnitOfWork, facility: Facility) -> None:
    """Refuse a facility id already registered under another owner or country.

    The registry counts repeat determinations by facility and owner; silently
    rewriting a registered facility would change earlier cases' counts.
    """
    known = uow.cases.facility(facility.facility_id)
    if known is None:
        return
    if (known.owner, known.country) != (facility.owner, facility.country):
        raise InvalidInput(
            "facility",
            f"facility {facility.facility_id!r} is registered with owner "
            f"{known.owner!r} in {known.country}; use that owner, or a new facility id",
        )


def _load(uow: UnitOfWork, case_id: str, expected: int | None) -> Case:
    case = uow.cases.get(case_id, lock=True)
    if case is None:
        raise CaseNotFound(case_id)
    if expected is not None and expected != case.version:
        raise ConcurrencyConflict(case_id, expected, case.version)
    return case


def _current(case: Case, expected: int | None) -> None:
    """Refuse a change decided on an older version of the case."""
    if expected is not None and expected != case.version:
        raise ConcurrencyConflict(case.case_id, expected, case.version)


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
    uow: UnitOfWork,
    workflows: Workflows,
    cmd: FireEvent,
    *,
    now: datetime,
    cached: bool = False,
    gate: Gate = OPEN_GATE,
) -> CaseChange | Case:
    """Build the change an event makes, or return the case for a repeated key.

    With *cached* the case may be this process's unread copy (see
    ``CaseRepository.get``); a refusal decided on it must be decided again.
    """
    _check_fire(cmd)
    case = uow.cases.get(cmd.case_id, lock=True, cached=cached)
    if case is None:
        # An external reference names the case as well as its id does.
        named = uow.cases.get_by_ref(cmd.case_id)
        case = uow.cases.get(named.case_id, lock=True) if named is not None else None
    if case is None:
        raise CaseNotFound(cmd.case_id)
    _, via = gate.actor(cmd.actor)
    gate.check(Action.FIRE, cmd.role, case)
    if cmd.idempotency_key is not None:
        seen = uow.cases.entry_by_idempotency_key(case.case_id, cmd.idempotency_key)
        if seen is not None:
            if seen.event != cmd.event or dict(seen.payload) != dict(cmd.payload):
                raise InvalidInput(
                    "idempotency_key",
                    f"already used for a different command (event {seen.event!r})",
                )
            if seen.seq > case.version:
                # Recorded by another process after the case was read (a retry
                # racing the original without a lock): answer with the case
                # that includes it.
                case = uow.cases.get(cmd.case_id) or case
            return case
    return fire_on(uow, workflows, case, cmd, now=now, via=via)


def fire_on(
    uow: UnitOfWork,
    workflows: Workflows,
    case: Case,
    cmd: FireEvent,
    *,
    now: datetime,
    via: str = "",
) -> CaseChange:
    """Build the change an event makes on *case*, loaded (and locked) by the caller.

    The deadline sweep fires lapse actions on the cases it has claimed this way.
    """
    if cmd.expected_version is not None and cmd.expected_version != case.version:
        raise ConcurrencyConflict(case.case_id, cmd.expected_version, case.version)
    actor = v.text("actor", cmd.actor)
    at = v.when(cmd.at, now, case.last_event_at)
    spec = workflows.get(case.workflow_id, case.workflow_version)
    if spec.states[case.state].terminal and not spec.is_fact(cmd.event):
        # A closed case takes only dated facts (a later publication, the
        # actual resumption of liquidation), never a procedural step.
        raise TransitionNotAllowed(
            case.case_id, case.state, cmd.event, tuple(spec.facts), closed=True
        )
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
        recorded_at=now,
    )
    record = _Record(
        event=cmd.event,
        actor=actor,
        role=cmd.role,
        reason=cmd.reason,
        payload=cmd.payload,
        at=at,
        key=cmd.idempotency_key,
        via=via,
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


def _check_role(spec: WorkflowSpec, case: Case, role: object, what: str) -> str:
    """Return a role allowed to change deadlines or assignments on the case.

    The respondent Party cannot move or pause its own clocks: an extension is
    agreed by both Parties and recorded by the complainant's officers.
    """
    name = v.text("role", role)
    allowed = (
        *(r for r in spec.roles if r != "respondent"),
        "supervisor",
        "admin",
    )
    if name not in allowed:
        raise RoleNotAllowed(case.case_id, what, name, allowed)
    return name


def _deadline_command(
    uow: UnitOfWork, cmd: ExtendDeadline | PauseDeadline | ResumeDeadline
) -> tuple[Case, Deadline]:
    if not isinstance(cmd, ExtendDeadline | PauseDeadline | ResumeDeadline):
        raise InvalidInput(
            "command", "must be an ExtendDeadline, PauseDeadline or ResumeDeadline"
        )
    v.text("case_id", cmd.case_id)
    key = v.text("key", cmd.key)
    v.check_expected_version(cmd.expected_version)
    # The version is compared after the permission (as for events): a caller
    # who may not act learns nothing of the case's progress.
    case = _load(uow, cmd.case_id, None)
    deadline = case.open_deadlines.get(key)
    if deadline is None:
        raise DeadlineNotFound(case.case_id, key)
    return case, deadline


def change_deadline(
    uow: UnitOfWork,
    workflows: Workflows,
    cmd: ExtendDeadline | PauseDeadline | ResumeDeadline,
    *,
    now: datetime,
    gate: Gate = OPEN_GATE,
) -> CaseChange:
    """Build the change for extending, pausing or resuming one open deadline."""
    case, deadline = _deadline_command(uow, cmd)
    spec = workflows.get(case.workflow_id, case.workflow_version)
    event = {
        ExtendDeadline: "deadline_extended",
        PauseDeadline: "deadline_paused",
        ResumeDeadline: "deadline_resumed",
    }[type(cmd)]
    role = _check_role(spec, case, cmd.role, event)
    action = {
        ExtendDeadline: Action.EXTEND,
        PauseDeadline: Action.PAUSE,
        ResumeDeadline: Action.RESUME,
    }[type(cmd)]
    actor, via = gate.actor(v.text("actor", cmd.actor))
    gate.check(action, role, case)
    _current(case, cmd.expected_version)
    reason = v.text("reason", cmd.reason)
    at = v.when(cmd.at, now, case.last_event_at)
    if isinstance(cmd, ExtendDeadline):
        if deadline.status is DeadlineStatus.PAUSED:
            raise InvalidInput("key", f"{deadline.key!r} is paused; resume it first")
        changed = extend_deadline(
            spec,
            case,
            deadline,
            new_date=v.check_date("new_date", cmd.new_date),
            reason=reason,
            calendars=workflows.calendars,
        )
    elif isinstance(cmd, PauseDeadline):
        if at >= deadline.due_at:
            raise InvalidInput(
                "key",
                f"{deadline.key!r} lapsed on {deadline.due_date}; extend it "
                "by agreement instead of pausing it",
            )
        changed = (pause_deadline(deadline, at=at),)
    else:
        changed = resume_deadline(
            spec, case, deadline, at=at, calendars=workflows.calendars
        )
    payload: dict[str, JSONValue] = {
        "deadline": deadline.key,
        "previous_due": deadline.due_date.isoformat(),
        "new_due": changed[0].due_date.isoformat(),
    }
    if changed[1:]:
        payload["moved"] = {d.key: d.due_date.isoformat() for d in changed[1:]}
    record = _Record(
        event=event,
        actor=actor,
        role=role,
        reason=reason,
        payload=payload,
        at=at,
        via=via,
    )
    return _append(uow, case, record, now=now, deadlines=changed)


def assign_officers(
    uow: UnitOfWork,
    workflows: Workflows,
    cmd: AssignOfficers,
    *,
    now: datetime,
    gate: Gate = OPEN_GATE,
) -> CaseChange:
    """Build the change that assigns or unassigns officers on a case."""
    if not isinstance(cmd, AssignOfficers):
        raise InvalidInput("command", "must be an AssignOfficers")
    v.text("case_id", cmd.case_id)
    v.check_expected_version(cmd.expected_version)
    case = _load(uow, cmd.case_id, None)
    spec = workflows.get(case.workflow_id, case.workflow_version)
    role = _check_role(spec, case, cmd.role, "officers_assigned")
    assign = v.check_officers(cmd.assign, spec)
    remove = tuple(v.text(f"remove[{i}]", r) for i, r in enumerate(cmd.remove))
    actor, via = gate.actor(v.text("actor", cmd.actor))
    gate.check(Action.ASSIGN, role, case)
    _current(case, cmd.expected_version)
    reason = v.optional_text("reason", cmd.reason)
    if not assign and not remove:
        raise InvalidInput("assign", "name officers to assign or remove")
    kept = [o for o in case.officers if o.officer_id not in set(remove)]
    keys = {(o.officer_id, o.role) for o in assign}
    officers = (*[o for o in kept if (o.officer_id, o.role) not in keys], *assign)
    payload: dict[str, JSONValue] = {
        "assigned": [f"{o.officer_id}:{o.role}" for o in assign],
        "removed": list(remove),
    }
    at = v.when(None, now, case.last_event_at)
    record = _Record(
        event="officers_assigned",
        actor=actor,
        role=role,
        reason=reason,
        payload=payload,
        at=at,
        via=via,
        sealed=("officers",),
    )
    return _append(uow, case, record, now=now, officers=officers)


def record_lapse(
    uow: UnitOfWork, case: Case, lapsed: Deadline, *, now: datetime
) -> CaseChange:
    """Build the audited ``deadline_missed`` entry for a deadline that has lapsed.

    The entry is dated at the lapse (the end of the due date), or at the case's
    last event if that came later, so the history stays in order.
    """
    payload: dict[str, JSONValue] = {
        "deadline": lapsed.key,
        "due_date": lapsed.due_date.isoformat(),
        "nominal": lapsed.nominal,
    }
    record = _Record(
        event="deadline_missed",
        actor="rrm:engine",
        role="system",
        reason=f"{lapsed.label}: due {lapsed.due_date.isoformat()}, not met",
        payload=payload,
        at=v.when(None, lapsed.due_at, case.last_event_at),
    )
    return _append(uow, case, record, now=now, deadlines=(lapsed,))


def migrate_case(
    uow: UnitOfWork,
    workflows: Workflows,
    case: Case,
    mapping: MigrationMap,
    *,
    actor: str,
    role: str,
    reason: str,
    now: datetime,
    at: datetime | None = None,
) -> CaseChange:
    """Build the change that moves *case* to the mapping's newer workflow version.

    The state follows the mapping; every open deadline is closed and opened
    again under the new definition: a counted clock is recomputed from the event
    that opened it, an agreed, extended or paused one keeps its date; one the
    new version does not hold in the new state is cancelled. One audited entry
    (``workflow_migrated``) records it all, and the version pin moves.

    Raises:
        InvalidInput: If the case is not on the mapping's old version, or its
            state has no mapping.
    """
    if (case.workflow_id, case.workflow_version) != (
        mapping.workflow_id,
        mapping.from_version,
    ):
        raise InvalidInput(
            "case",
            f"case {case.external_ref} is on {case.workflow_id} "
            f"v{case.workflow_version}, not v{mapping.from_version}",
        )
    target = mapping.target(case.state)
    if target is None:
        raise InvalidInput(
            "states",
            f"case {case.external_ref} is in state {case.state!r}, which "
            f"{mapping.source_file or 'the mapping'} does not map",
        )
    new = workflows.get(case.workflow_id, mapping.to_version)
    seq = case.version + 1
    entries = {e.seq: e for e in uow.cases.history(case.case_id)}
    moved = dataclasses.replace(case, state=target, workflow_version=new.version)
    changed: list[Deadline] = []
    report: dict[str, JSONValue] = {}
    for old in (d for d in case.deadlines if d.is_open):
        changed.append(
            dataclasses.replace(
                old,
                status=DeadlineStatus.CANCELLED,
                closed_seq=seq,
                closed_at=now,
                next_action_at=None,
            )
        )
        again = _migrated_deadline(
            workflows,
            new,
            moved,
            old,
            entries=entries,
            mapping=mapping,
            seq=seq,
            now=now,
        )
        if again is not None:
            changed.append(again)
        report[old.key] = {
            "was_due": old.due_date.isoformat(),
            "now_due": again.due_date.isoformat() if again is not None else None,
            "as": again.key if again is not None else None,
        }
    record = _Record(
        event=MIGRATED,
        actor=v.text("actor", actor),
        role=v.text("role", role),
        reason=v.optional_text("reason", reason),
        payload={
            "workflow": case.workflow_id,
            "from_version": mapping.from_version,
            "to_version": mapping.to_version,
            "mapping": f"{mapping.workflow_id}/migrate-v{mapping.from_version}"
            f"-to-v{mapping.to_version}.toml",
            "mapping_sha256": mapping.sha256,
            "deadlines": report,
        },
        at=v.when(at, now, case.last_event_at),
    )
    change = _append(
        uow,
        case,
        record,
        now=now,
        deadlines=tuple(changed),
        state=target,
        workflow_version=new.version,
    )
    return dataclasses.replace(change, repin=True)


def _migrated_deadline(
    workflows: Workflows,
    new: WorkflowSpec,
    case: Case,
    old: Deadline,
    *,
    entries: Mapping[int, HistoryEntry],
    mapping: MigrationMap,
    seq: int,
    now: datetime,
) -> Deadline | None:
    """Return *old* as the new definition holds it, or None if it does not."""
    key = mapping.deadline_key(old.key)
    spec = new.deadlines.get(spec_key(key))
    if spec is None or case.state not in spec.active_in:
        return None
    cal = calendar_for(new, spec, case, workflows.calendars)
    opened_by = entries.get(old.opened_seq)
    counted = (
        spec.days is not None
        and old.extensions == 0
        and old.status is DeadlineStatus.OPEN
        and not old.anchor_event.startswith("deadline:")
        and opened_by is not None
    )
    again: Deadline | None = None
    if counted and opened_by is not None:
        facts = EventFacts(
            case=case,
            event=opened_by.event,
            to_state=case.state,
            payload=opened_by.payload,
            at=opened_by.occurred_at,
            seq=seq,
            recorded_at=now,
        )
        again = recompute_deadline(new, key, facts, workflows.calendars, {})
    version = f"{case.workflow_id} v{new.version}"
    if again is None:
        # Agreed by the Parties (an agreed date, an extension) or paused: the
        # date stands; only the rule's citation and evidence come from the new
        # version.
        again = dataclasses.replace(
            old,
            deadline_id=f"{case.case_id}:{key}:{seq}",
            key=key,
            opened_seq=seq,
            citation=spec.citation,
            evidence=spec.evidence.value,
            explanation=f"{old.explanation}; kept as agreed on moving to {version}",
        )
    else:
        note = (
            "unchanged"
            if again.due_date == old.due_date
            else f"was {old.due_date.isoformat()}"
        )
        again = dataclasses.replace(
            again,
            explanation=f"{again.explanation}; recomputed on moving to {version} "
            f"({note})",
            # Alerts are owed from the move on: none replayed for the new date.
            alerts_through=now,
            # A lapse already handled stays handled while the date has passed.
            lapsed_at=old.lapsed_at if again.due_at <= now else None,
        )
    return scheduled(again, spec, cal)
