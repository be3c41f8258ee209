"""Deadline arithmetic: due dates, end-of-day instants, extensions, pauses, wording."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta, timezone
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from rrm.domain.deadlines import (
    ComputedDue,
    Counting,
    DeadlineRule,
    Evidence,
    agreed_due,
    compute_due,
    end_of_day,
    extended_due,
    local_date,
    tolled_due,
)
from rrm.errors import InvalidInput
from rrm.workflow.calendars import load_calendars

if TYPE_CHECKING:
    from rrm.domain.calendars import BusinessCalendar

CALENDARS = Path(__file__).resolve().parents[2] / "workflows" / "calendars"


@cache
def bundled() -> dict[str, BusinessCalendar]:
    return load_calendars(CALENDARS)


def us() -> BusinessCalendar:
    return bundled()["us-federal"]


def mx() -> BusinessCalendar:
    return bundled()["mx-federal"]


def mx_us() -> BusinessCalendar:
    return mx().union(us())


REVIEW = DeadlineRule(
    key="review_due",
    label="Respondent Party completes its review",
    days=45,
    counting=Counting.CALENDAR,
    roll_forward=False,
    anchor_label="the request for review",
    citation="Annex 31-A, Art. 31-A.4",
    evidence=Evidence.SECONDARY,
)
PANEL = DeadlineRule(
    key="panel_confirmed",
    label="Secretariat confirms the panel",
    days=3,
    counting=Counting.BUSINESS,
    roll_forward=False,
    anchor_label="the panel request",
    citation="Arts. 31-A.3 and 31-A.5",
    evidence=Evidence.RECALLED,
)
REMEDY = DeadlineRule(
    key="remedy",
    label="Parties agree on a remediation date",
    days=None,
    counting=Counting.CALENDAR,
    roll_forward=False,
    anchor_label="the agreement",
    citation="19 U.S.C. 4692(b)(2)",
    evidence=Evidence.VERIFIED,
)


def at(day: date, hour: int = 15) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def rolling(rule: DeadlineRule) -> DeadlineRule:
    return dataclasses.replace(rule, roll_forward=True)


class TestEvidence:
    def test_labels(self):
        """Each evidence level has its own words; a recalled one reads as nominal."""
        assert [e.label for e in Evidence] == [
            "verified",
            "secondary source",
            "nominal: recalled, not verified",
        ]


class TestComputeDue:
    def test_calendar_days_explanation(self):
        """45 calendar days after 22 May 2023 is 6 July 2023, explained in full."""
        due = compute_due(REVIEW, anchor=at(date(2023, 5, 22)), calendar=us())
        assert due.due_date == date(2023, 7, 6)
        assert due.explanation == (
            "45 calendar days after the request for review of 2023-05-22: 2023-07-06 "
            "(Annex 31-A, Art. 31-A.4; secondary source)"
        )

    def test_business_days_name_the_calendar(self):
        """Business days name the calendar and a recalled rule reads as nominal."""
        due = compute_due(PANEL, anchor=at(date(2023, 8, 22)), calendar=mx_us())
        assert due.explanation == (
            "3 business days (Mexico (federal) + United States (federal)) after the "
            "panel request of 2023-08-22: 2023-08-25 (Arts. 31-A.3 and 31-A.5; "
            "nominal: recalled, not verified)"
        )

    def test_business_days_skip_holidays_of_the_union(self):
        """3 business days after 12 September 2024 skip Mexico's 16 September."""
        due = compute_due(PANEL, anchor=at(date(2024, 9, 12)), calendar=mx_us())
        assert due.due_date == date(2024, 9, 18)

    def test_due_at_is_the_end_of_the_due_date_in_the_calendar_zone(self):
        """The due instant is local midnight after the due date, in UTC."""
        due = compute_due(REVIEW, anchor=at(date(2023, 5, 22)), calendar=mx())
        assert due.due_at == datetime(2023, 7, 7, 6, 0, tzinfo=UTC)

    def test_roll_forward_from_a_saturday(self):
        """A due date on a Saturday moves to Monday and the explanation says so."""
        due = compute_due(rolling(REVIEW), anchor=at(date(2023, 5, 24)), calendar=us())
        assert due.due_date == date(2023, 7, 10)
        assert due.explanation == (
            "45 calendar days after the request for review of 2023-05-24: "
            "2023-07-08, a Saturday, moved to the next business day 2023-07-10 "
            "(Annex 31-A, Art. 31-A.4; secondary source)"
        )

    def test_roll_forward_from_a_holiday_names_it(self):
        """A due date on a holiday names it and moves to the next business day."""
        rule = dataclasses.replace(rolling(REVIEW), days=30)
        due = compute_due(rule, anchor=at(date(2024, 8, 17)), calendar=mx())
        assert due.due_date == date(2024, 9, 17)
        assert due.explanation == (
            "30 calendar days after the request for review of 2024-08-17: "
            "2024-09-16, Independence Day, moved to the next business day 2024-09-17 "
            "(Annex 31-A, Art. 31-A.4; secondary source)"
        )

    def test_roll_forward_in_a_union_names_the_calendar(self):
        """In a union the holiday that moved the date says whose holiday it is."""
        rule = dataclasses.replace(rolling(REVIEW), days=30)
        due = compute_due(rule, anchor=at(date(2024, 8, 17)), calendar=mx_us())
        assert ", Independence Day in Mexico (federal), moved to" in due.explanation

    def test_without_roll_forward_a_weekend_due_date_stays(self):
        """Without roll-forward a due date on a Saturday stays on the Saturday."""
        due = compute_due(REVIEW, anchor=at(date(2023, 5, 24)), calendar=us())
        assert due.due_date == date(2023, 7, 8)

    def test_counts_from_the_local_date_of_the_anchor(self):
        """An anchor at 03:00 UTC on 18 January is 17 January in Mexico City."""
        rule = dataclasses.replace(REVIEW, days=10)
        due = compute_due(
            rule, anchor=datetime(2024, 1, 18, 3, tzinfo=UTC), calendar=mx()
        )
        assert due.due_date == date(2024, 1, 27)
        assert "of 2024-01-17:" in due.explanation

    def test_accepts_an_anchor_in_any_zone(self):
        """An anchor given with a non-UTC offset counts from the same local date."""
        anchor = datetime(2024, 1, 17, 21, tzinfo=timezone(timedelta(hours=-6)))
        due = compute_due(REVIEW, anchor=anchor, calendar=mx())
        assert due.due_date == date(2024, 1, 17) + timedelta(days=45)

    def test_one_day_is_singular(self):
        """A one-day rule says "1 business day"."""
        rule = dataclasses.replace(PANEL, days=1)
        due = compute_due(rule, anchor=at(date(2024, 7, 3)), calendar=us())
        assert due.due_date == date(2024, 7, 5)
        assert due.explanation.startswith("1 business day (United States (federal))")

    def test_naive_anchor_is_rejected(self):
        """A naive anchor raises InvalidInput naming anchor."""
        with pytest.raises(InvalidInput) as info:
            compute_due(REVIEW, anchor=datetime(2024, 1, 1, 12), calendar=us())
        assert info.value.field == "anchor"

    def test_negative_days_are_rejected(self):
        """A rule with negative days raises InvalidInput naming days."""
        rule = dataclasses.replace(REVIEW, days=-1)
        with pytest.raises(InvalidInput) as info:
            compute_due(rule, anchor=at(date(2024, 1, 1)), calendar=us())
        assert info.value.field == "days"

    def test_agreed_rule_needs_agreed_due(self):
        """A rule without days raises InvalidInput: its date comes from an agreement."""
        with pytest.raises(InvalidInput) as info:
            compute_due(REMEDY, anchor=at(date(2024, 1, 1)), calendar=us())
        assert info.value.field == "days"


