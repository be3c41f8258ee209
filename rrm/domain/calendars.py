"""Business-day calendars: which days a Party's offices work, and counting over them.

A calendar knows its weekend, a function giving each year's non-working days, and the
Party's time zone. It is pure: the holiday data comes from ``rrm.workflow.calendars``.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import MAXYEAR, date
from types import MappingProxyType
from typing import TYPE_CHECKING, NamedTuple, final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rrm.errors import InvalidInput

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = ["WEEKDAY_NAMES", "BusinessCalendar"]

WEEKDAY_NAMES = (
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
)


class _Year(NamedTuple):
    """Everything one calendar needs to know about one year, computed once."""

    names: Mapping[date, str]
    closed: frozenset[int]
    # Sorted ordinals of the year's business days: counting becomes a bisection.
    open_days: tuple[int, ...]


@final
@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class BusinessCalendar:
    """The working days of one Party (or of several, for a union).

    Instances compare and hash by identity, because they hold private caches: each
    year's holidays are fetched once, and unions are built once per pair.

    Attributes:
        calendar_id: Stable id, e.g. ``"us-federal"``; a union joins ids with ``+``.
        name: Human name, e.g. ``"Mexico (federal)"``.
        timezone: IANA zone of the acting Party, used for end-of-day instants.
        holidays_for_year: Returns every non-working day of one year with its name.
        weekend: ``date.weekday()`` values that are never working days.

    Raises:
        InvalidInput: If the time zone is unknown or the weekend covers every day.

    .. versionadded:: 0.1.0
    """

    calendar_id: str
    name: str
    timezone: str
    holidays_for_year: Callable[[int], Mapping[date, str]]
    weekend: frozenset[int] = frozenset({5, 6})
    _years: dict[int, _Year] = field(default_factory=dict, init=False, repr=False)
    _unions: dict[BusinessCalendar, BusinessCalendar] = field(
        default_factory=dict, init=False, repr=False
    )
    _parts: tuple[BusinessCalendar, ...] = field(default=(), init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.weekend <= frozenset(range(7)):
            raise InvalidInput("weekend", "holds only weekday numbers 0 to 6")
        if len(self.weekend) == len(WEEKDAY_NAMES):
            raise InvalidInput("weekend", "leaves no working day in the week")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidInput(
                "timezone", f"unknown time zone {self.timezone!r}"
            ) from None

    @property
    def parts(self) -> tuple[BusinessCalendar, ...]:
        """The single calendars this one is made of (itself unless a union)."""
        return self._parts or (self,)

    def holidays_in(self, year: int) -> Mapping[date, str]:
        """Return the non-working days of *year* (not weekends) with their names.

        Args:
            year: The calendar year.

        Returns:
            A read-only mapping, cached after the first call for that year.
        """
        return self._year(year).names

    def is_business_day(self, day: date) -> bool:
        """Return whether *day* is a working day (neither weekend nor holiday).

        Args:
            day: The day to check.
        """
        if day.weekday() in self.weekend:
            return False
        return day.toordinal() not in self._year(day.year).closed

    def non_business_reason(self, day: date) -> str | None:
        """Return why *day* is not a working day, or ``None`` if it is one.

        Args:
            day: The day to check.

        Returns:
            The weekday name (``"Saturday"``) for a weekend day, the holiday's name
            for a holiday, otherwise ``None``.
        """
        weekday = day.weekday()
        if weekday in self.weekend:
            return WEEKDAY_NAMES[weekday]
        return self._year(day.year).names.get(day)

    def add_business_days(self, start: date, n: int) -> date:
        """Return the *n*-th business day after *start*.

        Day 1 is the first business day after *start*, whatever *start* itself is.

        Args:
            start: The day counting starts from (not counted).
            n: How many business days to count; ``0`` returns *start* unchanged.

        Raises:
            InvalidInput: If *n* is negative or the result lies after year 9999.
        """
        if n < 0:
            raise InvalidInput("n", f"must be 0 or more, got {n}")
        if n == 0:
            return start
        origin, year = start.toordinal(), start.year
        while True:
            days = self._year(year).open_days
            # First business day strictly after the origin within this year; for
            # later years the origin precedes every day, so this is 0.
            first = bisect_right(days, origin)
            if first + n <= len(days):
                return date.fromordinal(days[first + n - 1])
            n -= len(days) - first
            year = _next_year(year)

    def roll_forward(self, day: date) -> date:
        """Return *day* if it is a business day, otherwise the next business day.

        Args:
            day: The day to roll.
        """
        if self.is_business_day(day):
            return day
        return self.add_business_days(day, 1)

    def business_days_between(self, start: date, end: date) -> int:
        """Count the business days after *start* up to and including *end*.

        Args:
            start: Not counted.
            end: Counted if it is a business day.

        Returns:
            The count, or ``0`` when *end* is not after *start*.
        """
        if end <= start:
            return 0
        low, high = start.toordinal(), end.toordinal()
        total = 0
        for year in range(start.year, end.year + 1):
            days = self._year(year).open_days
            total += bisect_right(days, high) - bisect_right(days, low)
        return total

    def union(self, other: BusinessCalendar) -> BusinessCalendar:
        """Return a calendar where a day is off if either calendar says so.

        The union keeps this calendar's time zone. Holiday names are qualified
        with the calendar they come from ("Independence Day in Mexico (federal)").
        The same pair always returns the same object, so its caches are reused.

        Args:
            other: The second calendar.

        Returns:
            A calendar with id ``"<self id>+<other id>"``.
        """
        known = self._unions.get(other)
        if known is None:
            known = _union_of(self, other)
            self._unions[other] = known
        return known

    def _year(self, year: int) -> _Year:
        known = self._years.get(year)
        if known is None:
            known = _build_year(year, self.holidays_for_year(year), self.weekend)
            self._years[year] = known
        return known


def _next_year(year: int) -> int:
    if year >= MAXYEAR:
        raise InvalidInput("n", "the result would fall after the year 9999")
    return year + 1


def _build_year(year: int, names: Mapping[date, str], weekend: frozenset[int]) -> _Year:
    own = {day: name for day, name in names.items() if day.year == year}
    closed = frozenset(day.toordinal() for day in own)
    first, last = date(year, 1, 1).toordinal(), date(year, 12, 31).toordinal()
    # Ordinal 1 (0001-01-01) is a Monday, so (ordinal - 1) % 7 is date.weekday().
    open_days = tuple(
        o
        for o in range(first, last + 1)
        if (o - 1) % 7 not in weekend and o not in closed
    )
    return _Year(MappingProxyType(own), closed, open_days)


def _union_of(first: BusinessCalendar, second: BusinessCalendar) -> BusinessCalendar:
    parts = first.parts + tuple(p for p in second.parts if p not in first.parts)

    def holidays_for_year(year: int) -> Mapping[date, str]:
        return _merged_names(parts, year)

    union = BusinessCalendar(
        calendar_id="+".join(p.calendar_id for p in parts),
        name=" + ".join(p.name for p in parts),
        timezone=first.timezone,
        holidays_for_year=holidays_for_year,
        weekend=frozenset().union(*(p.weekend for p in parts)),
    )
    # A frozen dataclass: the parts are set once, here, right after construction.
    object.__setattr__(union, "_parts", parts)
    return union


def _merged_names(parts: tuple[BusinessCalendar, ...], year: int) -> dict[date, str]:
    # Group the calendars by holiday name per day, so a shared holiday reads
    # "New Year's Day in A and B" instead of repeating the name.
    by_day: dict[date, dict[str, list[str]]] = {}
    for part in parts:
        for day, name in part.holidays_in(year).items():
            by_day.setdefault(day, {}).setdefault(name, []).append(part.name)
    return {
        day: "; ".join(
            f"{name} in {' and '.join(owners)}" for name, owners in group.items()
        )
        for day, group in by_day.items()
    }
