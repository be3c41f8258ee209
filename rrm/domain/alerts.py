"""Alert ladders: which reminders, due-day and overdue alerts a deadline owes, and when.

Pure functions of a deadline, its ladder and its calendar. Every step has a stable
name that includes the due date it was computed for, so an extended deadline owes a
fresh set of reminders while alerts about the old date are recognised as superseded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import TYPE_CHECKING, final
from zoneinfo import ZoneInfo

from rrm.errors import InvalidInput

if TYPE_CHECKING:
    from rrm.domain.calendars import BusinessCalendar
    from rrm.domain.case import Deadline

__all__ = [
    "TEMPORARY",
    "Alert",
    "AlertKind",
    "AlertLadder",
    "AlertMessage",
    "AlertStatus",
    "AlertStep",
    "AlertView",
    "DamageView",
    "DigestItem",
    "DigestView",
    "next_step_at",
    "owed_steps",
    "step_due_date",
]


# Prefix of ``Alert.last_error`` for failures a retry can fix (the mail server
# unreachable, a 4xx reply): such alerts are requeued once the server is back.
TEMPORARY = "temporary: "


class AlertKind(StrEnum):
    """What an alert says about its deadline."""

    REMINDER = "reminder"
    DUE = "due"
    OVERDUE = "overdue"
    DEAD_LETTER = "dead_letter"
    DIGEST = "digest"
    #: An imported record lacks the deadline's step: no lapse action was taken.
    UNKNOWN_STEP = "unknown_step"
    #: To the administrator: a case's stored rows do not match its history.
    CASE_DAMAGED = "case_damaged"


class AlertStatus(StrEnum):
    """Where an alert stands in the outbox."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    DEAD = "dead"
    SUPERSEDED = "superseded"
    DEFERRED = "deferred"


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class AlertLadder:
    """When a deadline's alerts go out, as declared in the workflow.

    Attributes:
        before: Reminders this many days before the due date (e.g. 7, 3, 1).
        before_business: Count reminder days in business days of the deadline's
            calendar (otherwise calendar days).
        on_due: Send an alert on the due day.
        overdue_every: Repeat an overdue alert every this many calendar days after
            the lapse, until the deadline is met, extended or cancelled; ``None``
            sends one overdue alert only.
        recipients: Roles of the assigned officers who receive the alerts; empty
            means every assigned officer.
        supervisor_on_lapse: Also alert the case's supervisors once it has lapsed.
        hour: Local hour (in the deadline's time zone) at which reminders, due-day
            and repeated overdue alerts go out.
    """

    before: tuple[int, ...] = (7, 3, 1)
    before_business: bool = True
    on_due: bool = True
    overdue_every: int | None = 2
    recipients: tuple[str, ...] = ()
    supervisor_on_lapse: bool = True
    hour: int = 8

    def __post_init__(self) -> None:
        if any(d < 1 for d in self.before) or len(set(self.before)) != len(self.before):
            raise InvalidInput("alerts.before", "must be distinct whole days from 1")
        if self.overdue_every is not None and self.overdue_every < 1:
            raise InvalidInput("alerts.overdue_every", "must be a whole number from 1")
        if not 0 <= self.hour <= 23:  # noqa: PLR2004 - hours of a day
            raise InvalidInput("alerts.hour", "must be an hour from 0 to 23")


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class AlertStep:
    """One alert a deadline owes: its stable name, kind and the instant it is owed."""

    step: str
    kind: AlertKind
    owed_at: datetime
    days_before: int | None = None
    repeat: int = 0


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Alert:
    """One alert to one recipient: a row of the outbox."""

    alert_id: str
    deadline_id: str
    case_id: str
    step: str
    kind: AlertKind
    recipient_id: str
    recipient_email: str
    recipient_role: str
    language: str
    timezone: str
    owed_at: datetime
    created_at: datetime
    late: bool
    status: AlertStatus = AlertStatus.PENDING
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_error: str = ""
    sent_at: datetime | None = None
    claimed_until: datetime | None = None
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None

    @property
    def message_id(self) -> str:
        """The e-mail Message-ID, derived from the alert id so repeats are dropped.

        One ``@`` only: the step in an alert id carries its own
        (``before-3@2025-01-16``), and a msg-id with two is cut short by mail
        software (and was, by Python's own header parser).
        """
        local = self.alert_id.replace(":", ".").replace("@", ".")
        return f"<{local}@rrm.invalid>"


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class AlertView:
    """Everything an alert e-mail may show, already free of personal data.

    Petitioners never appear here (they may be confidential), so no renderer or
    notifier can leak them.
    """

    alert_id: str
    message_id: str
    kind: AlertKind
    step: str
    days_before: int | None
    repeat: int
    late: bool
    recipient_name: str
    recipient_email: str
    recipient_role: str
    language: str
    timezone: str
    case_id: str
    case_ref: str
    workflow_title: str
    annex: str
    state_label: str
    complainant: str
    respondent: str
    facility_name: str
    facility_city: str
    facility_region: str
    facility_country: str
    deadline_id: str
    deadline_key: str
    deadline_label: str
    deadline_actor: str
    due_date: date
    due_at: datetime
    deadline_timezone: str
    explanation: str
    citation: str
    evidence: str
    nominal: bool
    expected_action: str
    link: str
    calendar_sequence: int


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class DigestItem:
    """One open deadline in an officer's daily digest."""

    case_id: str
    case_ref: str
    facility_name: str
    state_label: str
    deadline_key: str
    deadline_label: str
    due_date: date
    due_at: datetime
    deadline_timezone: str
    status: str  # "overdue", "due_today" or "upcoming"
    nominal: bool
    explanation: str


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class DigestView:
    """An officer's daily summary of the open deadlines on their cases."""

    alert_id: str
    message_id: str
    recipient_email: str
    recipient_id: str
    language: str
    timezone: str
    day: date
    horizon_days: int
    items: tuple[DigestItem, ...]


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class DamageView:
    """The administrator's notice that a case's stored rows do not match its history.

    ``problems`` are the verification's findings in words; they may quote stored
    values (an e-mail address written into a row), never a confidential name.

    .. versionadded:: 0.6.0
    """

    alert_id: str
    message_id: str
    recipient_email: str
    case_id: str
    case_ref: str
    found_at: datetime
    problems: tuple[str, ...]


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class AlertMessage:
    """A rendered alert, ready for any notifier (SMTP, a host service, a webhook)."""

    alert_id: str
    message_id: str
    to_address: str
    to_name: str
    subject: str
    text: str
    html: str
    ics: bytes | None
    language: str
    view: AlertView | DigestView | DamageView


