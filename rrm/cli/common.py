"""What every ``rrm`` command shares: options, the engine, and argument parsing.

The CLI is a thin adapter: the helpers here turn text typed by an officer into the
values the engine's commands take, and refuse malformed text with an
``InvalidInput`` naming the option, so ``main`` prints one line and exits 1.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from rrm.adapters.sql.engine import make_engine
from rrm.domain.case import Officer
from rrm.errors import InvalidInput
from rrm.service import inputs
from rrm.service.validation import check_payload
from rrm.wiring import DEFAULT_DB, bootstrap

if TYPE_CHECKING:
    from pathlib import Path

    from rrm.domain.case import JSONValue
    from rrm.service.alerting import AlertSettings
    from rrm.service.engine import CaseEngine
    from rrm.service.ports import AlertRenderer, Notifier

__all__ = [
    "DEFAULT_DB",
    "ActorOption",
    "AtOption",
    "DbOption",
    "JsonOption",
    "PayloadOption",
    "ReasonOption",
    "RoleOption",
    "SetOption",
    "console",
    "engine_for",
    "parse_at",
    "parse_date",
    "parse_officer",
    "parse_payload",
    "print_json",
    "read_json",
]

# Output goes to whatever sys.stdout is at print time (Rich looks it up lazily).
console = Console()

DbOption = Annotated[
    str,
    typer.Option(
        "--db",
        envvar="RRM_DB",
        help="Database URL (default: the embedded SQLite file rrm.sqlite).",
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print machine-readable JSON (stable keys).")
]
ActorOption = Annotated[
    str,
    typer.Option(
        "--actor",
        envvar="RRM_ACTOR",
        help="Who records this, e.g. officer:ana (recorded in the history).",
    ),
]
RoleOption = Annotated[
    str,
    typer.Option(
        "--role", envvar="RRM_ROLE", help="The role you act in, e.g. ustr or nao."
    ),
]
ReasonOption = Annotated[
    str, typer.Option("--reason", help="Why (recorded in the history).")
]
AtOption = Annotated[
    str | None,
    typer.Option(
        "--at",
        help="When it happened, with a time zone (ISO 8601, e.g. "
        "2025-01-06T15:00:00+00:00); default: now.",
        show_default=False,
    ),
]
PayloadOption = Annotated[
    str | None,
    typer.Option(
        "--payload", help="Event details as a JSON object.", show_default=False
    ),
]
SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="One event detail as key=value (value read as JSON if it parses, "
        "else as text); repeatable.",
        show_default=False,
    ),
]


@contextmanager
def engine_for(
    db: str,
    *,
    notifier: Notifier | None = None,
    renderer: AlertRenderer | None = None,
    alert_settings: AlertSettings | None = None,
) -> Iterator[CaseEngine]:
    """Yield a ``CaseEngine`` on *db* (schema checked); dispose of it afterwards."""
    sql = make_engine(db)
    try:
        yield bootstrap(
            sql, notifier=notifier, renderer=renderer, alert_settings=alert_settings
        )
    finally:
        sql.dispose()


def print_json(value: Any) -> None:
    """Print *value* as indented JSON on stdout (no colour, no wrapping)."""
    print(json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False))


def parse_at(value: str | None, option: str = "--at") -> datetime | None:
    """Return an aware datetime from ISO 8601 text; refuse text without a zone."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput(
            option, f"{value!r} is not an ISO 8601 date and time"
        ) from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise InvalidInput(
            option,
            f"{value!r} has no time zone; give one, e.g. 2025-01-06T15:00:00+00:00",
        )
    return parsed


def parse_date(value: str, option: str) -> date:
    """Return a calendar date from ``YYYY-MM-DD`` text."""
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput(option, f"{value!r} is not a date (YYYY-MM-DD)") from None


def parse_payload(payload: str | None, sets: list[str] | None) -> dict[str, JSONValue]:
    """Return event details from ``--payload JSON`` and ``--set key=value`` items.

    Within the payload limits of :mod:`rrm.service.inputs` (nesting, size), with
    no key given twice and no NUL character anywhere.
    """
    if payload is not None and sets:
        raise InvalidInput("--payload", "give either --payload or --set, not both")
    if payload is not None:
        data = inputs.loads(
            payload,
            field="--payload",
            max_depth=inputs.MAX_PAYLOAD_DEPTH,
            max_bytes=inputs.MAX_PAYLOAD_BYTES,
        )
        if not isinstance(data, dict):
            raise InvalidInput("--payload", "must be a JSON object, e.g. '{\"a\": 1}'")
        return dict(check_payload(data, "--payload"))
    result: dict[str, JSONValue] = {}
    for item in sets or ():
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InvalidInput("--set", f"{item!r} is not key=value")
        if key in result:
            raise InvalidInput("--set", f"the key {key!r} is given twice; give it once")
        try:
            # One level below the payload itself.
            result[key] = inputs.loads(
                raw,
                field=f"--set {key}",
                max_depth=inputs.MAX_PAYLOAD_DEPTH - 1,
                max_bytes=inputs.MAX_PAYLOAD_BYTES,
            )
        except inputs.NotJSON:
            result[key] = raw
    return dict(check_payload(result, "--set"))


_OFFICER_PARTS = ("officer_id", "role", "email", "language", "timezone")


def parse_officer(spec: str) -> Officer:
    """Return an officer from ``id:role[:email[:lang[:tz]]]``."""
    parts = spec.split(":")
    if len(parts) < 2 or len(parts) > len(_OFFICER_PARTS) or not all(parts[:2]):  # noqa: PLR2004 - id and role
        raise InvalidInput("--officer", f"{spec!r} is not id:role[:email[:lang[:tz]]]")
    fields = dict(zip(_OFFICER_PARTS, parts, strict=False))
    if not fields.get("language"):
        fields.pop("language", None)
    return Officer(**fields)


# Files RRM writes itself and reads back, larger than one case document: an
# anchors file holds about 150 bytes per case.
_FILE_LIMITS = {"--anchors": 256 * inputs.MIB}


def read_json(file: Path, option: str) -> Any:
    """Read a JSON file named by *option*; a user's mistake is InvalidInput.

    A file may take at most ``inputs.MAX_DOCUMENT_BYTES`` (an anchors file more)
    and nest at most ``inputs.MAX_DOCUMENT_DEPTH`` levels; a key given twice in
    one object is refused.
    """
    limit = _FILE_LIMITS.get(option, inputs.MAX_DOCUMENT_BYTES)
    try:
        with file.open("rb") as f:
            raw = f.read(limit + 1)
    except OSError as exc:
        raise InvalidInput(option, f"cannot read {file}: {exc.strerror}") from None
    # An import names the file as the option; --file and --anchors name both.
    what = "the file" if option == str(file) else str(file)
    if len(raw) > limit:
        raise InvalidInput(
            option,
            f"{what} is larger than {inputs.describe_bytes(limit)}, the most a "
            "file may take",
        )
    return inputs.loads(raw, field=option, what=what, max_bytes=limit)
