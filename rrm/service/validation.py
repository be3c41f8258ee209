"""Check what callers hand the engine, before anything is read or written.

Every check raises ``InvalidInput`` naming the field, in words an officer can act on.
Text must be real text (no NUL, no unpaired surrogates), times must carry a time
zone, and payloads must be JSON that the history hash can cover exactly, within the
limits of :mod:`rrm.service.inputs` (nesting and size; no NUL in any key or string).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rrm.domain.case import (
    Facility,
    JSONValue,
    Officer,
    Party,
    Petitioner,
    require_aware,
)
from rrm.domain.commands import Claim
from rrm.errors import InvalidInput
from rrm.service import inputs

if TYPE_CHECKING:
    from rrm.workflow.spec import WorkflowSpec

__all__ = [
    "CLAIM_BASES",
    "LANGUAGES",
    "check_at",
    "check_claim",
    "check_date",
    "check_expected_version",
    "check_facility",
    "check_officers",
    "check_payload",
    "check_petitioners",
    "optional_text",
    "party",
    "text",
    "when",
]

CLAIM_BASES = frozenset(
    {"annex_23a_legislation", "enforced_nlrb_order", "canadian_legislation"}
)
LANGUAGES = frozenset({"en", "es", "fr"})


def optional_text(field: str, value: object) -> str:
    """Return *value* if it is text an officer could have typed (may be empty)."""
    if not isinstance(value, str):
        raise InvalidInput(field, "must be text")
    if "\x00" in value:
        raise InvalidInput(field, "must not contain a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(
            field, "contains characters that are not valid text"
        ) from None
    return value


def text(field: str, value: object) -> str:
    """Return *value* stripped, refusing anything but non-empty text."""
    if not optional_text(field, value).strip():
        raise InvalidInput(field, "is required and must be non-empty text")
    return str(value).strip()


def party(field: str, value: object) -> Party:
    """Return the Party named by *value* (US, MX or CA)."""
    try:
        return Party(value)  # type: ignore[arg-type]  # any value; ValueError below
    except ValueError:
        raise InvalidInput(field, f"{value!r} is not a Party (US, MX or CA)") from None


def check_at(field: str, value: object) -> datetime | None:
    """Return an optional aware datetime, in UTC."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise InvalidInput(field, "must be a date and time with a time zone")
    try:
        return require_aware(field, value).astimezone(UTC)
    except OverflowError:
        raise InvalidInput(field, "is outside the range of dates RRM handles") from None


def when(at: object, now: datetime, last: datetime | None) -> datetime:
    """Return the instant an event happened: aware, not future, not out of order.

    Without an explicit ``at`` the event happens now, or at the case's last event
    if another process's clock ran slightly ahead (clock skew never refuses a fire).
    """
    explicit = check_at("at", at)
    if explicit is None:
        return max(now, last) if last is not None else now
    if explicit > now:
        raise InvalidInput("at", f"{explicit.isoformat()} is in the future")
    if last is not None and explicit < last:
        raise InvalidInput(
            "at",
            f"{explicit.isoformat()} is before the case's last event "
            f"({last.isoformat()}); record events in the order they happened",
        )
    return explicit


def check_date(field: str, value: object) -> date:
    """Return a calendar date (not a datetime, not text)."""
    if type(value) is not date:
        raise InvalidInput(field, "must be a calendar date (YYYY-MM-DD)")
    return value


def check_expected_version(value: object) -> int | None:
    """Return an optional expected case version (a whole number from 1)."""
    if value is None:
        return None
    if type(value) is not int or value < 1:
        raise InvalidInput("expected_version", "must be a case version (1 or more)")
    return value


def check_payload(payload: object, field: str = "payload") -> Mapping[str, JSONValue]:
    """Return *payload* if it is a JSON object the history hash can cover exactly.

    Every key must be text and no key or string may hold a NUL character, at any
    depth; the payload may nest at most ``inputs.MAX_PAYLOAD_DEPTH`` levels and
    take at most ``inputs.MAX_PAYLOAD_BYTES`` as compact JSON. The checks walk the
    data without recursion, before the JSON encoder (which recurses) sees it.
    """
    if not isinstance(payload, Mapping) or not all(isinstance(k, str) for k in payload):
        raise InvalidInput(field, "must be a mapping of field names to values")
    inputs.check_tree(field, payload, max_depth=inputs.MAX_PAYLOAD_DEPTH)
    try:
        # The same settings as the history hash, so whatever passes here hashes.
        encoded = json.dumps(
            payload, sort_keys=True, ensure_ascii=False, allow_nan=False
        ).encode("utf-8")
    except (TypeError, ValueError, UnicodeEncodeError) as exc:
        reason = type(exc).__name__
        raise InvalidInput(field, f"must hold only JSON values ({reason})") from None
    if len(encoded) > inputs.MAX_PAYLOAD_BYTES:
        raise InvalidInput(
            field,
            f"is {len(encoded):,} bytes as JSON; event details may take at most "
            f"{inputs.describe_bytes(inputs.MAX_PAYLOAD_BYTES)}",
        )
    return payload


