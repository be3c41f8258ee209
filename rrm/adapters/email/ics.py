"""Build the iCalendar file attached to deadline alerts.

One all-day VEVENT per deadline, published (``METHOD:PUBLISH``) with a UID derived
from the deadline id and a SEQUENCE from the alert, so a calendar that imported an
earlier alert updates the event instead of adding a second one.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Final
from urllib.parse import quote

import icalendar

if TYPE_CHECKING:
    from datetime import date, datetime

__all__ = ["PRODID", "deadline_ics", "deadline_uid"]

PRODID: Final = "-//usmca-rrm//RRM deadline alerts//EN"
# The alarm rings at 09:00 the day before the (all-day) due date.
_ALARM_BEFORE: Final = timedelta(hours=-15)


def deadline_uid(deadline_id: str) -> str:
    """Return the stable iCalendar UID of a deadline."""
    return f"rrm-deadline-{quote(deadline_id, safe='-._~')}@rrm.invalid"


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
    event = icalendar.Event()
    event.add("uid", deadline_uid(deadline_id))
    event.add("sequence", max(0, sequence))
    event.add("dtstamp", stamp)
    event.add("dtstart", day)
    event.add("dtend", day + timedelta(days=1))
    event.add("summary", summary)
    event.add("description", description)
    event.add("transp", "TRANSPARENT")
    event.add("categories", ["RRM"])
    if url:
        event.add("url", url)
    event.add_component(_alarm(alarm_text))
    calendar = icalendar.Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    calendar.add_component(event)
    ical: bytes = calendar.to_ical()
    return ical


def _alarm(text: str) -> icalendar.Alarm:
    alarm = icalendar.Alarm()
    alarm.add("action", "DISPLAY")
    alarm.add("description", text)
    alarm.add("trigger", _ALARM_BEFORE)
    return alarm
