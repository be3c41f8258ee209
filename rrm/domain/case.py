"""The case aggregate and its parts: parties, facility, people, deadlines, history.

Everything here is an immutable value. The service layer builds new values from old
ones; adapters store and load them. Nothing here performs I/O.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, TypeAlias

from rrm.errors import InvalidInput

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "GENESIS_HASH",
    "Case",
    "Deadline",
    "DeadlineStatus",
    "Facility",
    "HistoryEntry",
    "JSONValue",
    "Officer",
    "Party",
    "Petitioner",
    "entry_hash",
    "require_aware",
    "verify_chain",
]

JSONValue: TypeAlias = (
    str | int | float | bool | list["JSONValue"] | dict[str, "JSONValue"] | None
)

GENESIS_HASH = "0" * 64


class Party(StrEnum):
    """A Party to the agreement (a state, never a company)."""

    US = "US"
    MX = "MX"
    CA = "CA"


class DeadlineStatus(StrEnum):
    """Where a deadline stands."""

    OPEN = "open"
    PAUSED = "paused"
    MET = "met"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True, kw_only=True)
class Facility:
    """A facility in the registry; determinations are counted per facility and owner."""

    facility_id: str
    name: str
    owner: str
    country: Party
    city: str = ""
    region: str = ""
    sector: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Petitioner:
    """A person or organisation that petitioned; confidential ones never leave RRM."""

    name: str
    confidential: bool = False
    contact: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Officer:
    """An officer assigned to a case in a role (for example ``ustr``)."""

    officer_id: str
    role: str
    name: str = ""
    email: str = ""
    language: str = "en"
    timezone: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Deadline:
    """A dated duty of one actor, opened by an event and closed by another.

    ``due_date`` is the last day in ``timezone``; ``due_at`` is the end of that day
    as an aware UTC instant, so a deadline has lapsed once ``now >= due_at``.
    ``lapsed_at`` records when the engine marked the lapse; ``alerts_through`` is
    the instant up to which owed alerts have been put in the outbox; and
    ``next_action_at`` is when the deadline next needs the engine (an alert or its
    lapse), the one indexed column the deadline sweep reads.
    """

    deadline_id: str
    case_id: str
    key: str
    label: str
    status: DeadlineStatus
    due_date: date
    due_at: datetime
    anchor_event: str
    anchor_at: datetime
    counting: str
    days: int | None
    calendar_id: str
    timezone: str
    actor: str
    citation: str
    evidence: str
    explanation: str
    opened_seq: int
    opened_at: datetime
    closed_seq: int | None = None
    closed_at: datetime | None = None
    paused_at: datetime | None = None
    extensions: int = 0
    lapsed_at: datetime | None = None
    alerts_through: datetime | None = None
    next_action_at: datetime | None = None

    @property
    def nominal(self) -> bool:
        """True when the number rests on recalled, unverified text."""
        return self.evidence == "R"

    @property
    def is_open(self) -> bool:
        """True while the deadline still binds (open or paused)."""
        return self.status in {DeadlineStatus.OPEN, DeadlineStatus.PAUSED}


@dataclass(frozen=True, slots=True, kw_only=True)
class HistoryEntry:
    """One append-only audit record; ``seq`` equals the case version after it.

    ``actor`` is who recorded it; ``via`` the credential that proved the actor
    (``token:<id>`` or ``oidc:<issuer>``) when the change came through the case
    service, empty for the Python API and the command line.
    """

    case_id: str
    seq: int
    event: str
    from_state: str | None
    to_state: str
    actor: str
    role: str
    reason: str
    payload: Mapping[str, JSONValue]
    occurred_at: datetime
    recorded_at: datetime
    idempotency_key: str | None
    prev_hash: str
    hash: str
    via: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Case:
    """A facility case as of its latest version."""

    case_id: str
    external_ref: str
    workflow_id: str
    workflow_version: int
    state: str
    version: int
    complainant: Party
    respondent: Party
    initiation: str
    facility: Facility
    petitioners: tuple[Petitioner, ...] = ()
    officers: tuple[Officer, ...] = ()
    attributes: Mapping[str, JSONValue] = field(default_factory=dict)
    opened_at: datetime
    updated_at: datetime
    last_event_at: datetime
    deadlines: tuple[Deadline, ...] = ()

    @property
    def open_deadlines(self) -> dict[str, Deadline]:
        """Open or paused deadlines by key."""
        return {d.key: d for d in self.deadlines if d.is_open}

    def deadline(self, key: str) -> Deadline | None:
        """Return the latest deadline with *key* (open or closed), if any."""
        found = [d for d in self.deadlines if d.key == key]
        return max(found, key=lambda d: d.opened_seq) if found else None


def require_aware(field_name: str, value: datetime) -> datetime:
    """Return *value* if it carries a time zone; refuse naive datetimes.

    Raises:
        InvalidInput: If *value* is naive.
    """
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput(
            field_name,
            "the date and time has no time zone; give one, e.g. "
            "2024-01-18T15:00:00+00:00",
        )
    return value


def _canonical(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def entry_hash(
    *,
    prev_hash: str,
    case_id: str,
    seq: int,
    event: str,
    from_state: str | None,
    to_state: str,
    actor: str,
    role: str,
    reason: str,
    payload: Mapping[str, JSONValue],
    occurred_at: datetime,
    recorded_at: datetime,
    idempotency_key: str | None,
    via: str = "",
) -> str:
    """Return the SHA-256 that chains a history entry to the one before it.

    ``via`` is hashed only when set, so entries written before it existed keep
    their hashes.
    """
    body = {
        "prev": prev_hash,
        "case_id": case_id,
        "seq": seq,
        "event": event,
        "from": from_state,
        "to": to_state,
        "actor": actor,
        "role": role,
        "reason": reason,
        "payload": payload,
        "occurred_at": _canonical(occurred_at),
        "recorded_at": _canonical(recorded_at),
        "idempotency_key": idempotency_key,
    }
    if via:
        body["via"] = via
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def verify_chain(entries: list[HistoryEntry]) -> int | None:
    """Return the ``seq`` of the first entry whose hash or link is broken, or None.

    Checks that entries are numbered 1, 2, 3, ..., that each links to the hash of
    the one before it, and that each hash matches the entry's own content.
    """
    prev = GENESIS_HASH
    for expected_seq, e in enumerate(entries, start=1):
        recomputed = entry_hash(
            prev_hash=prev,
            case_id=e.case_id,
            seq=e.seq,
            event=e.event,
            from_state=e.from_state,
            to_state=e.to_state,
            actor=e.actor,
            role=e.role,
            reason=e.reason,
            payload=e.payload,
            occurred_at=e.occurred_at,
            recorded_at=e.recorded_at,
            idempotency_key=e.idempotency_key,
            via=e.via,
        )
        if e.seq != expected_seq or e.prev_hash != prev or e.hash != recomputed:
            return e.seq
        prev = e.hash
    return None
