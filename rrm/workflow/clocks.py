"""Plan deadline changes for an event, an extension or a pause (pure).

Given a case, the event it is taking and the workflow, decide which deadlines open
(with their computed, explained due dates), which are met and which are cancelled.
A deadline stays open only while the case is in one of its ``active_in`` states, so
the set of open deadlines always agrees with the state.
"""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from rrm.domain.alerts import next_step_at
from rrm.domain.case import Case, Deadline, DeadlineStatus, JSONValue, Party
from rrm.domain.deadlines import (
    ComputedDue,
    DeadlineRule,
    agreed_due,
    compute_due,
    extended_due,
    local_date,
    tolled_due,
)
from rrm.errors import InvalidInput

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from rrm.domain.calendars import BusinessCalendar
    from rrm.workflow.spec import DeadlineSpec, WorkflowSpec

__all__ = [
    "EventFacts",
    "calendar_for",
    "extend_deadline",
    "pause_deadline",
    "plan_deadlines",
    "recompute_deadline",
    "resume_deadline",
    "rule_of",
    "scheduled",
    "spec_key",
]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class EventFacts:
    """The facts about one event that deadlines depend on."""

    case: Case
    event: str
    to_state: str
    payload: Mapping[str, JSONValue]
    at: datetime
    seq: int
    recorded_at: datetime | None = None


def scheduled(
    deadline: Deadline, spec: DeadlineSpec, calendar: BusinessCalendar
) -> Deadline:
    """Return *deadline* with ``next_action_at`` set: its next alert or its lapse.

    Only open deadlines need the engine; paused, met and cancelled ones do not.
    """
    if deadline.status is not DeadlineStatus.OPEN:
        return dataclasses.replace(deadline, next_action_at=None)
    candidates = []
    if deadline.lapsed_at is None:
        candidates.append(deadline.due_at)
    if spec.ladder is not None:
        after = deadline.alerts_through or deadline.opened_at
        step = next_step_at(spec.ladder, deadline, calendar, after=after)
        if step is not None:
            candidates.append(step)
    return dataclasses.replace(deadline, next_action_at=min(candidates, default=None))


def spec_key(deadline_key: str) -> str:
    """Return the definition key of a deadline (milestones carry ``.N``)."""
    return deadline_key.split(".", 1)[0]


def rule_of(spec: DeadlineSpec) -> DeadlineRule:
    """Return the calculator's rule for a deadline definition."""
    return DeadlineRule(
        key=spec.key,
        label=spec.label,
        days=spec.days,
        counting=spec.counting,
        roll_forward=spec.roll_forward,
        anchor_label=spec.anchor_label,
        citation=spec.citation,
        evidence=spec.evidence,
    )


def calendar_for(
    workflow: WorkflowSpec,
    spec: DeadlineSpec,
    case: Case,
    calendars: Mapping[str, BusinessCalendar],
) -> BusinessCalendar:
    """Return the calendar of the Party whose clock this is (or both Parties')."""
    own: Party = case.complainant if spec.party == "complainant" else case.respondent
    other: Party = case.respondent if own is case.complainant else case.complainant
    cal = calendars[workflow.calendars[own]]
    if spec.calendar == "both":
        cal = cal.union(calendars[workflow.calendars[other]])
    return cal


def plan_deadlines(
    workflow: WorkflowSpec,
    facts: EventFacts,
    calendars: Mapping[str, BusinessCalendar],
) -> tuple[Deadline, ...]:
    """Return every deadline the event opens or closes (new and changed values)."""
    closed = _close(workflow, facts)
    closed_keys = {d.key for d in closed}
    # Deadlines still open after the event, by key; anchors resolve against these
    # and against the ones this event opens, so a clock may count from another
    # clock the same event starts.
    live = {k: d for k, d in facts.case.open_deadlines.items() if k not in closed_keys}
    opened: list[Deadline] = []
    for spec in _by_anchor_order(workflow):
        old = live.get(spec.key)
        if old is not None and _reanchors(spec, facts, old):
            # The day the request was received, learnt after it was sent: the
            # open clock counts again from the receipt (issue #11, item 2).
            for d in _open(workflow, spec, facts, calendars, live):
                closed.append(_superseded(old, facts))
                live[d.key] = d
                opened.append(d)
            continue
        if facts.event not in spec.opened_by:
            continue
        for d in _open(workflow, spec, facts, calendars, live):
            if d.key not in live:
                live[d.key] = d
                opened.append(d)
    return (*closed, *opened)