def _at_hour(day: date, hour: int, timezone: str) -> datetime:
    return datetime.combine(day, time(hour), ZoneInfo(timezone)).astimezone(UTC)


def _before_day(
    ladder: AlertLadder, due: date, days: int, calendar: BusinessCalendar
) -> date:
    if not ladder.before_business:
        return due - timedelta(days=days)
    # The business day that lies `days` business days before the due date.
    day = due
    for _ in range(days):
        day -= timedelta(days=1)
        while not calendar.is_business_day(day):
            day -= timedelta(days=1)
    return day


@lru_cache(maxsize=4096)
def _ladder_steps(
    ladder: AlertLadder, due: date, tz: str, calendar: BusinessCalendar
) -> tuple[AlertStep, ...]:
    """The reminders and the due-day alert of a ladder for one due date.

    Pure, and the same for every deadline due that day in that zone; counting
    business days back was a tenth of a fire's time, so it is remembered.
    """
    stamp = due.isoformat()
    steps = [
        AlertStep(
            step=f"before-{n}@{stamp}",
            kind=AlertKind.REMINDER,
            owed_at=_at_hour(_before_day(ladder, due, n, calendar), ladder.hour, tz),
            days_before=n,
        )
        for n in sorted(ladder.before, reverse=True)
    ]
    if ladder.on_due:
        owed = _at_hour(due, ladder.hour, tz)
        steps.append(
            AlertStep(
                step=f"due@{stamp}", kind=AlertKind.DUE, owed_at=owed, days_before=0
            )
        )
    return tuple(steps)


def _schedule(
    ladder: AlertLadder, deadline: Deadline, calendar: BusinessCalendar
) -> list[AlertStep]:
    """Every step before and at the lapse (overdue repeats come from _repeat)."""
    stamp = deadline.due_date.isoformat()
    steps = list(_ladder_steps(ladder, deadline.due_date, deadline.timezone, calendar))
    steps.append(
        AlertStep(
            step=f"overdue-1@{stamp}",
            kind=AlertKind.OVERDUE,
            owed_at=deadline.due_at,
            repeat=1,
        )
    )
    return steps


def _repeat(ladder: AlertLadder, deadline: Deadline, n: int) -> AlertStep:
    assert ladder.overdue_every is not None  # noqa: S101 - callers check it
    day = deadline.due_date + timedelta(days=(n - 1) * ladder.overdue_every + 1)
    return AlertStep(
        step=f"overdue-{n}@{deadline.due_date.isoformat()}",
        kind=AlertKind.OVERDUE,
        owed_at=_at_hour(day, ladder.hour, deadline.timezone),
        repeat=n,
    )


def owed_steps(
    ladder: AlertLadder,
    deadline: Deadline,
    calendar: BusinessCalendar,
    *,
    after: datetime | None,
    until: datetime,
) -> list[AlertStep]:
    """Return the steps owed in ``(after, until]``, oldest first.

    Steps owed before the deadline was opened are skipped: a reminder "7 days
    before" means nothing for a deadline opened with 3 days left.
    """
    floor = max(after, deadline.opened_at) if after is not None else deadline.opened_at
    steps = [
        s for s in _schedule(ladder, deadline, calendar) if floor < s.owed_at <= until
    ]
    if ladder.overdue_every is not None:
        n = _first_repeat_after(ladder, deadline, floor)
        while (step := _repeat(ladder, deadline, n)).owed_at <= until:
            if step.owed_at > floor:
                steps.append(step)
            n += 1
    return sorted(steps, key=lambda s: s.owed_at)


def next_step_at(
    ladder: AlertLadder,
    deadline: Deadline,
    calendar: BusinessCalendar,
    *,
    after: datetime,
) -> datetime | None:
    """Return when the next step after *after* is owed, or None if none remains."""
    floor = max(after, deadline.opened_at)
    for s in _schedule(ladder, deadline, calendar):
        if s.owed_at > floor:
            return s.owed_at
    if ladder.overdue_every is None:
        return None
    n = _first_repeat_after(ladder, deadline, floor)
    while (step := _repeat(ladder, deadline, n)).owed_at <= floor:
        n += 1
    return step.owed_at


def _first_repeat_after(
    ladder: AlertLadder, deadline: Deadline, floor: datetime
) -> int:
    """A lower bound on the first overdue repeat owed after *floor* (at least 2).

    Repeat n falls on the due date + (n - 1) * every + 1 days; jumping there keeps
    old, long-overdue deadlines (imported cases) from stepping through every repeat.
    """
    assert ladder.overdue_every is not None  # noqa: S101 - callers check it
    days = (floor.date() - deadline.due_date).days
    return max(2, (days - 2) // ladder.overdue_every)


def step_due_date(step: str) -> date:
    """Return the due date a step name was computed for."""
    return date.fromisoformat(step.rsplit("@", 1)[1])
