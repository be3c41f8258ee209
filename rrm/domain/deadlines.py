"""Legal deadline arithmetic: due dates, end-of-day instants and their explanations.

Every computed due date carries a plain-language explanation that ends with the
citation and how well that citation is established, so a recalled number never
reads as settled law.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import TYPE_CHECKING, final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rrm.errors import InvalidInput

if TYPE_CHECKING:
    from rrm.domain.calendars import BusinessCalendar

__all__ = [
    "ComputedDue",
    "Counting",
    "DeadlineRule",
    "Evidence",
    "agreed_due",
    "compute_due",
    "end_of_day",
    "extended_due",
    "local_date",
    "tolled_due",
]

_ONE_DAY = timedelta(days=1)


class Counting(StrEnum):
    """Whether a deadline counts every day or only business days."""

    CALENDAR = "calendar"
    BUSINESS = "business"


class Evidence(StrEnum):
    """How well the source of a rule is established."""

    VERIFIED = "V"
    SECONDARY = "S"
    RECALLED = "R"

    @property
    def label(self) -> str:
        """The words shown after a citation, e.g. ``"secondary source"``."""
        return _EVIDENCE_LABELS[self]


_EVIDENCE_LABELS = {
    Evidence.VERIFIED: "verified",
    Evidence.SECONDARY: "secondary source",
    Evidence.RECALLED: "nominal: recalled, not verified",
}


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class DeadlineRule:
    """How one deadline is counted, as declared in a workflow definition.

    Attributes:
        key: The deadline's key in the workflow.
        label: What is due, e.g. ``"Respondent Party completes its review"``.
        days: How many days; ``None`` when the Parties agree the date instead.
        counting: Calendar days or business days.
        roll_forward: Whether a due date on a non-business day moves to the next
            business day.
        anchor_label: What the days run from, e.g. ``"the request for review"``.
        citation: The legal source, e.g. ``"Annex 31-A, Art. 31-A.4"``.
        evidence: How well that source is established.

    .. versionadded:: 0.1.0
    """

    key: str
    label: str
    days: int | None
    counting: Counting
    roll_forward: bool
    anchor_label: str
    citation: str
    evidence: Evidence


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class ComputedDue:
    """A due date, the instant it lapses, and why.

    Attributes:
        due_date: The last day, in the calendar's time zone.
        due_at: The end of that day as an aware UTC instant; the deadline has
            lapsed once ``now >= due_at``.
        explanation: How the date was reached, in plain language.

    .. versionadded:: 0.1.0
    """

    due_date: date
    due_at: datetime
    explanation: str


def compute_due(
    rule: DeadlineRule, *, anchor: datetime, calendar: BusinessCalendar
) -> ComputedDue:
    """Return when a deadline of a fixed number of days falls due.

    Day 1 is the day after the anchor's local date in the calendar's time zone.

    Args:
        rule: The deadline as declared in the workflow definition.
        anchor: When the anchoring event happened (aware).
        calendar: Holidays and time zone of the Party whose deadline this is.

    Raises:
        InvalidInput: If *anchor* is naive, or the rule has no or negative days.

    .. versionadded:: 0.1.0
    """
    start = _local_date(anchor, calendar.timezone, "anchor")
    days = rule.days
    if days is None:
        raise InvalidInput("days", f"{rule.key!r} has an agreed date, not a count")
    if days < 0:
        raise InvalidInput("days", f"must be 0 or more, got {days}")
    if rule.counting is Counting.BUSINESS:
        raw = calendar.add_business_days(start, days)
        unit = f"{_units(days, 'business')} ({calendar.name})"
    else:
        raw = _shift(start, days, "days")
        unit = _units(days, "calendar")
    due, shown = _settle(rule, raw, calendar)
    text = f"{unit} after {rule.anchor_label} of {start.isoformat()}: {shown}"
    return _due(due, calendar, f"{text}{_source(rule)}")


def agreed_due(
    rule: DeadlineRule, *, anchor: datetime, agreed: date, calendar: BusinessCalendar
) -> ComputedDue:
    """Return a deadline whose date the Parties agreed.

    The agreed date is kept as it is, even on a non-business day: it is what the
    Parties agreed, so it is not rolled forward.

    Args:
        rule: The deadline as declared in the workflow definition.
        anchor: When the agreement was recorded (aware).
        agreed: The agreed last day.
        calendar: Time zone of the Party whose deadline this is.

    Raises:
        InvalidInput: If *anchor* is naive or *agreed* is before its local date.

    .. versionadded:: 0.1.0
    """
    start = _local_date(anchor, calendar.timezone, "anchor")
    if agreed < start:
        raise InvalidInput(
            "agreed", f"{agreed.isoformat()} is before the agreement of {start}"
        )
    text = f"date agreed by the Parties on {start.isoformat()}: {agreed.isoformat()}"
    return _due(agreed, calendar, f"{text}{_source(rule)}")


def extended_due(
    rule: DeadlineRule,
    *,
    previous: ComputedDue,
    new_date: date,
    reason: str,
    calendar: BusinessCalendar,
) -> ComputedDue:
    """Return a deadline moved to a later, explicitly given date.

    Args:
        rule: The deadline as declared in the workflow definition.
        previous: The due date being extended.
        new_date: The new last day (taken as given, never rolled forward).
        reason: Why it was extended, quoted in the explanation.
        calendar: Time zone of the Party whose deadline this is.

    Raises:
        InvalidInput: If *new_date* is before the previous due date (an extension
            never shortens a deadline) or *reason* is blank.

    .. versionadded:: 0.1.0
    """
    if new_date < previous.due_date:
        raise InvalidInput(
            "new_date",
            f"{new_date.isoformat()} is before the current due date "
            f"{previous.due_date.isoformat()}; "
            f"an extension never shortens {rule.key!r}",
        )
    if not reason.strip():
        raise InvalidInput("reason", "say why the deadline is extended")
    text = f"{previous.explanation} — extended to {new_date.isoformat()}: {reason}"
    return _due(new_date, calendar, text)


def tolled_due(
    rule: DeadlineRule,
    *,
    previous: ComputedDue,
    paused_from: date,
    resumed_on: date,
    calendar: BusinessCalendar,
) -> ComputedDue:
    """Return a deadline moved later by the days its clock was paused.

    The paused days are ``paused_from`` up to but excluding ``resumed_on``, counted
    in the rule's unit (calendar or business days).

    Args:
        rule: The deadline as declared in the workflow definition.
        previous: The due date before the pause.
        paused_from: The first paused day.
        resumed_on: The day the clock runs again.
        calendar: Holidays and time zone of the Party whose deadline this is.

    Raises:
        InvalidInput: If *resumed_on* is before *paused_from*.

    .. versionadded:: 0.1.0
    """
    if resumed_on < paused_from:
        raise InvalidInput(
            "resumed_on",
            f"{resumed_on.isoformat()} is before the pause of {paused_from}",
        )
    if rule.counting is Counting.BUSINESS:
        paused = calendar.business_days_between(
            paused_from - _ONE_DAY, resumed_on - _ONE_DAY
        )
        raw = calendar.add_business_days(previous.due_date, paused)
    else:
        paused = (resumed_on - paused_from).days
        raw = _shift(previous.due_date, paused, "resumed_on")
    due, shown = _settle(rule, raw, calendar)
    text = (
        f"{previous.explanation} — paused {paused_from.isoformat()} to "
        f"{resumed_on.isoformat()} ({_units(paused, rule.counting.value)}): now {shown}"
    )
    return _due(due, calendar, text)


def end_of_day(day: date, timezone: str) -> datetime:
    """Return the end of *day* in *timezone*: the start of the next day, in UTC.

    Args:
        day: The local day.
        timezone: An IANA time zone name, e.g. ``"America/Mexico_City"``.

    Raises:
        InvalidInput: If the time zone is unknown or *day* is the last date there is.

    .. versionadded:: 0.1.0
    """
    return _end_of_day(day, timezone)


# Due dates repeat across cases, and the zone conversion is the costliest step of a
# deadline computation, so the few thousand recent (day, zone) pairs are kept.
@lru_cache(maxsize=8192)
def _end_of_day(day: date, timezone: str) -> datetime:
    # Midnight of a day where DST starts at midnight does not exist; zoneinfo's
    # fold=0 then reads it with the earlier offset, which is the day's first instant.
    next_day = _shift(day, 1, "day")
    return datetime.combine(next_day, time(), tzinfo=_zone(timezone)).astimezone(UTC)


def local_date(instant: datetime, timezone: str) -> date:
    """Return the date *instant* falls on in *timezone*.

    Args:
        instant: An aware instant.
        timezone: An IANA time zone name.

    Raises:
        InvalidInput: If *instant* is naive or the time zone is unknown.

    .. versionadded:: 0.1.0
    """
    return _local_date(instant, timezone, "instant")


def _local_date(instant: datetime, timezone: str, field: str) -> date:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise InvalidInput(field, "must be an aware datetime (with a time zone)")
    return instant.astimezone(_zone(timezone)).date()


@lru_cache(maxsize=64)
def _zone(timezone: str) -> ZoneInfo:
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput("timezone", f"unknown time zone {timezone!r}") from None


def _shift(day: date, days: int, field: str) -> date:
    try:
        return day + timedelta(days=days)
    except OverflowError:
        raise InvalidInput(field, "the date would fall after the year 9999") from None


def _settle(
    rule: DeadlineRule, raw: date, calendar: BusinessCalendar
) -> tuple[date, str]:
    """Apply roll-forward; return the due date and how to show it."""
    if not rule.roll_forward:
        return raw, raw.isoformat()
    reason = calendar.non_business_reason(raw)
    if reason is None:
        return raw, raw.isoformat()
    due = calendar.roll_forward(raw)
    if raw.weekday() in calendar.weekend:
        reason = f"a {reason}"
    moved = f"moved to the next business day {due.isoformat()}"
    return due, f"{raw.isoformat()}, {reason}, {moved}"


def _units(count: int, kind: str) -> str:
    return f"{count} {kind} day" if count == 1 else f"{count} {kind} days"


def _source(rule: DeadlineRule) -> str:
    return f" ({rule.citation}; {rule.evidence.label})"


def _due(day: date, calendar: BusinessCalendar, explanation: str) -> ComputedDue:
    due_at = _end_of_day(day, calendar.timezone)
    return ComputedDue(due_date=day, due_at=due_at, explanation=explanation)