def _reanchors(spec: DeadlineSpec, facts: EventFacts, old: Deadline) -> bool:
    """True when *facts* re-dates an open clock from its request's receipt.

    An extended clock keeps the date the Parties agreed; a paused one waits.
    """
    return (
        facts.event in spec.reanchored_by
        and spec.anchor_from is not None
        and facts.payload.get(spec.anchor_from) is not None
        and old.status is DeadlineStatus.OPEN
        and old.extensions == 0
    )


def _superseded(old: Deadline, facts: EventFacts) -> Deadline:
    return dataclasses.replace(
        old,
        status=DeadlineStatus.CANCELLED,
        closed_seq=facts.seq,
        closed_at=facts.at,
        next_action_at=None,
    )


def _by_anchor_order(workflow: WorkflowSpec) -> list[DeadlineSpec]:
    """Return deadline definitions, each anchor before those counting from it."""
    ordered: list[DeadlineSpec] = []
    placed: set[str] = set()
    pending = list(workflow.deadlines.values())
    while pending:
        ready = [s for s in pending if s.anchor_deadline in (None, *placed)]
        if not ready:  # a cycle: the loader rejects these, keep the rest as given
            ready = pending[:1]
        for spec in ready:
            ordered.append(spec)
            placed.add(spec.key)
            pending.remove(spec)
    return ordered


def _close(workflow: WorkflowSpec, facts: EventFacts) -> list[Deadline]:
    out = []
    for d in facts.case.deadlines:
        if not d.is_open:
            continue
        spec = workflow.deadlines[spec_key(d.key)]
        if facts.event in spec.met_by and _meets_this(d, spec, facts.payload):
            status = DeadlineStatus.MET
        elif facts.to_state not in spec.active_in:
            status = DeadlineStatus.CANCELLED
        else:
            continue
        out.append(
            dataclasses.replace(
                d,
                status=status,
                closed_seq=facts.seq,
                closed_at=facts.at,
                next_action_at=None,
            )
        )
    return out


def _meets_this(
    d: Deadline, spec: DeadlineSpec, payload: Mapping[str, JSONValue]
) -> bool:
    if spec.agreed_list is None:
        return True
    # A list deadline (a milestone) is met only by the event naming its number.
    return d.key == f"{spec.key}.{payload.get('milestone')}"


def _open(
    workflow: WorkflowSpec,
    spec: DeadlineSpec,
    facts: EventFacts,
    calendars: Mapping[str, BusinessCalendar],
    live: Mapping[str, Deadline],
) -> list[Deadline]:
    cal = calendar_for(workflow, spec, facts.case, calendars)
    rule = rule_of(spec)
    anchor = _anchor(spec, facts, live)
    if anchor is None:
        return []
    base = live.get(spec.key)
    sent = _sent(spec, base, facts.case) if base is not None else anchor
    anchor, rule = _received(spec, facts, cal, anchor, sent, rule)
    if spec.agreed_list is not None:
        items = facts.payload.get(spec.agreed_list)
        first = 1
        if (
            not isinstance(items, list)
            and "label" in facts.payload
            and "due" in facts.payload
        ):
            # One milestone added to an agreed plan (a labelled item, not a
            # plan's own end date): numbered after the current plan's others.
            items = [{"label": facts.payload["label"], "due": facts.payload["due"]}]
            first += _plan_items(facts.case, spec.agreed_list)
        out = []
        for i, item in enumerate(items if isinstance(items, list) else [], start=first):
            if isinstance(item, dict):
                labelled = dataclasses.replace(
                    rule, label=f"{spec.label}: {item['label']}"
                )
                due = agreed_due(
                    labelled, anchor=anchor, agreed=_date(item["due"]), calendar=cal
                )
                out.append(
                    _deadline(
                        spec,
                        facts=facts,
                        key=f"{spec.key}.{i}",
                        label=labelled.label,
                        due=due,
                        anchor=anchor,
                        cal=cal,
                    )
                )
        return out
    if spec.agreed_from is not None:
        if facts.payload.get(spec.agreed_from) is None:
            # The agreed date is not known (never published): no clock runs;
            # the effect flags the case so an officer records it.
            return []
        due = agreed_due(
            rule,
            anchor=anchor,
            agreed=_date(facts.payload[spec.agreed_from]),
            calendar=cal,
        )
    else:
        due = compute_due(rule, anchor=anchor, calendar=cal)
    return [
        _deadline(
            spec,
            facts=facts,
            key=spec.key,
            label=spec.label,
            due=due,
            anchor=anchor,
            cal=cal,
        )
    ]