class TestEndOfDay:
    def test_mexico_city_is_six_hours_behind_utc(self):
        """A deadline due 4 March 2024 in Mexico City ends at 06:00 UTC on 5 March."""
        assert end_of_day(date(2024, 3, 4), "America/Mexico_City") == datetime(
            2024, 3, 5, 6, 0, tzinfo=UTC
        )

    def test_new_york_before_daylight_saving_time(self):
        """Saturday 9 March 2024 in New York (EST) ends at 05:00 UTC."""
        assert end_of_day(date(2024, 3, 9), "America/New_York") == datetime(
            2024, 3, 10, 5, 0, tzinfo=UTC
        )

    def test_new_york_on_the_day_daylight_saving_time_starts(self):
        """10 March 2024 in New York is 23 hours long and ends at 04:00 UTC (EDT)."""
        assert end_of_day(date(2024, 3, 10), "America/New_York") == datetime(
            2024, 3, 11, 4, 0, tzinfo=UTC
        )

    def test_new_york_on_the_day_daylight_saving_time_ends(self):
        """3 November 2024 in New York is 25 hours long and ends at 05:00 UTC (EST)."""
        assert end_of_day(date(2024, 11, 3), "America/New_York") == datetime(
            2024, 11, 4, 5, 0, tzinfo=UTC
        )

    def test_zone_with_midnight_transition(self):
        """Where DST starts at midnight a day ends at the first instant of the next."""
        # Havana moved clocks from 00:00 to 01:00 on 10 March 2024 (CST to CDT).
        assert end_of_day(date(2024, 3, 9), "America/Havana") == datetime(
            2024, 3, 10, 5, 0, tzinfo=UTC
        )

    def test_result_is_utc(self):
        """The end of a day is an aware UTC instant."""
        assert end_of_day(date(2024, 7, 1), "America/Toronto").tzinfo is UTC

    def test_unknown_zone_is_rejected(self):
        """An unknown time zone raises InvalidInput naming timezone."""
        with pytest.raises(InvalidInput) as info:
            end_of_day(date(2024, 7, 1), "Mars/Olympus_Mons")
        assert info.value.field == "timezone"

    def test_last_date_is_rejected(self):
        """The last representable date has no following day and raises InvalidInput."""
        with pytest.raises(InvalidInput):
            end_of_day(date.max, "UTC")


