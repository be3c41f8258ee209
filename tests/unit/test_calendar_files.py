"""Calendar files: bundled ones load with the expected days; broken ones are named."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from rrm.errors import InvalidWorkflow
from rrm.workflow.calendars import load_calendar_file, load_calendars

CALENDARS = Path(__file__).resolve().parents[2] / "workflows" / "calendars"

HEAD = """\
[calendar]
id = "test"
name = "Test"
country = "US"
categories = ["public"]
timezone = "America/New_York"
evidence = "R"
source = "tests"
"""


def write(tmp_path: Path, text: str, name: str = "test.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def rejected(path: Path) -> InvalidWorkflow:
    with pytest.raises(InvalidWorkflow) as info:
        load_calendar_file(path)
    return info.value


class TestBundledFiles:
    def test_all_three_load(self):
        """The bundled folder holds the US, Mexican and Canadian calendars."""
        calendars = load_calendars(CALENDARS)
        assert {k: c.timezone for k, c in calendars.items()} == {
            "ca-federal": "America/Toronto",
            "mx-federal": "America/Mexico_City",
            "us-federal": "America/New_York",
        }

    def test_us_2024(self):
        """The US calendar's 2024 days off are the federal holidays plus 24 December."""
        days = load_calendar_file(CALENDARS / "us-federal.toml").holidays_in(2024)
        assert sorted(days) == [
            date(2024, 1, 1),
            date(2024, 1, 15),
            date(2024, 2, 19),
            date(2024, 5, 27),
            date(2024, 6, 19),
            date(2024, 7, 4),
            date(2024, 9, 2),
            date(2024, 10, 14),
            date(2024, 11, 11),
            date(2024, 11, 28),
            date(2024, 12, 24),
            date(2024, 12, 25),
        ]

    def test_mx_2024(self):
        """Mexico's 2024 days off are LFT Art. 74 days plus federal closures."""
        days = load_calendar_file(CALENDARS / "mx-federal.toml").holidays_in(2024)
        assert sorted(days) == [
            date(2024, 1, 1),
            date(2024, 2, 5),
            date(2024, 3, 18),
            date(2024, 3, 28),
            date(2024, 3, 29),
            date(2024, 5, 1),
            date(2024, 9, 16),
            date(2024, 10, 1),
            date(2024, 11, 2),
            date(2024, 11, 18),
            date(2024, 12, 12),
            date(2024, 12, 25),
        ]

    def test_ca_2024(self):
        """Canada's 2024 days off are the twelve federal public-service holidays."""
        days = load_calendar_file(CALENDARS / "ca-federal.toml").holidays_in(2024)
        assert sorted(days) == [
            date(2024, 1, 1),
            date(2024, 3, 29),
            date(2024, 4, 1),
            date(2024, 5, 20),
            date(2024, 7, 1),
            date(2024, 8, 5),
            date(2024, 9, 2),
            date(2024, 9, 30),
            date(2024, 10, 14),
            date(2024, 11, 11),
            date(2024, 12, 25),
            date(2024, 12, 26),
        ]

    def test_holiday_names_are_english(self):
        """Holiday names are in English so explanations read in one language."""
        mx = load_calendar_file(CALENDARS / "mx-federal.toml")
        assert mx.non_business_reason(date(2024, 9, 16)) == "Independence Day"


