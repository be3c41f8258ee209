"""An officer's work at a glance: what is due, what is overdue, what lapsed.

The query behind the console's *My work* page (and anything else that wants the
same answer): the open deadlines of the principal's cases due within N days,
each with the days left in its own Party's calendar; the ones already overdue;
the deadlines that lapsed recently, and whether the lapse moved the case; and,
for administrators, the alerts and webhook messages nobody could deliver.

An officer sees the cases they are assigned to; a supervisor assigned to a case
sees all of its deadlines (the team's); an administrator sees every case.

.. versionadded:: 0.4.0
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Literal

from rrm.domain.deadlines import local_date
from rrm.errors import InvalidInput
from rrm.service.webhooks import list_deliveries
from rrm.workflow.clocks import spec_key

if TYPE_CHECKING:
    from datetime import datetime

    from rrm.domain.access import Principal
    from rrm.domain.alerts import Alert
    from rrm.domain.case import Case, Deadline
    from rrm.service.engine import CaseEngine
    from rrm.service.ports import WebhookDelivery

__all__ = ["LapseItem", "WorkItem", "WorkQueue", "work_queue"]

_MAX_WITHIN = 366
_LAPSED_DAYS = 14
_LIMIT = 200


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkItem:
    """One open deadline on the officer's list.

    Attributes:
        days_left: Calendar days from today (in the deadline's time zone) to its
            due date; negative once overdue.
        business_days_left: Business days left in the deadline's own calendar
            (its Party's), 0 when due today or overdue.
        team: True when the officer supervises the case rather than acting on
            it (a supervisor's view of the team's deadlines).
    """

    case: Case
    deadline: Deadline
    days_left: int
    business_days_left: int
    overdue: bool
    team: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class LapseItem:
    """A deadline that lapsed recently, and whether its lapse moved the case."""

    case: Case
    deadline: Deadline
    moved: bool
    #: The case's state now, as the workflow names it for officers.
    state_label: str


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkQueue:
    """What :func:`work_queue` found for one principal."""

    within: int
    unit: Literal["calendar", "business"]
    scope: Literal["mine", "all"]
    due: list[WorkItem]
    overdue: list[WorkItem]
    lapses: list[LapseItem]
    dead_alerts: list[Alert]
    dead_webhooks: list[WebhookDelivery]


def work_queue(
    engine: CaseEngine,
    principal: Principal,
    *,
    within: int = 5,
    unit: Literal["calendar", "business"] = "business",
    lapsed_days: int = _LAPSED_DAYS,
) -> WorkQueue:
    """Return the principal's work: due, overdue, recent lapses, undeliverables.

    Args:
        engine: The case engine.
        principal: The signed-in officer.
        within: Deadlines due within this many days (overdue ones are listed
            apart).
        unit: Count *within* in ``business`` days of each deadline's calendar
            or in ``calendar`` days.
        lapsed_days: How far back lapses are listed, in calendar days.

    Raises:
        InvalidInput: *within* or *lapsed_days* out of range.
    """
    if type(within) is not int or not 0 <= within <= _MAX_WITHIN:
        raise InvalidInput(
            "within", f"must be a whole number of days, 0 to {_MAX_WITHIN}"
        )
    if type(lapsed_days) is not int or not 0 <= lapsed_days <= _MAX_WITHIN:
        raise InvalidInput(
            "lapsed_days", f"must be a whole number of days, 0 to {_MAX_WITHIN}"
        )
    everything = "admin" in principal.roles
    officer_id = None if everything else principal.principal_id
    now = engine.clock.now()
    deadlines = engine.due(within, unit=unit, officer_id=officer_id)[:_LIMIT]
    with engine.uow_factory(read_only=True) as uow:
        lapsed = uow.cases.lapsed_deadlines(
            since=now - timedelta(days=lapsed_days), officer_id=officer_id, limit=_LIMIT
        )
        ids = sorted({d.case_id for d in deadlines} | {d.case_id for d in lapsed})
        cases = uow.cases.get_many(ids)
    due: list[WorkItem] = []
    overdue: list[WorkItem] = []
    for d in deadlines:
        case = cases.get(d.case_id)
        if case is None:
            continue
        item = _item(engine, case, d, principal, now)
        (overdue if item.overdue else due).append(item)
    lapses = [_lapse(engine, cases[d.case_id], d) for d in lapsed if d.case_id in cases]
    dead_alerts: list[Alert] = []
    dead_webhooks: list[WebhookDelivery] = []
    if everything:
        dead_alerts = engine.alerts(status=("dead",), limit=_LIMIT)
        dead_webhooks = list_deliveries(
            engine.uow_factory, status=["dead"], limit=_LIMIT
        )
    return WorkQueue(
        within=within,
        unit=unit,
        scope="all" if everything else "mine",
        due=due,
        overdue=overdue,
        lapses=lapses,
        dead_alerts=dead_alerts,
        dead_webhooks=dead_webhooks,
    )


def _item(
    engine: CaseEngine, case: Case, d: Deadline, principal: Principal, now: datetime
) -> WorkItem:
    today = local_date(now, d.timezone)
    calendar = engine.workflows.calendar(d.calendar_id)
    own_roles = {
        o.role for o in case.officers if o.officer_id == principal.principal_id
    }
    return WorkItem(
        case=case,
        deadline=d,
        days_left=(d.due_date - today).days,
        business_days_left=calendar.business_days_between(today, d.due_date),
        overdue=now >= d.due_at,
        team=bool(own_roles) and own_roles <= {"supervisor"},
    )


def _lapse(engine: CaseEngine, case: Case, d: Deadline) -> LapseItem:
    """The lapse, and whether the workflow moves a case on it."""
    spec = engine.workflows.get(case.workflow_id, case.workflow_version)
    rule = spec.deadlines.get(spec_key(d.key))
    return LapseItem(
        case=case,
        deadline=d,
        moved=rule is not None and rule.on_lapse == "advance",
        state_label=spec.states[case.state].label,
    )