class TestLocalDate:
    def test_converts_to_the_zone(self):
        """03:00 UTC on 18 January 2024 is still 17 January in Mexico City."""
        instant = datetime(2024, 1, 18, 3, tzinfo=UTC)
        assert local_date(instant, "America/Mexico_City") == date(2024, 1, 17)

    def test_naive_instant_is_rejected(self):
        """A naive instant raises InvalidInput."""
        with pytest.raises(InvalidInput):
            local_date(datetime(2024, 1, 18, 3), "America/Mexico_City")


class TestAgreedDue:
    def test_explanation(self):
        """An agreed date is explained with the day of the agreement and kept."""
        due = agreed_due(
            REMEDY,
            anchor=at(date(2023, 3, 30)),
            agreed=date(2023, 9, 30),
            calendar=us(),
        )
        assert due.due_date == date(2023, 9, 30)
        assert due.explanation == (
            "date agreed by the Parties on 2023-03-30: 2023-09-30 "
            "(19 U.S.C. 4692(b)(2); verified)"
        )

    def test_agreed_date_is_not_rolled_forward(self):
        """An agreed Saturday stays a Saturday even when the rule rolls forward."""
        due = agreed_due(
            rolling(REMEDY),
            anchor=at(date(2023, 3, 30)),
            agreed=date(2023, 9, 30),
            calendar=us(),
        )
        assert due.due_date == date(2023, 9, 30)

    def test_due_at_is_the_end_of_the_agreed_day(self):
        """The agreed deadline ends at local midnight after the agreed day."""
        due = agreed_due(
            REMEDY, anchor=at(date(2024, 3, 1)), agreed=date(2024, 3, 4), calendar=mx()
        )
        assert due.due_at == datetime(2024, 3, 5, 6, 0, tzinfo=UTC)

    def test_agreed_date_before_the_agreement_is_rejected(self):
        """An agreed date before the day of the agreement raises InvalidInput."""
        with pytest.raises(InvalidInput) as info:
            agreed_due(
                REMEDY,
                anchor=at(date(2023, 3, 30)),
                agreed=date(2023, 3, 29),
                calendar=us(),
            )
        assert info.value.field == "agreed"

    def test_naive_anchor_is_rejected(self):
        """A naive anchor raises InvalidInput naming anchor."""
        with pytest.raises(InvalidInput) as info:
            agreed_due(
                REMEDY,
                anchor=datetime(2023, 3, 30),
                agreed=date(2023, 9, 30),
                calendar=us(),
            )
        assert info.value.field == "anchor"


