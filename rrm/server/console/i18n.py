"""The console's languages: Babel catalogues, and dates in the officer's locale.

English is the source language; Spanish and French come from the catalogues in
``locale/<lang>/LC_MESSAGES/messages.po``, compiled in memory when the console
starts (no compiled ``.mo`` files are kept). Dates and instants are formatted by
Babel with the locale's own conventions, and a deadline's end is shown in its
Party's time zone, named in the officer's language.
"""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_datetime, get_timezone_name
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from babel.support import NullTranslations, Translations

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "DEFAULT",
    "LANGUAGES",
    "Formatter",
    "negotiate",
    "translations",
]

#: The console's languages, each named in its own language.
_CACHED_DAYS = 20_000

LANGUAGES: Mapping[str, str] = {"en": "English", "es": "Español", "fr": "Français"}
DEFAULT = "en"


@cache
def translations(lang: str) -> NullTranslations:
    """Return the compiled catalogue of *lang* (English: the source texts)."""
    if lang == DEFAULT or lang not in LANGUAGES:
        return NullTranslations()
    po = resources.files("rrm.server.console") / "locale" / lang / "LC_MESSAGES"
    with (po / "messages.po").open("rb") as f:
        catalog = read_po(f, locale=lang)
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    buffer.seek(0)
    return Translations(fp=buffer)


def negotiate(chosen: str | None, accept_language: str | None) -> str:
    """Return the officer's language: the one chosen, else the browser's first known."""
    if chosen is not None and chosen in LANGUAGES:
        return chosen
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().lower()
        base = tag.split("-")[0]
        if base in LANGUAGES:
            return base
    return DEFAULT


class Formatter:
    """Dates, instants and numbers in one locale."""

    def __init__(self, lang: str) -> None:
        self.lang = lang if lang in LANGUAGES else DEFAULT
        self.locale = Locale.parse(self.lang)
        self._days: dict[date, str] = {}

    def day(self, value: date | str | None) -> str:
        """A calendar day, e.g. "16 Jan 2025" / "16 ene 2025"."""
        if value is None or value == "":
            return ""
        if isinstance(value, str):
            value = date.fromisoformat(value[:10])
        return self._day(value)

    def _day(self, value: date) -> str:
        found = self._days.get(value)
        if found is None:
            found = format_date(value, "medium", locale=self.locale)
            if len(self._days) < _CACHED_DAYS:
                self._days[value] = found
        return found

    def instant(self, value: datetime | str | None, tz: str = "UTC") -> str:
        """An instant shown in *tz*, with the zone named."""
        if value is None or value == "":
            return ""
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        zone = ZoneInfo(tz)
        text = format_datetime(value, "medium", tzinfo=zone, locale=self.locale)
        return f"{text} ({tz})"

    def moment(self, value: datetime | str) -> str:
        """An instant as its UTC day in the locale and a 24-hour UTC time.

        For long lists, where the fully localized form costs too much.
        """
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        utc = value.astimezone(UTC)
        return f"{self._day(utc.date())}, {utc:%H:%M} UTC"

    def zone(self, tz: str) -> str:
        """A time zone's name in the officer's language, with its IANA id."""
        name = get_timezone_name(ZoneInfo(tz), "long", locale=self.locale)
        return f"{name} ({tz})"

    def number(self, value: int) -> str:
        """A whole number with the locale's grouping."""
        return format_decimal(value, locale=self.locale)
