"""Business-day calendars: weekends, real holidays, counting, rolling and unions."""

from __future__ import annotations

from datetime import date, timedelta
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rrm.domain.calendars import BusinessCalendar
from rrm.errors import InvalidInput
from rrm.workflow.calendars import load_calendars

if TYPE_CHECKING:
    from collections.abc import Mapping

CALENDARS = Path(__file__).resolve().parents[2] / "workflows" / "calendars"


@cache
def bundled() -> dict[str, BusinessCalendar]:
    return load_calendars(CALENDARS)


def us() -> BusinessCalendar:
    return bundled()["us-federal"]


def mx() -> BusinessCalendar:
    return bundled()["mx-federal"]


def ca() -> BusinessCalendar:
    return bundled()["ca-federal"]


def mx_us() -> BusinessCalendar:
    return mx().union(us())


def fixed(holidays: Mapping[date, str], **kwargs: object) -> BusinessCalendar:
    """A calendar with a fixed list of holidays, whatever the year."""

    def holidays_for_year(year: int) -> Mapping[date, str]:
        return {d: n for d, n in holidays.items() if d.year == year}

    return BusinessCalendar(
        calendar_id=str(kwargs.get("calendar_id", "test")),
        name=str(kwargs.get("name", "Test")),
        timezone=str(kwargs.get("timezone", "UTC")),
        holidays_for_year=holidays_for_year,
    )


ALL_CALENDARS = st.sampled_from(["us", "mx", "ca", "mx+us", "ca+mx"])
DAYS = st.dates(min_value=date(2000, 1, 1), max_value=date(2090, 12, 31))


def pick(name: str) -> BusinessCalendar:
    if name == "mx+us":
        return mx_us()
    if name == "ca+mx":
        return ca().union(mx())
    return bundled()[f"{name}-federal"]


class TestIsBusinessDay:
    def test_ordinary_weekday_is_a_business_day(self):
        """An ordinary Wednesday is a business day in every bundled calendar."""
        assert [c.is_business_day(date(2024, 7, 10)) for c in (us(), mx(), ca())] == [
            True,
            True,
            True,
        ]

    def test_weekend_is_not_a_business_day(self):
        """Saturday and Sunday are never business days."""
        assert us().is_business_day(date(2024, 7, 6)) is False
        assert us().is_business_day(date(2024, 7, 7)) is False

    def test_us_independence_day_is_off_in_the_us_only(self):
        """4 July 2024 is off in the United States but a working day in Mexico."""
        assert us().is_business_day(date(2024, 7, 4)) is False
        assert mx().is_business_day(date(2024, 7, 4)) is True

    def test_mexican_independence_day_is_off_in_mexico_only(self):
        """16 September 2024 is off in Mexico but a working day in the United States."""
        assert mx().is_business_day(date(2024, 9, 16)) is False
        assert us().is_business_day(date(2024, 9, 16)) is True

    def test_holy_thursday_is_off_in_mexico(self):
        """Holy Thursday 2024 (28 March) is a federal day off in Mexico."""
        assert mx().is_business_day(date(2024, 3, 28)) is False

    def test_canada_day_is_off_in_canada(self):
        """Canada Day 2024 (1 July) is off in Canada but not in the United States."""
        assert ca().is_business_day(date(2024, 7, 1)) is False
        assert us().is_business_day(date(2024, 7, 1)) is True

    def test_canadian_public_service_extras_are_off(self):
        """Easter Monday and the Civic Holiday 2024 are off in the Canadian calendar."""
        assert ca().is_business_day(date(2024, 4, 1)) is False
        assert ca().is_business_day(date(2024, 8, 5)) is False

    def test_us_executive_order_closure_is_off(self):
        """The executive-order closure of 24 December 2024 is off in the US calendar."""
        assert us().is_business_day(date(2024, 12, 24)) is False

    def test_union_is_off_when_either_calendar_is(self):
        """The Mexico + US union is off on both countries' independence days."""
        union = mx_us()
        assert union.is_business_day(date(2024, 7, 4)) is False
        assert union.is_business_day(date(2024, 9, 16)) is False
        assert union.is_business_day(date(2024, 7, 10)) is True


class TestNonBusinessReason:
    def test_weekend_day_names_the_weekday(self):
        """A Saturday is explained as "Saturday"."""
        assert us().non_business_reason(date(2024, 7, 6)) == "Saturday"

    def test_holiday_gives_its_name(self):
        """A holiday is explained by its name."""
        assert mx().non_business_reason(date(2024, 9, 16)) == "Independence Day"

    def test_business_day_has_no_reason(self):
        """A business day has no reason to be off."""
        assert mx().non_business_reason(date(2024, 9, 17)) is None

    def test_union_names_the_calendar_of_the_holiday(self):
        """A union says which calendar a holiday comes from."""
        reason = mx_us().non_business_reason(date(2024, 9, 16))
        assert reason == "Independence Day in Mexico (federal)"

    def test_union_merges_a_shared_holiday(self):
        """A holiday both calendars share is named once, with both calendars."""
        reason = mx_us().non_business_reason(date(2024, 1, 1))
        assert (
            reason == "New Year's Day in Mexico (federal) and United States (federal)"
        )