def review_due() -> ComputedDue:
    return compute_due(REVIEW, anchor=at(date(2023, 5, 22)), calendar=us())


class TestExtendedDue:
    def test_appends_the_extension_and_reason(self):
        """An extension keeps the earlier explanation and adds the date and reason."""
        previous = review_due()
        due = extended_due(
            REVIEW,
            previous=previous,
            new_date=date(2023, 8, 15),
            reason="agreed by the Parties",
            calendar=us(),
        )
        assert due.due_date == date(2023, 8, 15)
        assert due.due_at == datetime(2023, 8, 16, 4, 0, tzinfo=UTC)
        assert due.explanation == (
            f"{previous.explanation} — extended to 2023-08-15: agreed by the Parties"
        )

    def test_same_date_is_allowed(self):
        """Extending to the same date is not a shortening."""
        previous = review_due()
        due = extended_due(
            REVIEW,
            previous=previous,
            new_date=previous.due_date,
            reason="confirmed",
            calendar=us(),
        )
        assert due.due_date == previous.due_date

    def test_shortening_is_rejected(self):
        """An extension to an earlier date raises InvalidInput naming new_date."""
        with pytest.raises(InvalidInput) as info:
            extended_due(
                REVIEW,
                previous=review_due(),
                new_date=date(2023, 7, 5),
                reason="typo",
                calendar=us(),
            )
        assert info.value.field == "new_date"

    def test_blank_reason_is_rejected(self):
        """An extension without a reason raises InvalidInput naming reason."""
        with pytest.raises(InvalidInput) as info:
            extended_due(
                REVIEW,
                previous=review_due(),
                new_date=date(2023, 8, 15),
                reason="  ",
                calendar=us(),
            )
        assert info.value.field == "reason"


class TestTolledDue:
    def test_calendar_days_move_by_the_paused_days(self):
        """A 4-day pause moves a calendar-day deadline 4 days later, explained."""
        previous = review_due()
        due = tolled_due(
            REVIEW,
            previous=previous,
            paused_from=date(2023, 6, 1),
            resumed_on=date(2023, 6, 5),
            calendar=us(),
        )
        assert due.due_date == date(2023, 7, 10)
        assert due.explanation == (
            f"{previous.explanation} — paused 2023-06-01 to 2023-06-05 "
            "(4 calendar days): now 2023-07-10"
        )

    def test_business_days_count_only_paused_business_days(self):
        """A pause over Friday to Monday moves a business-day deadline by 2 days."""
        previous = compute_due(PANEL, anchor=at(date(2024, 6, 28)), calendar=us())
        assert previous.due_date == date(2024, 7, 3)
        due = tolled_due(
            PANEL,
            previous=previous,
            paused_from=date(2024, 6, 14),
            resumed_on=date(2024, 6, 18),
            calendar=us(),
        )
        assert due.due_date == date(2024, 7, 8)
        assert "(2 business days): now 2024-07-08" in due.explanation

    def test_roll_forward_is_applied_again(self):
        """A pause that moves the date onto a Saturday rolls it to Monday."""
        rule = rolling(REVIEW)
        previous = compute_due(rule, anchor=at(date(2023, 5, 22)), calendar=us())
        due = tolled_due(
            rule,
            previous=previous,
            paused_from=date(2023, 6, 1),
            resumed_on=date(2023, 6, 3),
            calendar=us(),
        )
        assert due.due_date == date(2023, 7, 10)
        assert due.explanation.endswith(
            "now 2023-07-08, a Saturday, moved to the next business day 2023-07-10"
        )

    def test_empty_pause_changes_nothing(self):
        """Resuming on the day of the pause leaves the due date where it was."""
        previous = review_due()
        due = tolled_due(
            REVIEW,
            previous=previous,
            paused_from=date(2023, 6, 1),
            resumed_on=date(2023, 6, 1),
            calendar=us(),
        )
        assert due.due_date == previous.due_date

    def test_resuming_before_pausing_is_rejected(self):
        """A resume date before the pause date raises InvalidInput naming resumed_on."""
        with pytest.raises(InvalidInput) as info:
            tolled_due(
                REVIEW,
                previous=review_due(),
                paused_from=date(2023, 6, 5),
                resumed_on=date(2023, 6, 1),
                calendar=us(),
            )
        assert info.value.field == "resumed_on"