def check_facility(facility: object, respondent: Party) -> Facility:
    """Return the facility, checked, with its country as a Party."""
    if not isinstance(facility, Facility):
        raise InvalidInput("facility", "must be a Facility")
    for name in ("facility_id", "name", "owner"):
        text(f"facility.{name}", getattr(facility, name))
    for name in ("city", "region", "sector"):
        optional_text(f"facility.{name}", getattr(facility, name))
    country = party("facility.country", facility.country)
    if country is not respondent:
        raise InvalidInput(
            "facility.country",
            f"the facility is in {country}, but the respondent Party is {respondent}; "
            "a request concerns a facility in the respondent's territory",
        )
    return Facility(
        facility_id=facility.facility_id.strip(), name=facility.name,
        owner=facility.owner, country=country, city=facility.city,
        region=facility.region, sector=facility.sector,
    )  # fmt: skip


def check_petitioners(petitioners: object) -> tuple[Petitioner, ...]:
    """Return the petitioners, each with a name and a yes/no confidential flag."""
    if not isinstance(petitioners, tuple | list):
        raise InvalidInput("petitioners", "must be a list of Petitioner")
    for i, p in enumerate(petitioners):
        if not isinstance(p, Petitioner):
            raise InvalidInput(f"petitioners[{i}]", "must be a Petitioner")
        text(f"petitioners[{i}].name", p.name)
        optional_text(f"petitioners[{i}].contact", p.contact)
        if not isinstance(p.confidential, bool):
            raise InvalidInput(
                f"petitioners[{i}].confidential", "must be true or false"
            )
    return tuple(petitioners)


def check_officers(officers: object, spec: WorkflowSpec) -> tuple[Officer, ...]:
    """Return officer assignments with known roles, languages and time zones."""
    if not isinstance(officers, tuple | list):
        raise InvalidInput("officers", "must be a list of Officer")
    seen: set[tuple[str, str]] = set()
    for i, o in enumerate(officers):
        if not isinstance(o, Officer):
            raise InvalidInput(f"officers[{i}]", "must be an Officer")
        text(f"officers[{i}].officer_id", o.officer_id)
        for name in ("name", "email", "timezone"):
            optional_text(f"officers[{i}].{name}", getattr(o, name))
        role = optional_text(f"officers[{i}].role", o.role)
        if role not in spec.roles and role != "supervisor":
            known = ", ".join([*spec.roles, "supervisor"])
            raise InvalidInput(
                f"officers[{i}].role", f"unknown role {role!r}; roles: {known}"
            )
        if o.language not in LANGUAGES:
            raise InvalidInput(f"officers[{i}].language", "must be en, es or fr")
        _check_zone(f"officers[{i}].timezone", o.timezone)
        if (o.officer_id, o.role) in seen:
            raise InvalidInput(f"officers[{i}]", "is assigned twice in the same role")
        seen.add((o.officer_id, o.role))
    return tuple(officers)


def _check_zone(field: str, zone: str) -> None:
    if not zone:
        return
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(field, f"unknown time zone {zone!r}") from None


def check_claim(claim: object) -> dict[str, JSONValue]:
    """Return the claim as case attributes."""
    if not isinstance(claim, Claim):
        raise InvalidInput("claim", "must be a Claim")
    if claim.basis not in CLAIM_BASES:
        raise InvalidInput(
            "claim.basis", f"must be one of {', '.join(sorted(CLAIM_BASES))}"
        )
    text("claim.sector_category", claim.sector_category)
    optional_text("claim.nlrb_order", claim.nlrb_order)
    provisions = claim.legal_provisions
    if not isinstance(provisions, tuple | list):
        raise InvalidInput("claim.legal_provisions", "must be a list of text")
    for i, item in enumerate(provisions):
        text(f"claim.legal_provisions[{i}]", item)
    since = claim.alleged_conduct_from
    if since is not None:
        check_date("claim.alleged_conduct_from", since)
    return {
        "basis": claim.basis,
        "sector_category": claim.sector_category,
        "legal_provisions": list(provisions),
        "nlrb_order": claim.nlrb_order,
        "alleged_conduct_from": since.isoformat() if since else None,
    }