def _plan_items(case: Case, field: str) -> int:
    """Return how many items (milestones) the case's current plan lists.

    The plan is the attribute the ``remediation_plan_agreed`` and
    ``milestone_added`` effects keep; a new plan starts its numbering again.
    """
    plan = case.attributes.get("remediation_plan")
    items = plan.get(field) if isinstance(plan, dict) else None
    return len(items) if isinstance(items, list) else 0


def _sent(spec: DeadlineSpec, base: Deadline, case: Case) -> datetime:
    """Return when the request behind *base* was sent.

    A clock re-dated from a receipt (``reanchored_by``) counts from that receipt;
    the sending is the opening of the first clock of its line, found by following
    each re-dated clock back to the one it superseded.
    """
    d = base
    while d.anchor_event in spec.reanchored_by:
        prior = next(
            (
                x
                for x in case.deadlines
                if x.key == d.key
                and x.closed_seq == d.opened_seq
                and x.deadline_id != d.deadline_id
            ),
            None,
        )
        if prior is None:
            return d.anchor_at
        d = prior
    return d.opened_at


def _received(  # noqa: PLR0917 - one private call site
    spec: DeadlineSpec,
    facts: EventFacts,
    cal: BusinessCalendar,
    anchor: datetime,
    sent_at: datetime,
    rule: DeadlineRule,
) -> tuple[datetime, DeadlineRule]:
    """Count from the day of receipt when the event gives one (issue #11, item 2).

    The explanation says which date the clock counts from: the receipt, or the
    sending when no receipt date was recorded.
    """
    if spec.anchor_from is None:
        return anchor, rule
    value = facts.payload.get(spec.anchor_from)
    sent = local_date(sent_at, cal.timezone)
    if value is None:
        label = f"{spec.anchor_label} (sent; no receipt date recorded)"
        return anchor, dataclasses.replace(rule, anchor_label=label)
    received = _date(value)
    if received < sent:
        raise InvalidInput(
            f"payload.{spec.anchor_from}",
            f"{received.isoformat()} is before the request was sent "
            f"({sent.isoformat()})",
        )
    label = f"the receipt of {spec.anchor_label} (sent {sent.isoformat()})"
    start = datetime.combine(received, time(12), tzinfo=ZoneInfo(cal.timezone))
    return start, dataclasses.replace(rule, anchor_label=label)


def _anchor(
    spec: DeadlineSpec, facts: EventFacts, live: Mapping[str, Deadline]
) -> datetime | None:
    if spec.anchor_deadline is None:
        return facts.at
    base = live.get(spec.anchor_deadline)
    return _last_instant(base) if base is not None else None


def _last_instant(d: Deadline) -> datetime:
    # The last instant of the due date, so "N days after the due date" counts from it.
    return d.due_at - timedelta(microseconds=1)


def _date(value: JSONValue) -> date:
    if not isinstance(value, str):
        raise InvalidInput("payload", f"expected a date, got {value!r}")
    return date.fromisoformat(value)


def _deadline(
    spec: DeadlineSpec,
    *,
    facts: EventFacts,
    key: str,
    label: str,
    due: ComputedDue,
    anchor: datetime,
    cal: BusinessCalendar,
) -> Deadline:
    opened = Deadline(
        deadline_id=f"{facts.case.case_id}:{key}:{facts.seq}",
        case_id=facts.case.case_id,
        key=key,
        label=label,
        status=DeadlineStatus.OPEN,
        due_date=due.due_date,
        due_at=due.due_at,
        anchor_event=facts.event
        if spec.anchor_deadline is None
        else f"deadline:{spec.anchor_deadline}",
        anchor_at=anchor,
        counting=spec.counting.value,
        days=spec.days,
        calendar_id=cal.calendar_id,
        timezone=cal.timezone,
        actor=spec.actor,
        citation=spec.citation,
        evidence=spec.evidence.value,
        explanation=due.explanation,
        opened_seq=facts.seq,
        opened_at=facts.at,
        # Alerts are owed from when RRM learns of the deadline: a backdated or
        # imported event must not replay years of reminders and repeats.
        alerts_through=(
            facts.recorded_at
            if facts.recorded_at is not None and facts.recorded_at > facts.at
            else None
        ),
    )
    return scheduled(opened, spec, cal)


def _previous(d: Deadline) -> ComputedDue:
    return ComputedDue(due_date=d.due_date, due_at=d.due_at, explanation=d.explanation)


