"""Decide which transition an event takes: the only module that imports `transitions`.

One compiled ``transitions.Machine`` is cached per workflow version and per thread;
each decision drives a throwaway model through it. Guards are evaluated as the
machine's conditions and record why they refused, so the caller gets an
officer-readable reason instead of a bare ``False``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, cast

from transitions import EventData, Machine, MachineError

from rrm.domain.case import DeadlineStatus
from rrm.errors import GuardRejected, InvalidInput, RoleNotAllowed, TransitionNotAllowed
from rrm.workflow.guards import GUARDS, GuardContext, Rejection

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from rrm.domain.case import Case, JSONValue
    from rrm.workflow.spec import PayloadField, TransitionSpec, WorkflowSpec

__all__ = ["Decision", "allowed_events", "decide", "validate_payload"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """The transition an event takes, chosen and checked."""

    transition: TransitionSpec
    from_state: str
    to_state: str


@dataclass
class _Model:
    """A throwaway model the cached machine drives for one decision."""

    state: str = ""
    rejections: list[tuple[str, str]] = field(default_factory=list)
    chosen: TransitionSpec | None = None


_local = threading.local()


def _condition(t: TransitionSpec) -> Any:
    def check(event: EventData) -> bool:
        model = cast("_Model", event.model)
        ctx: GuardContext = event.kwargs["ctx"]
        if event.kwargs["role"] not in t.roles:
            return False
        if t.after_lapse_of is not None:
            deadline = ctx.case.open_deadlines.get(t.after_lapse_of)
            if deadline is not None and deadline.status is DeadlineStatus.PAUSED:
                model.rejections.append(
                    ("deadline_lapsed", f"deadline {t.after_lapse_of!r} is paused")
                )
                return False
            if deadline is None or ctx.at < deadline.due_at:
                when = deadline.due_date.isoformat() if deadline else "closed"
                model.rejections.append(
                    (
                        "deadline_lapsed",
                        f"deadline {t.after_lapse_of!r} has not lapsed (due {when})",
                    ),
                )
                return False
        for name in t.guards:
            result: Rejection | None = GUARDS[name](ctx)
            if result is not None:
                model.rejections.append((name, result.reason))
                return False
        model.chosen = t
        return True

    return check


def _machine(spec: WorkflowSpec) -> Machine:
    cache: dict[tuple[str, int, str], Machine] | None = getattr(_local, "cache", None)
    if cache is None:
        cache = _local.cache = {}
    key = (spec.workflow_id, spec.version, spec.sha256)
    machine = cache.get(key)
    if machine is None:
        machine = Machine(
            model=None,
            states=list(spec.states),
            transitions=[
                {
                    "trigger": t.event,
                    "source": list(t.sources),
                    "dest": t.dest,
                    "conditions": [_condition(t)],
                }
                for t in spec.expanded_transitions()
            ],
            initial=None,
            auto_transitions=False,
            send_event=True,
            ignore_invalid_triggers=False,
        )
        cache[key] = machine
    return machine


def allowed_events(spec: WorkflowSpec, state: str) -> tuple[str, ...]:
    """Return the events the workflow allows in *state*, in definition order."""
    return tuple(dict.fromkeys(t.event for t in spec.transitions_from(state)))


def decide(
    spec: WorkflowSpec,
    case: Case,
    *,
    event: str,
    role: str,
    payload: Mapping[str, JSONValue],
    at: datetime,
    prior_determinations: int,
) -> Decision:
    """Choose the transition *event* takes from the case's state, or refuse.

    Raises:
        TransitionNotAllowed: The event is not possible in the case's state.
        RoleNotAllowed: No transition for the event admits *role*.
        InvalidInput: The payload is malformed.
        GuardRejected: Every candidate transition's guard refused.
    """
    candidates = [t for t in spec.transitions_from(case.state) if t.event == event]
    if not candidates:
        raise TransitionNotAllowed(
            case.case_id, case.state, event, allowed_events(spec, case.state)
        )
    permitted = [t for t in candidates if role in t.roles]
    if not permitted:
        roles = tuple(dict.fromkeys(r for t in candidates for r in t.roles))
        raise RoleNotAllowed(case.case_id, event, role, roles)
    validate_payload(permitted[0].payload, payload)
    machine = _machine(spec)
    # The model is never registered with add_model (which decorates it with one
    # attribute per state and event); Event.trigger only reads and writes `state`.
    model = _Model(state=case.state)
    ctx = GuardContext(
        case=case,
        event=event,
        payload=payload,
        at=at,
        prior_determinations=prior_determinations,
        parameters={k: p.value for k, p in spec.parameters.items()},
    )
    try:
        moved = machine.events[event].trigger(model, ctx=ctx, role=role)
    except MachineError:  # pragma: no cover - candidates were checked above
        raise TransitionNotAllowed(case.case_id, case.state, event) from None
    if not moved or model.chosen is None:
        guard, reason = model.rejections[-1] if model.rejections else ("role", "")
        raise GuardRejected(case.case_id, event, guard, reason)
    return Decision(
        transition=model.chosen, from_state=case.state, to_state=model.chosen.dest
    )


def validate_payload(
    fields: tuple[PayloadField, ...], payload: Mapping[str, JSONValue]
) -> None:
    """Check an event payload against the fields the workflow declares.

    Raises:
        InvalidInput: A required field is missing, or a value has the wrong type.
    """
    declared = {f.name: f for f in fields}
    for name in payload:
        if name not in declared and name not in _FREE_FIELDS:
            known = ", ".join(sorted(declared)) or "none"
            raise InvalidInput(f"payload.{name}", f"unknown field (expected: {known})")
    for f in fields:
        if f.name not in payload or payload[f.name] is None:
            if f.required:
                raise InvalidInput(f"payload.{f.name}", "is required for this event")
            continue
        problem = _type_problem(f, payload[f.name])
        if problem:
            raise InvalidInput(f"payload.{f.name}", problem)


# Free-text fields any event may carry for the record; never interpreted.
_FREE_FIELDS = frozenset({"note", "source", "reference", "date_precision"})


def _is_date(value: JSONValue) -> bool:
    if not isinstance(value, str):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return len(value) == len("2024-01-31")


def _is_text(value: JSONValue) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _is_int(value: JSONValue) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_bool(value: JSONValue) -> bool:
    return isinstance(value, bool)


def _is_text_list(value: JSONValue) -> bool:
    return isinstance(value, list) and all(isinstance(x, str) for x in value)


_CHECKS: dict[str, Callable[[JSONValue], bool]] = {
    "str": _is_text,
    "int": _is_int,
    "bool": _is_bool,
    "date": _is_date,
    "list[str]": _is_text_list,
}


def _type_problem(f: PayloadField, value: JSONValue) -> str | None:
    if f.type == "enum":
        return None if value in f.choices else f"must be one of {', '.join(f.choices)}"
    if f.type == "milestones":
        if _is_milestones(value):
            return None
        return 'must be a list of {label = "...", due = "YYYY-MM-DD"}'
    if _CHECKS[f.type](value):
        return None
    return f"must be of type {f.type}" + (" (YYYY-MM-DD)" if f.type == "date" else "")


def _is_milestones(value: JSONValue) -> bool:
    if not isinstance(value, list):
        return False
    for item in value:
        if not isinstance(item, dict) or set(item) != {"label", "due"}:
            return False
        if not isinstance(item["label"], str) or not _is_date(item["due"]):
            return False
    return True