class TestFormat:
    def test_minimal_file_loads(self, tmp_path):
        """A file with only the [calendar] table loads with the package's holidays."""
        calendar = load_calendar_file(write(tmp_path, HEAD))
        assert calendar.calendar_id == "test"
        assert calendar.is_business_day(date(2024, 7, 4)) is False

    def test_recurring_last_weekday_of_month(self, tmp_path):
        """A rule with nth = -1 picks the last such weekday of the month."""
        text = (
            HEAD
            + '[[recurring]]\nname = "Last Friday"\nmonth = 5\n'
            + 'weekday = "Friday"\nnth = -1\n'
        )
        calendar = load_calendar_file(write(tmp_path, text))
        assert calendar.non_business_reason(date(2024, 5, 31)) == "Last Friday"
        assert calendar.non_business_reason(date(2023, 5, 26)) == "Last Friday"

    def test_recurring_nth_weekday_of_december(self, tmp_path):
        """A rule in December works across the year boundary of the computation."""
        text = (
            HEAD
            + '[[recurring]]\nname = "Last Monday"\nmonth = 12\n'
            + 'weekday = "Monday"\nnth = -1\n'
        )
        calendar = load_calendar_file(write(tmp_path, text))
        assert calendar.non_business_reason(date(2024, 12, 30)) == "Last Monday"

    def test_recurring_29_february_only_in_leap_years(self, tmp_path):
        """A 29 February rule applies in leap years and is skipped in others."""
        text = HEAD + '[[recurring]]\nname = "Leap"\nmonth = 2\nday = 29\n'
        calendar = load_calendar_file(write(tmp_path, text))
        assert calendar.non_business_reason(date(2024, 2, 29)) == "Leap"
        assert calendar.holidays_in(2023).get(date(2023, 2, 28)) is None

    def test_extra_day_on_a_holiday_keeps_both_names(self, tmp_path):
        """A recurring day that falls on a package holiday keeps both names."""
        text = HEAD + '[[recurring]]\nname = "Also"\nmonth = 7\nday = 4\n'
        calendar = load_calendar_file(write(tmp_path, text))
        assert (
            calendar.non_business_reason(date(2024, 7, 4)) == "Independence Day; Also"
        )

    def test_closure_applies_only_on_its_date(self, tmp_path):
        """A closure given as a string date is off on that day only."""
        text = (
            HEAD
            + '[[closures]]\ndate = "2024-08-07"\nreason = "Closed"\nsource = "t"\n'
        )
        calendar = load_calendar_file(write(tmp_path, text))
        assert calendar.non_business_reason(date(2024, 8, 7)) == "Closed"
        assert calendar.is_business_day(date(2025, 8, 7)) is True


