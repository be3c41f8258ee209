"""Build the iCalendar file attached to deadline alerts.

One all-day VEVENT per deadline, published (``METHOD:PUBLISH``) with a UID derived
from the deadline id and a SEQUENCE from the alert, so a calendar that imported an
earlier alert updates the event instead of adding a second one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Final
from urllib.parse import quote

import icalendar

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

__all__ = ["PRODID", "FeedEvent", "deadline_ics", "deadline_uid", "feed_ics"]

PRODID: Final = "-//usmca-rrm//RRM deadline alerts//EN"
# The alarm rings at 09:00 the day before the (all-day) due date.
_ALARM_BEFORE: Final = timedelta(hours=-15)


def deadline_uid(deadline_id: str) -> str:
    """Return the stable iCalendar UID of a deadline."""
    return f"rrm-deadline-{quote(deadline_id, safe='-._~')}@rrm.invalid"


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedEvent:
    """One deadline as an all-day event of a calendar feed."""

    deadline_id: str
    sequence: int
    day: date
    summary: str
    description: str
    url: str


def _event(item: FeedEvent, stamp: datetime) -> icalendar.Event:
    event = icalendar.Event()
    event.add("uid", deadline_uid(item.deadline_id))
    event.add("sequence", max(0, item.sequence))
    event.add("dtstamp", stamp)
    event.add("dtstart", item.day)
    event.add("dtend", item.day + timedelta(days=1))
    event.add("summary", item.summary)
    event.add("description", item.description)
    event.add("transp", "TRANSPARENT")
    event.add("categories", ["RRM"])
    if item.url:
        event.add("url", item.url)
    return event


def _calendar() -> icalendar.Calendar:
    calendar = icalendar.Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    return calendar


def feed_ics(
    events: Sequence[FeedEvent], *, name: str, stamp: datetime, refresh_hours: int = 1
) -> bytes:
    """Return a subscribable calendar of deadlines (the whole current truth).

    A deadline that was met or cancelled is simply no longer in the feed, and a
    moved one carries a higher SEQUENCE, so subscribed calendars follow.

    Args:
        events: The deadlines, one all-day event each.
        name: The calendar's display name.
        stamp: The aware instant the feed is made (``DTSTAMP``).
        refresh_hours: How often clients should fetch the feed again.
    """
    calendar = _calendar()
    calendar.add("x-wr-calname", name)
    calendar.add("refresh-interval", timedelta(hours=refresh_hours))
    calendar.add("x-published-ttl", f"PT{refresh_hours}H")
    for item in events:
        calendar.add_component(_event(item, stamp))
    ical: bytes = calendar.to_ical()
    return ical


def deadline_ics(
    *,
    deadline_id: str,
    sequence: int,
    day: date,
    summary: str,
    description: str,
    alarm_text: str,
    url: str,
    stamp: datetime,
) -> bytes:
    """Return an iCalendar file with one all-day event on the due date.

    Args:
        deadline_id: The deadline's id; the UID is derived from it.
        sequence: The event's revision; higher when the due date changed.
        day: The due date (``DTSTART;VALUE=DATE``).
        summary: One line, already free of control characters.
        description: The explanation, citation and any nominal warning.
        alarm_text: What the reminder alarm says.
        url: A link to the case, or ``""``.
        stamp: The aware instant the file is made (``DTSTAMP``).
    """
    event = _event(
        FeedEvent(
            deadline_id=deadline_id,
            sequence=sequence,
            day=day,
            summary=summary,
            description=description,
            url=url,
        ),
        stamp,
    )
    event.add_component(_alarm(alarm_text))
    calendar = _calendar()
    calendar.add_component(event)
    ical: bytes = calendar.to_ical()
    return ical


def _alarm(text: str) -> icalendar.Alarm:
    alarm = icalendar.Alarm()
    alarm.add("action", "DISPLAY")
    alarm.add("description", text)
    alarm.add("trigger", _ALARM_BEFORE)
    return alarm
