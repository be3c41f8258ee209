"""Alert ladder arithmetic: the jump to old overdue repeats matches stepping one by one."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from rrm._resources import workflows_dir
from rrm.domain.alerts import AlertLadder, _repeat, next_step_at, owed_steps
from rrm.domain.case import Deadline, DeadlineStatus
from rrm.domain.deadlines import end_of_day
from rrm.workflow.calendars import load_calendars

CALENDAR = load_calendars(workflows_dir() / "calendars")["mx-federal"]


def deadline(due: date) -> Deadline:
    opened = datetime(2020, 1, 6, 15, tzinfo=UTC)
    return Deadline(
        deadline_id="c:k:1", case_id="c", key="k", label="K",
        status=DeadlineStatus.OPEN, due_date=due,
        due_at=end_of_day(due, "America/Mexico_City"), anchor_event="e",
        anchor_at=opened, counting="calendar", days=10, calendar_id="mx-federal",
        timezone="America/Mexico_City", actor="respondent", citation="c", evidence="S",
        explanation="x", opened_seq=1, opened_at=opened,
    )  # fmt: skip


def naive_next(ladder: AlertLadder, d: Deadline, floor: datetime) -> datetime:
    n = 2
    while (step := _repeat(ladder, d, n)).owed_at <= floor:
        n += 1
    return step.owed_at


class TestOverdueRepeats:
    @settings(max_examples=200, deadline=None)
    @given(
        due=st.dates(min_value=date(2020, 2, 1), max_value=date(2026, 12, 31)),
        later=st.integers(min_value=1, max_value=3000),
        hours=st.integers(min_value=0, max_value=23),
        every=st.integers(min_value=1, max_value=14),
    )
    def test_next_repeat_equals_stepping(self, due, later, hours, every):
        """The next overdue repeat after any instant is the one stepping would find."""
        ladder = AlertLadder(overdue_every=every)
        d = deadline(due)
        floor = d.due_at + timedelta(days=later, hours=hours)
        assert next_step_at(ladder, d, CALENDAR, after=floor) == naive_next(
            ladder, d, floor
        )

    def test_owed_steps_of_an_old_deadline_start_after_the_floor(self):
        """An old deadline owes only the repeats after its alert cursor (every other
        day from its lapse: 2026-01-05 14:00 UTC is just before the cursor)."""
        ladder = AlertLadder(overdue_every=2)
        d = dataclasses.replace(deadline(date(2023, 7, 31)))
        after = datetime(2026, 1, 5, 15, tzinfo=UTC)
        steps = owed_steps(
            ladder, d, CALENDAR, after=after, until=after + timedelta(days=6)
        )
        assert [s.owed_at.date() for s in steps] == [
            date(2026, 1, 7),
            date(2026, 1, 9),
            date(2026, 1, 11),
        ]