class TestBrokenFiles:
    def test_not_toml(self, tmp_path):
        """A file that is not TOML is rejected with the file named."""
        path = write(tmp_path, "[calendar\n")
        error = rejected(path)
        assert (error.file, error.key) == (str(path), "(file)")

    def test_missing_calendar_table(self, tmp_path):
        """A file without [calendar] is rejected naming that key."""
        assert rejected(write(tmp_path, "x = 1\n")).key == "x"
        assert rejected(write(tmp_path, "")).key == "calendar"

    def test_unknown_key_names_the_key_path(self, tmp_path):
        """An unknown key inside a recurring entry is named with its index."""
        text = (
            HEAD
            + '[[recurring]]\nname = "A"\nmonth = 1\nday = 2\n'
            + '[[recurring]]\nname = "B"\nmonth = 1\nday = 3\ncolour = "red"\n'
        )
        path = write(tmp_path, text)
        error = rejected(path)
        assert error.key == "recurring[1].colour"
        assert str(path) in str(error)
        assert "recurring[1].colour" in str(error)

    def test_bad_month(self, tmp_path):
        """A month outside 1..12 is named as recurring[2].month."""
        good = '[[recurring]]\nname = "A"\nmonth = 1\nday = 2\n'
        bad = '[[recurring]]\nname = "C"\nmonth = 13\nday = 1\n'
        error = rejected(write(tmp_path, HEAD + good + good + bad))
        assert error.key == "recurring[2].month"

    def test_day_the_month_does_not_have(self, tmp_path):
        """A fixed day that the month never has is rejected."""
        text = HEAD + '[[recurring]]\nname = "A"\nmonth = 4\nday = 31\n'
        assert rejected(write(tmp_path, text)).key == "recurring[0].day"

    def test_two_forms_at_once(self, tmp_path):
        """A recurring entry with both easter_offset and day is rejected."""
        text = HEAD + '[[recurring]]\nname = "A"\neaster_offset = 1\nday = 2\n'
        assert rejected(write(tmp_path, text)).key == "recurring[0]"

    def test_easter_offset_with_month(self, tmp_path):
        """An Easter rule may not also give a month."""
        text = HEAD + '[[recurring]]\nname = "A"\neaster_offset = 1\nmonth = 2\n'
        assert rejected(write(tmp_path, text)).key == "recurring[0].month"

    def test_nth_outside_the_allowed_set(self, tmp_path):
        """A fifth weekday is rejected, since not every month has one."""
        text = (
            HEAD + '[[recurring]]\nname = "A"\nmonth = 8\nweekday = "Monday"\nnth = 5\n'
        )
        assert rejected(write(tmp_path, text)).key == "recurring[0].nth"

    def test_unknown_weekday(self, tmp_path):
        """A weekday that is not an English weekday name is rejected."""
        text = (
            HEAD + '[[recurring]]\nname = "A"\nmonth = 8\nweekday = "Lunes"\nnth = 1\n'
        )
        assert rejected(write(tmp_path, text)).key == "recurring[0].weekday"

    def test_unknown_country(self, tmp_path):
        """A country the holidays package lacks is named as calendar.country."""
        text = HEAD.replace('country = "US"', 'country = "XX"')
        assert rejected(write(tmp_path, text)).key == "calendar.country"

    def test_unknown_category(self, tmp_path):
        """A category the country lacks is named with its index."""
        text = HEAD.replace('["public"]', '["public", "bogus"]')
        assert rejected(write(tmp_path, text)).key == "calendar.categories[1]"

    def test_empty_categories(self, tmp_path):
        """An empty category list is rejected."""
        text = HEAD.replace('["public"]', "[]")
        assert rejected(write(tmp_path, text)).key == "calendar.categories"

    def test_fixed_day_with_nth(self, tmp_path):
        """A fixed-date rule may not also give nth."""
        text = HEAD + '[[recurring]]\nname = "A"\nmonth = 4\nday = 1\nnth = 1\n'
        assert rejected(write(tmp_path, text)).key == "recurring[0].nth"

    def test_unknown_language(self, tmp_path):
        """A language the country lacks is rejected rather than silently ignored."""
        text = HEAD + 'language = "zz"\n'
        assert rejected(write(tmp_path, text)).key == "calendar.language"

    def test_unknown_time_zone(self, tmp_path):
        """A time zone zoneinfo does not know is named as calendar.timezone."""
        text = HEAD.replace("America/New_York", "America/Atlantis")
        assert rejected(write(tmp_path, text)).key == "calendar.timezone"

    def test_bad_evidence(self, tmp_path):
        """An evidence level other than V, S or R is rejected."""
        text = HEAD.replace('evidence = "R"', 'evidence = "maybe"')
        assert rejected(write(tmp_path, text)).key == "calendar.evidence"

    def test_id_with_plus(self, tmp_path):
        """An id with "+" is rejected, because "+" joins the ids of a union."""
        text = HEAD.replace('id = "test"', 'id = "a+b"')
        assert rejected(write(tmp_path, text)).key == "calendar.id"

    def test_malformed_closure_date(self, tmp_path):
        """A closure date that does not exist is named as closures[0].date."""
        text = HEAD + '[[closures]]\ndate = "2025-02-30"\nreason = "x"\nsource = "y"\n'
        assert rejected(write(tmp_path, text)).key == "closures[0].date"

    def test_closure_datetime_is_rejected(self, tmp_path):
        """A closure given as a date and time is rejected: closures are whole days."""
        text = (
            HEAD
            + '[[closures]]\ndate = 2025-02-03T10:00:00\nreason = "x"\nsource = "y"\n'
        )
        assert rejected(write(tmp_path, text)).key == "closures[0].date"

    def test_closure_without_source(self, tmp_path):
        """A closure must say where it comes from."""
        text = HEAD + '[[closures]]\ndate = 2025-02-03\nreason = "x"\n'
        assert rejected(write(tmp_path, text)).key == "closures[0].source"

    def test_closures_must_be_tables(self, tmp_path):
        """A closures key that is not an array of tables is rejected."""
        text = 'closures = ["2025-02-03"]\n' + HEAD
        assert rejected(write(tmp_path, text)).key == "closures"

    def test_duplicate_ids_in_a_folder(self, tmp_path):
        """Two files with the same id in one folder are rejected naming the second."""
        write(tmp_path, HEAD, "a.toml")
        second = write(tmp_path, HEAD, "b.toml")
        with pytest.raises(InvalidWorkflow) as info:
            load_calendars(tmp_path)
        assert (info.value.file, info.value.key) == (str(second), "calendar.id")

    def test_missing_folder(self, tmp_path):
        """A folder that does not exist is rejected."""
        with pytest.raises(InvalidWorkflow):
            load_calendars(tmp_path / "nowhere")