class TestAddBusinessDays:
    def test_zero_days_returns_the_start_unchanged(self):
        """Adding 0 business days returns the start, even on a weekend."""
        assert us().add_business_days(date(2024, 7, 6), 0) == date(2024, 7, 6)

    def test_day_one_is_the_first_business_day_after_the_start(self):
        """One business day after a Friday is the following Monday."""
        assert us().add_business_days(date(2024, 7, 12), 1) == date(2024, 7, 15)

    def test_skips_us_independence_day(self):
        """One US business day after 3 July 2024 is 5 July (4 July is off)."""
        assert us().add_business_days(date(2024, 7, 3), 1) == date(2024, 7, 5)

    def test_skips_mexican_independence_day(self):
        """One Mexican business day after Friday 13 September 2024 is Tuesday 17."""
        assert mx().add_business_days(date(2024, 9, 13), 1) == date(2024, 9, 17)

    def test_skips_mexican_holy_week(self):
        """A Mexican business day after 27 March 2024 skips Holy Thursday and Friday."""
        assert mx().add_business_days(date(2024, 3, 27), 1) == date(2024, 4, 1)

    def test_skips_canada_day(self):
        """One Canadian business day after Friday 28 June 2024 is Tuesday 2 July."""
        assert ca().add_business_days(date(2024, 6, 28), 1) == date(2024, 7, 2)

    def test_union_skips_holidays_of_both_calendars(self):
        """The Mexico + US union skips 4 July and 16 September 2024."""
        union = mx_us()
        assert union.add_business_days(date(2024, 7, 3), 1) == date(2024, 7, 5)
        assert union.add_business_days(date(2024, 9, 13), 1) == date(2024, 9, 17)

    def test_counts_across_the_year_end(self):
        """Two US business days after 30 December 2024 skip New Year's Day 2025."""
        assert us().add_business_days(date(2024, 12, 30), 2) == date(2025, 1, 2)

    def test_counts_over_many_years(self):
        """Counting 1000 business days spans several years in one call."""
        result = us().add_business_days(date(2024, 1, 1), 1000)
        assert us().business_days_between(date(2024, 1, 1), result) == 1000

    def test_negative_count_is_rejected(self):
        """A negative count raises InvalidInput naming n."""
        with pytest.raises(InvalidInput) as info:
            us().add_business_days(date(2024, 7, 3), -1)
        assert info.value.field == "n"

    def test_count_past_the_last_year_is_rejected(self):
        """A count that would pass the year 9999 raises InvalidInput."""
        with pytest.raises(InvalidInput):
            fixed({}).add_business_days(date(9999, 12, 30), 5)

    @given(name=ALL_CALENDARS, start=DAYS, n=st.integers(min_value=1, max_value=300))
    def test_never_lands_on_a_non_business_day(self, name, start, n):
        """Adding one or more business days always lands on a business day."""
        calendar = pick(name)
        result = calendar.add_business_days(start, n)
        assert calendar.is_business_day(result)
        assert calendar.non_business_reason(result) is None

    @given(name=ALL_CALENDARS, start=DAYS, n=st.integers(min_value=0, max_value=300))
    def test_is_strictly_increasing_in_n(self, name, start, n):
        """Adding one more business day always gives a later date."""
        calendar = pick(name)
        assert calendar.add_business_days(start, n + 1) > calendar.add_business_days(
            start, n
        )

    @given(name=ALL_CALENDARS, start=DAYS, n=st.integers(min_value=0, max_value=300))
    def test_business_days_between_inverts_it(self, name, start, n):
        """Counting the business days up to the result gives back n."""
        calendar = pick(name)
        end = calendar.add_business_days(start, n)
        assert calendar.business_days_between(start, end) == n

    @given(name=ALL_CALENDARS, start=DAYS, n=st.integers(min_value=1, max_value=60))
    def test_agrees_with_a_day_by_day_count(self, name, start, n):
        """The result equals a naive day-by-day walk over the calendar."""
        calendar = pick(name)
        day, left = start, n
        while left:
            day += timedelta(days=1)
            left -= calendar.is_business_day(day)
        assert calendar.add_business_days(start, n) == day


class TestRollForward:
    def test_business_day_stays(self):
        """A business day rolls to itself."""
        assert us().roll_forward(date(2024, 7, 5)) == date(2024, 7, 5)

    def test_saturday_moves_to_monday(self):
        """A Saturday rolls to the following Monday."""
        assert us().roll_forward(date(2024, 7, 6)) == date(2024, 7, 8)

    def test_holiday_before_a_weekend_moves_past_both(self):
        """Good Friday 2024 in Mexico rolls past the weekend to Monday 1 April."""
        assert mx().roll_forward(date(2024, 3, 29)) == date(2024, 4, 1)


