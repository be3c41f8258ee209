"""Read business-day calendar files (TOML) into ``BusinessCalendar`` values.

Each file names a country and categories of the ``holidays`` package, adds the
recurring non-working days that package does not carry, and lists ad hoc closures.
This is the only module that imports ``holidays``. Every error names the file and
the key, e.g. ``recurring[2].month``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, TypeAlias
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
from dateutil.easter import easter

from rrm.domain.calendars import WEEKDAY_NAMES, BusinessCalendar
from rrm.domain.deadlines import Evidence
from rrm.errors import InvalidWorkflow
from rrm.workflow.loader import read_toml

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["load_calendar_file", "load_calendars", "parse_calendar"]

_TOP = {"calendar", "recurring", "closures"}
_HEAD = {
    "id",
    "name",
    "country",
    "categories",
    "language",
    "timezone",
    "evidence",
    "source",
}
_RECURRING = {
    "name",
    "easter_offset",
    "month",
    "day",
    "weekday",
    "nth",
    "evidence",
    "source",
}
_CLOSURE = {"date", "reason", "source", "evidence"}
# Only ordinals that exist in every month, so a rule never silently skips a year.
_NTH = {1, 2, 3, 4, -1}
_MAX_EASTER_OFFSET = 200
_EVIDENCE = frozenset(e.value for e in Evidence)

_DayRule: TypeAlias = Callable[[int], date | None]


@dataclass(frozen=True, slots=True)
class _Named:
    """A non-working day rule (recurring) or date (closure) with its name."""

    name: str
    when: _DayRule


@dataclass(frozen=True, slots=True, kw_only=True)
class _Source:
    """Where the holidays come from: the package's part plus our own additions."""

    country: str
    categories: tuple[str, ...]
    language: str | None
    extra: tuple[_Named, ...]


