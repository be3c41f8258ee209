"""Check what callers hand the engine, before anything is read or written.

Every check raises ``InvalidInput`` naming the field, in words an officer can act on.
Text must be real text (no NUL, no unpaired surrogates), times must carry a time
zone, and payloads must be JSON that the history hash can cover exactly, within the
limits of :mod:`rrm.service.inputs` (nesting and size; no NUL in any key or string).

References (``external_ref``, ``facility_id``, ``officer_id``) and names (a
facility's name and owner, petitioners', officers') are normalised to Unicode NFKC
here, once, so what is stored and compared is one form; they are refused when they
hold control characters, invisible formatting characters (bidirectional overrides
and isolates, zero-width characters) or a word mixing letters of two alphabets
(U+0430, the Cyrillic "a", inside a Latin word; in a reference, anywhere in
it): the tricks that make two different values look the same to an officer.
"""

from __future__ import annotations

import dataclasses
import json
import unicodedata
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
from rrm.service.addresses import check_address

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
    "name",
    "optional_name",
    "optional_text",
    "party",
    "reference",
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
    """Return *value* stripped, refusing anything but non-empty text.

    A field named as a reference (``external_ref``, ``facility_id``,
    ``officer_id``, an officer to remove) is checked and normalised as one
    (:func:`reference`), so every command and lookup that reads it through here
    sees the stored form.
    """
    stripped = _required(field, value)
    if field.rsplit(".", 1)[-1] in _REFERENCES or field.startswith("remove["):
        return _plain(field, stripped, "reference")
    return stripped


def _required(field: str, value: object) -> str:
    if not optional_text(field, value).strip():
        raise InvalidInput(field, "is required and must be non-empty text")
    return str(value).strip()


# Fields holding a reference: compared and looked up, shown in lists and alerts.
_REFERENCES = frozenset({"external_ref", "facility_id", "officer_id"})

# Characters that change how text displays, or hide in it, without being seen.
_BIDI = frozenset(
    map(chr, (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x61C))
)
_ZERO_WIDTH = frozenset(map(chr, (0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF)))
# Scripts written together in one word: Chinese characters with Japanese kana or
# Korean hangul.
_HAN = frozenset({"CJK", "HIRAGANA", "KATAKANA", "HANGUL", "BOPOMOFO", "IDEOGRAPHIC"})
_WORD = frozenset("LMN")  # letters, marks and digits make words; the rest splits


def _code(ch: str) -> str:
    called = unicodedata.name(ch, "")
    return f"U+{ord(ch):04X} {called}" if called else f"U+{ord(ch):04X}"


def _script(ch: str) -> str | None:
    """Return the alphabet of a letter (from its Unicode name), or None."""
    if not unicodedata.category(ch).startswith("L"):
        return None
    first = unicodedata.name(ch, "").split(" ", 1)[0]
    if first in _HAN:
        return "CJK"
    if first in {"", "MODIFIER"}:
        return None
    return first


def _plain(field: str, value: str, kind: str, *, required: bool = True) -> str:
    """Return *value* in NFKC, refusing invisible characters and mixed alphabets.

    The message names the character by its code and Unicode name, never the text
    (a petitioner's name may be confidential).
    """
    value = unicodedata.normalize("NFKC", value).strip()
    if required and not value:
        raise InvalidInput(field, "is required and must be non-empty text")
    _refuse_invisible(field, value, kind)
    # A reference is a code: one alphabet in all of it ("USTR-2025-0C0" with a
    # Cyrillic Es, U+0421, for the C is refused). A name is words: one alphabet
    # in each word.
    _refuse_mixed_scripts(field, value, kind if kind == "reference" else "word")
    return value


def _refuse_invisible(field: str, value: str, kind: str) -> None:
    for ch in value:
        category = unicodedata.category(ch)
        if ch in _BIDI:
            raise InvalidInput(
                field,
                f"contains a bidirectional control character ({_code(ch)}), which "
                f"can make a {kind} read differently from what is stored; remove it",
            )
        if ch in _ZERO_WIDTH:
            raise InvalidInput(
                field,
                f"contains an invisible zero-width character ({_code(ch)}); remove it",
            )
        if category == "Cc" or category in {"Zl", "Zp"}:
            raise InvalidInput(
                field, f"contains a control character or line break ({_code(ch)})"
            )
        if category == "Cf":
            raise InvalidInput(
                field, f"contains an invisible formatting character ({_code(ch)})"
            )