def extend_deadline(
    workflow: WorkflowSpec,
    case: Case,
    deadline: Deadline,
    *,
    new_date: date,
    reason: str,
    calendars: Mapping[str, BusinessCalendar],
) -> tuple[Deadline, ...]:
    """Return the extended deadline and the open deadlines anchored on it, moved."""
    spec = workflow.deadlines[spec_key(deadline.key)]
    cal = calendar_for(workflow, spec, case, calendars)
    due = extended_due(
        rule_of(spec),
        previous=_previous(deadline),
        new_date=new_date,
        reason=reason,
        calendar=cal,
    )
    changed = dataclasses.replace(
        deadline,
        due_date=due.due_date,
        due_at=due.due_at,
        explanation=due.explanation,
        extensions=deadline.extensions + 1,
        # An extension past the lapse revives the deadline.
        lapsed_at=deadline.lapsed_at if due.due_at <= deadline.due_at else None,
    )
    changed = scheduled(changed, spec, cal)
    return (changed, *_dependents(workflow, case, changed, calendars))


def pause_deadline(deadline: Deadline, *, at: datetime) -> Deadline:
    """Return the deadline paused (tolled) from *at*.

    Raises:
        InvalidInput: If the deadline is already paused.
    """
    if deadline.status is DeadlineStatus.PAUSED:
        raise InvalidInput("deadline", f"{deadline.key!r} is already paused")
    return dataclasses.replace(
        deadline, status=DeadlineStatus.PAUSED, paused_at=at, next_action_at=None
    )


def resume_deadline(
    workflow: WorkflowSpec,
    case: Case,
    deadline: Deadline,
    *,
    at: datetime,
    calendars: Mapping[str, BusinessCalendar],
) -> tuple[Deadline, ...]:
    """Return the resumed deadline, later by the days paused, and its dependents.

    Raises:
        InvalidInput: If the deadline is not paused.
    """
    if deadline.status is not DeadlineStatus.PAUSED or deadline.paused_at is None:
        raise InvalidInput("deadline", f"{deadline.key!r} is not paused")
    spec = workflow.deadlines[spec_key(deadline.key)]
    cal = calendar_for(workflow, spec, case, calendars)
    due = tolled_due(
        rule_of(spec),
        previous=_previous(deadline),
        paused_from=local_date(deadline.paused_at, cal.timezone),
        resumed_on=local_date(at, cal.timezone),
        calendar=cal,
    )
    changed = dataclasses.replace(
        deadline,
        status=DeadlineStatus.OPEN,
        paused_at=None,
        due_date=due.due_date,
        due_at=due.due_at,
        explanation=due.explanation,
    )
    changed = scheduled(changed, spec, cal)
    return (changed, *_dependents(workflow, case, changed, calendars))


def _dependents(
    workflow: WorkflowSpec,
    case: Case,
    moved: Deadline,
    calendars: Mapping[str, BusinessCalendar],
) -> Iterable[Deadline]:
    for d in case.deadlines:
        spec = workflow.deadlines[spec_key(d.key)]
        if not d.is_open or spec.anchor_deadline != moved.key or spec.days is None:
            continue
        cal = calendar_for(workflow, spec, case, calendars)
        anchor = _last_instant(moved)
        due = compute_due(rule_of(spec), anchor=anchor, calendar=cal)
        if d.extensions and due.due_date <= d.due_date:
            # An agreed extension of the dependent stands: moving its anchor never
            # brings it earlier than the date the Parties agreed.
            continue
        changed = dataclasses.replace(
            d,
            due_date=due.due_date,
            due_at=due.due_at,
            anchor_at=anchor,
            explanation=due.explanation,
            lapsed_at=None,
        )
        changed = scheduled(changed, spec, cal)
        yield changed
        # Deadlines may chain (C anchored on B anchored on A): follow the chain.
        yield from _dependents(workflow, case, changed, calendars)


def recompute_deadline(
    workflow: WorkflowSpec,
    key: str,
    facts: EventFacts,
    calendars: Mapping[str, BusinessCalendar],
    live: Mapping[str, Deadline],
) -> Deadline | None:
    """Return deadline *key* as *workflow* opens it on the event in *facts*.

    Used when a case moves to another version of its workflow: *facts* is the
    event that opened the old deadline, replayed under the new definition (its
    own id and ``opened_seq`` are those of *facts*). ``None`` when the new
    definition would not open it on that event.
    """
    spec = workflow.deadlines.get(spec_key(key))
    if spec is None:
        return None
    wanted = [d for d in _open(workflow, spec, facts, calendars, live) if d.key == key]
    return wanted[0] if wanted else None