class _Ctx:
    """Carries the file name so every error can name it."""

    def __init__(self, file: str) -> None:
        self.file = file

    def fail(self, key: str, reason: str) -> InvalidWorkflow:
        return InvalidWorkflow(self.file, key, reason)

    def only(self, data: Mapping[str, Any], allowed: set[str], path: str) -> None:
        for key in data:
            if key not in allowed:
                raise self.fail(f"{path}{key}", "unknown key")

    def text(
        self, data: Mapping[str, Any], key: str, path: str, *, required: bool = True
    ) -> str | None:
        value = data.get(key)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.fail(f"{path}{key}", "must be a non-empty string")
        return value

    def number(
        self, data: Mapping[str, Any], key: str, path: str, allowed: range | set[int]
    ) -> int:
        value = data.get(key)
        if (
            not isinstance(value, int)
            or isinstance(value, bool)
            or value not in allowed
        ):
            raise self.fail(
                f"{path}{key}", f"must be a whole number in {_show(allowed)}"
            )
        return value

    def evidence(self, data: Mapping[str, Any], path: str, *, required: bool) -> None:
        value = data.get("evidence")
        if value is None and not required:
            return
        if value not in _EVIDENCE:
            raise self.fail(
                f"{path}evidence", "must be V (verified), S (secondary) or R (recalled)"
            )

    def tables(self, data: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise self.fail(key, f"must be an array of tables ([[{key}]])")
        return value


def load_calendars(directory: Path) -> dict[str, BusinessCalendar]:
    """Load every calendar file (``*.toml``) in a folder.

    Args:
        directory: The folder, e.g. ``workflows/calendars``.

    Returns:
        The calendars keyed by their id.

    Raises:
        InvalidWorkflow: If the folder is missing, a file is invalid, or two files
            declare the same id.

    .. versionadded:: 0.1.0
    """
    if not directory.is_dir():
        raise InvalidWorkflow(str(directory), "(folder)", "is not a folder")
    found: dict[str, BusinessCalendar] = {}
    origin: dict[str, Path] = {}
    for path in sorted(directory.glob("*.toml")):
        calendar = load_calendar_file(path)
        key = calendar.calendar_id
        if key in found:
            raise InvalidWorkflow(
                str(path), "calendar.id", f"id {key!r} is already used by {origin[key]}"
            )
        found[key], origin[key] = calendar, path
    return found


def load_calendar_file(path: Path) -> BusinessCalendar:
    """Read and validate one calendar file.

    Args:
        path: The TOML file.

    Raises:
        InvalidWorkflow: If the file breaks any rule; names the file and the key.

    .. versionadded:: 0.1.0
    """
    data, _ = read_toml(path)
    return parse_calendar(data, file=str(path))


def parse_calendar(data: Mapping[str, Any], *, file: str) -> BusinessCalendar:
    """Validate parsed TOML data and build the calendar.

    Args:
        data: The parsed file.
        file: The file name to quote in errors.

    Raises:
        InvalidWorkflow: If the data breaks any rule; names the file and the key.
    """
    ctx = _Ctx(file)
    ctx.only(data, _TOP, "")
    head = data.get("calendar")
    if not isinstance(head, dict):
        raise ctx.fail("calendar", "a table is required here")
    ctx.only(head, _HEAD, "calendar.")
    calendar_id = _calendar_id(ctx, head)
    name = ctx.text(head, "name", "calendar.")
    ctx.text(head, "source", "calendar.")
    ctx.evidence(head, "calendar.", required=True)
    source = _Source(
        country=(country := _country(ctx, head)),
        categories=_categories(ctx, head, country),
        language=_language(ctx, head, country),
        extra=(*_recurring(ctx, data), *_closures(ctx, data)),
    )
    return BusinessCalendar(
        calendar_id=calendar_id,
        name=str(name),
        timezone=_timezone(ctx, head),
        holidays_for_year=partial(_holidays_for_year, source),
    )


def _holidays_for_year(source: _Source, year: int) -> Mapping[date, str]:
    found = holidays.country_holidays(
        source.country,
        years=year,
        categories=source.categories,
        language=source.language,
    )
    days: dict[date, str] = dict(found.items())
    for extra in source.extra:
        day = extra.when(year)
        if day is None:
            continue
        # A day may already be off for another reason; keep both names.
        days[day] = f"{days[day]}; {extra.name}" if day in days else extra.name
    return days


def _calendar_id(ctx: _Ctx, head: Mapping[str, Any]) -> str:
    value = str(ctx.text(head, "id", "calendar."))
    # "+" joins the ids of a union, so a single calendar may not use it.
    if not all(c.isalnum() or c in "-_." for c in value):
        raise ctx.fail("calendar.id", "use letters, digits, '-', '_' or '.' only")
    return value


def _country(ctx: _Ctx, head: Mapping[str, Any]) -> str:
    value = str(ctx.text(head, "country", "calendar."))
    if value not in holidays.list_supported_countries():
        raise ctx.fail("calendar.country", f"the holidays package has no {value!r}")
    return value


def _categories(ctx: _Ctx, head: Mapping[str, Any], country: str) -> tuple[str, ...]:
    value = head.get("categories", ["public"])
    if not isinstance(value, list) or not value:
        raise ctx.fail("calendar.categories", "must be a non-empty list of names")
    known = holidays.country_holidays(country).supported_categories
    for i, category in enumerate(value):
        if category not in known:
            raise ctx.fail(
                f"calendar.categories[{i}]",
                f"{category!r} is not a category of {country}; "
                f"known: {', '.join(known)}",
            )
    return tuple(value)


def _language(ctx: _Ctx, head: Mapping[str, Any], country: str) -> str | None:
    value = ctx.text(head, "language", "calendar.", required=False)
    known = holidays.country_holidays(country).supported_languages
    if value is not None and value not in known:
        raise ctx.fail(
            "calendar.language",
            f"{value!r} is not a language of {country}; known: {', '.join(known)}",
        )
    return value


def _timezone(ctx: _Ctx, head: Mapping[str, Any]) -> str:
    value = str(ctx.text(head, "timezone", "calendar."))
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ctx.fail(
            "calendar.timezone", f"unknown IANA time zone {value!r}"
        ) from None
    return value


def _recurring(ctx: _Ctx, data: Mapping[str, Any]) -> list[_Named]:
    out = []
    for i, body in enumerate(ctx.tables(data, "recurring")):
        path = f"recurring[{i}]."
        ctx.only(body, _RECURRING, path)
        name = str(ctx.text(body, "name", path))
        ctx.text(body, "source", path, required=False)
        ctx.evidence(body, path, required=False)
        out.append(_Named(name, _day_rule(ctx, body, path)))
    return out


def _day_rule(ctx: _Ctx, body: Mapping[str, Any], path: str) -> _DayRule:
    forms = [k for k in ("easter_offset", "day", "weekday") if k in body]
    if len(forms) != 1:
        raise ctx.fail(
            path.rstrip("."),
            "give exactly one of easter_offset, month with day, "
            "or month with weekday and nth",
        )
    if forms == ["easter_offset"]:
        for key in ("month", "nth"):
            if key in body:
                raise ctx.fail(f"{path}{key}", "does not go with easter_offset")
        span = range(-_MAX_EASTER_OFFSET, _MAX_EASTER_OFFSET + 1)
        return partial(_easter_day, ctx.number(body, "easter_offset", path, span))
    month = ctx.number(body, "month", path, range(1, 13))
    if forms == ["day"]:
        return _fixed_rule(ctx, body, path, month)
    return _weekday_rule(ctx, body, path, month)


def _fixed_rule(ctx: _Ctx, body: Mapping[str, Any], path: str, month: int) -> _DayRule:
    if "nth" in body:
        raise ctx.fail(f"{path}nth", "does not go with month and day")
    day = ctx.number(body, "day", path, range(1, 32))
    try:
        date(2000, month, day)  # a leap year: 29 February is allowed
    except ValueError:
        raise ctx.fail(f"{path}day", f"month {month} has no day {day}") from None
    return partial(_fixed_day, month, day)


def _weekday_rule(
    ctx: _Ctx, body: Mapping[str, Any], path: str, month: int
) -> _DayRule:
    weekday = body.get("weekday")
    if weekday not in WEEKDAY_NAMES:
        raise ctx.fail(f"{path}weekday", f"must be one of {', '.join(WEEKDAY_NAMES)}")
    nth = ctx.number(body, "nth", path, _NTH)
    return partial(_nth_weekday, month, WEEKDAY_NAMES.index(weekday), nth)


def _closures(ctx: _Ctx, data: Mapping[str, Any]) -> list[_Named]:
    out = []
    for i, body in enumerate(ctx.tables(data, "closures")):
        path = f"closures[{i}]."
        ctx.only(body, _CLOSURE, path)
        day = _date(ctx, body.get("date"), f"{path}date")
        reason = str(ctx.text(body, "reason", path))
        ctx.text(body, "source", path)
        ctx.evidence(body, path, required=False)
        out.append(_Named(reason, partial(_on_date, day)))
    return out


def _date(ctx: _Ctx, value: object, key: str) -> date:
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise ctx.fail(key, f"{value!r} is not a date (YYYY-MM-DD)") from None
    if isinstance(value, date) and type(value) is date:
        return value
    raise ctx.fail(key, "must be a date (YYYY-MM-DD)")


def _easter_day(offset: int, year: int) -> date:
    return easter(year) + timedelta(days=offset)


def _fixed_day(month: int, day: int, year: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:  # 29 February outside a leap year
        return None


def _nth_weekday(month: int, weekday: int, nth: int, year: int) -> date:
    if nth > 0:
        first = date(year, month, 1)
        return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (nth - 1))
    following = date(year + month // 12, month % 12 + 1, 1)
    last = following - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def _on_date(day: date, year: int) -> date | None:
    return day if day.year == year else None


def _show(allowed: range | set[int]) -> str:
    if isinstance(allowed, range):
        return f"{allowed.start}..{allowed.stop - 1}"
    return ", ".join(str(v) for v in sorted(allowed))