def _refuse_mixed_scripts(field: str, value: str, unit: str) -> None:
    """Refuse a word (letters, marks, digits) with letters of two alphabets.

    With *unit* ``"reference"`` the whole value counts as one word.
    """
    word: str | None = None
    for ch in value:
        if unicodedata.category(ch)[0] not in _WORD:
            if unit == "word":
                word = None
            continue
        script = _script(ch)
        if script is None:
            continue
        if word is None:
            word = script
        elif script != word:
            raise InvalidInput(
                field,
                f"mixes {word.title()} and {script.title()} letters in one {unit} "
                f"({_code(ch)}); a look-alike letter of another alphabet is not "
                "accepted",
            )


def reference(field: str, value: object) -> str:
    """Return a reference (a case's, a facility's, an officer's id), in NFKC.

    Raises:
        InvalidInput: Not non-empty text, or it holds a control, bidirectional or
            zero-width character, or a word mixing alphabets.
    """
    return _plain(field, _required(field, value), "reference")


def name(field: str, value: object) -> str:
    """Return a required name (a facility's, its owner's, a person's), in NFKC."""
    return _plain(field, _required(field, value), "name")


def optional_name(field: str, value: object) -> str:
    """Return an optional name in NFKC (empty stays empty)."""
    optional_text(field, value)
    return _plain(field, str(value), "name", required=False)


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
    facility_id = reference("facility.facility_id", facility.facility_id)
    facility_name = name("facility.name", facility.name)
    owner = name("facility.owner", facility.owner)
    for part in ("city", "region", "sector"):
        optional_text(f"facility.{part}", getattr(facility, part))
    country = party("facility.country", facility.country)
    if country is not respondent:
        raise InvalidInput(
            "facility.country",
            f"the facility is in {country}, but the respondent Party is {respondent}; "
            "a request concerns a facility in the respondent's territory",
        )
    return Facility(
        facility_id=facility_id, name=facility_name, owner=owner, country=country,
        city=facility.city, region=facility.region, sector=facility.sector,
    )  # fmt: skip


def check_petitioners(petitioners: object) -> tuple[Petitioner, ...]:
    """Return the petitioners, each with a name and a yes/no confidential flag."""
    if not isinstance(petitioners, tuple | list):
        raise InvalidInput("petitioners", "must be a list of Petitioner")
    checked = []
    for i, p in enumerate(petitioners):
        if not isinstance(p, Petitioner):
            raise InvalidInput(f"petitioners[{i}]", "must be a Petitioner")
        who = name(f"petitioners[{i}].name", p.name)
        optional_text(f"petitioners[{i}].contact", p.contact)
        if not isinstance(p.confidential, bool):
            raise InvalidInput(
                f"petitioners[{i}].confidential", "must be true or false"
            )
        checked.append(p if who == p.name else dataclasses.replace(p, name=who))
    return tuple(checked)


def check_officers(officers: object, spec: WorkflowSpec) -> tuple[Officer, ...]:
    """Return officer assignments with known roles, languages and time zones."""
    if not isinstance(officers, tuple | list):
        raise InvalidInput("officers", "must be a list of Officer")
    seen: set[tuple[str, str]] = set()
    checked = []
    for i, o in enumerate(officers):
        if not isinstance(o, Officer):
            raise InvalidInput(f"officers[{i}]", "must be an Officer")
        officer_id = reference(f"officers[{i}].officer_id", o.officer_id)
        for part in ("email", "timezone"):
            optional_text(f"officers[{i}].{part}", getattr(o, part))
        # One well-formed address or none (issue #13): a bad one would make every
        # alert to this officer a dead letter.
        address = check_address(f"officers[{i}].email", o.email)
        officer_name = optional_name(f"officers[{i}].name", o.name)
        role = optional_text(f"officers[{i}].role", o.role)
        if role not in spec.roles and role != "supervisor":
            known = ", ".join([*spec.roles, "supervisor"])
            raise InvalidInput(
                f"officers[{i}].role", f"unknown role {role!r}; roles: {known}"
            )
        if o.language not in LANGUAGES:
            raise InvalidInput(f"officers[{i}].language", "must be en, es or fr")
        _check_zone(f"officers[{i}].timezone", o.timezone)
        if (officer_id, o.role) in seen:
            raise InvalidInput(f"officers[{i}]", "is assigned twice in the same role")
        seen.add((officer_id, o.role))
        if (officer_id, officer_name, address) != (o.officer_id, o.name, o.email):
            o = dataclasses.replace(  # noqa: PLW2901 - the normalised copy
                o, officer_id=officer_id, name=officer_name, email=address
            )
        checked.append(o)
    return tuple(checked)


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