class TestBusinessDaysBetween:
    def test_end_not_after_start_is_zero(self):
        """No business days lie between a day and itself or an earlier day."""
        assert us().business_days_between(date(2024, 7, 5), date(2024, 7, 5)) == 0
        assert us().business_days_between(date(2024, 7, 5), date(2024, 7, 1)) == 0

    def test_excludes_start_and_includes_end(self):
        """The count runs after the start up to and including the end."""
        assert us().business_days_between(date(2024, 7, 8), date(2024, 7, 9)) == 1

    def test_skips_holidays_and_weekends(self):
        """From 1 to 8 July 2024 the US has 4 business days (4 July is off)."""
        assert us().business_days_between(date(2024, 7, 1), date(2024, 7, 8)) == 4

    def test_counts_across_the_year_end(self):
        """From 30 December 2024 to 3 January 2025 the US has 3 business days."""
        assert us().business_days_between(date(2024, 12, 30), date(2025, 1, 3)) == 3


class TestUnion:
    def test_joins_ids_and_names_and_keeps_the_first_time_zone(self):
        """A union is named after both calendars and keeps the first one's zone."""
        union = mx_us()
        assert (union.calendar_id, union.name, union.timezone) == (
            "mx-federal+us-federal",
            "Mexico (federal) + United States (federal)",
            "America/Mexico_City",
        )

    def test_same_pair_returns_the_same_calendar(self):
        """Building the same union twice returns one object, so caches are reused."""
        assert mx().union(us()) is mx().union(us())

    def test_lists_its_parts_once(self):
        """A union of a union with one of its parts does not repeat that part."""
        union = mx_us().union(mx())
        assert [p.calendar_id for p in union.parts] == ["mx-federal", "us-federal"]
        assert union.calendar_id == "mx-federal+us-federal"

    def test_plain_calendar_is_its_own_part(self):
        """A single calendar's parts are itself."""
        assert us().parts == (us(),)

    def test_weekend_is_the_union_of_weekends(self):
        """A day that is a weekend in either calendar is a weekend in the union."""
        friday_off = BusinessCalendar(
            calendar_id="fri",
            name="Friday off",
            timezone="UTC",
            holidays_for_year=lambda year: {},
            weekend=frozenset({4, 5}),
        )
        union = fixed({}).union(friday_off)
        assert union.weekend == frozenset({4, 5, 6})
        assert union.non_business_reason(date(2024, 7, 5)) == "Friday"


class TestConstruction:
    def test_unknown_time_zone_is_rejected(self):
        """A calendar with an unknown IANA zone raises InvalidInput naming timezone."""
        with pytest.raises(InvalidInput) as info:
            fixed({}, timezone="Mars/Olympus_Mons")
        assert info.value.field == "timezone"

    def test_weekend_of_every_day_is_rejected(self):
        """A weekend covering all seven days raises InvalidInput."""
        with pytest.raises(InvalidInput) as info:
            BusinessCalendar(
                calendar_id="x",
                name="x",
                timezone="UTC",
                holidays_for_year=lambda year: {},
                weekend=frozenset(range(7)),
            )
        assert info.value.field == "weekend"

    def test_weekend_outside_zero_to_six_is_rejected(self):
        """A weekday number outside 0..6 raises InvalidInput."""
        with pytest.raises(InvalidInput):
            BusinessCalendar(
                calendar_id="x",
                name="x",
                timezone="UTC",
                holidays_for_year=lambda year: {},
                weekend=frozenset({7}),
            )


class TestCaching:
    def test_fetches_each_year_once(self):
        """The holidays of a year are fetched once however often they are used."""
        calls: list[int] = []

        def holidays_for_year(year: int) -> Mapping[date, str]:
            calls.append(year)
            return {date(year, 7, 4): "Fourth"}

        calendar = BusinessCalendar(
            calendar_id="c",
            name="C",
            timezone="UTC",
            holidays_for_year=holidays_for_year,
        )
        for _ in range(3):
            calendar.add_business_days(date(2024, 7, 1), 5)
            calendar.is_business_day(date(2024, 7, 4))
        assert calls == [2024]

    def test_ignores_days_of_other_years(self):
        """A holiday function that returns a day of another year does not leak it."""
        calendar = BusinessCalendar(
            calendar_id="c",
            name="C",
            timezone="UTC",
            holidays_for_year=lambda year: {date(year + 1, 1, 2): "Stray"},
        )
        assert calendar.is_business_day(date(2025, 1, 2)) is True
        assert calendar.holidays_in(2024) == {}
