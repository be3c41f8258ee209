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
    "case_row_break",
    "chain_break",
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
    subject: Mapping[str, JSONValue] | None = None


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
    subject: Mapping[str, JSONValue] | None = None,
) -> str:
    """Return the SHA-256 that chains a history entry to the one before it.

    ``via`` and ``subject`` are hashed only when set, so entries written before
    they existed keep their hashes.
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
    if subject is not None:
        body["subject"] = subject
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def verify_chain(entries: list[HistoryEntry]) -> int | None:
    """Return the ``seq`` of the first entry whose hash or link is broken, or None.

    Checks that entries are numbered 1, 2, 3, ..., that each links to the hash of
    the one before it, that each hash matches the entry's own content, and that
    each entry starts from the state the one before it ended in (the first from
    none). :func:`chain_break` also says what is wrong.
    """
    found = chain_break(entries)
    return None if found is None else found[0]


def chain_break(entries: list[HistoryEntry]) -> tuple[int, str] | None:
    """Return the ``seq`` of the first broken entry and what is wrong, or None.

    An entry is broken when its number, its link, its hash or its starting state
    does not follow from the entry before it. A state changed in the case row
    and then carried on by a legal event shows here: the event's entry starts
    from the changed state, not from the one the entry before it ended in.

    .. versionadded:: 0.5.0
    """
    prev: HistoryEntry | None = None
    for expected_seq, e in enumerate(entries, start=1):
        problem = _entry_problem(e, expected_seq, prev)
        if problem is not None:
            return e.seq, problem
        prev = e
    return None


def _entry_problem(
    e: HistoryEntry, expected_seq: int, prev: HistoryEntry | None
) -> str | None:
    """What is wrong with entry *e*, given the intact entry before it (if any)."""
    return _link_problem(e, expected_seq, prev) or _state_problem(e, prev)


def _link_problem(
    e: HistoryEntry, expected_seq: int, prev: HistoryEntry | None
) -> str | None:
    """Its number, its link to the entry before it, or its own hash, if wrong."""
    if e.seq != expected_seq:
        after = f"entry {prev.seq}" if prev is not None else "nothing"
        return f"entry {expected_seq} is missing: entry {e.seq} follows {after}"
    prev_hash = GENESIS_HASH if prev is None else prev.hash
    if e.prev_hash != prev_hash:
        if prev is None:
            return "entry 1 does not link to the start of a chain"
        return f"entry {e.seq} does not link to the hash of entry {prev.seq}"
    if e.hash != _recomputed(e, prev_hash):
        return f"entry {e.seq} does not match its hash: it was changed after writing"
    return None


def _state_problem(e: HistoryEntry, prev: HistoryEntry | None) -> str | None:
    """The state *e* starts from, if it is not where the entry before it ended."""
    if prev is None:
        if e.from_state:  # a case opens from nothing (None)
            return f"entry 1 starts from {e.from_state!r}, but a case opens from none"
        return None
    if e.from_state != prev.to_state:
        return (
            f"entry {e.seq} starts from {e.from_state!r} but entry {prev.seq} "
            f"ended in {prev.to_state!r}"
        )
    return None


def _recomputed(e: HistoryEntry, prev_hash: str) -> str:
    return entry_hash(
        prev_hash=prev_hash,
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
        subject=e.subject,
    )


def case_row_break(
    case: Case, entries: list[HistoryEntry], *, migrated_event: str
) -> tuple[int, str] | None:
    """Return where the case row disagrees with its (intact) history, and how.

    The row's ``version`` must be the last entry's ``seq`` and its ``state`` the
    last entry's ``to_state``. When the history holds migrations
    (*migrated_event*, whose payload names ``workflow``, ``from_version`` and
    ``to_version``), each must start from the version the one before it moved
    to, and the row's workflow and version must be those of the last one. The
    number returned is the first missing or uncounted entry, or the entry the row
    contradicts.

    .. versionadded:: 0.5.0
    """
    count = len(entries)
    if case.version > count:
        ends = f"ends at entry {count}" if count else "has no entries"
        return count + 1, (
            f"case row says version {case.version}, but the history {ends}: "
            f"entry {count + 1} is missing"
        )
    if case.version < count:
        return case.version + 1, (
            f"case row says version {case.version}, but the history goes on to "
            f"entry {count}"
        )
    if not entries:
        return None
    last = entries[-1]
    if case.state != last.to_state:
        return last.seq, (
            f"case row says state {case.state!r}, its last entry ({last.seq}) "
            f"ended in {last.to_state!r}"
        )
    return _workflow_break(case, entries, migrated_event)


def _workflow_break(
    case: Case, entries: list[HistoryEntry], migrated_event: str
) -> tuple[int, str] | None:
    moved: HistoryEntry | None = None
    for e in entries:
        if e.event != migrated_event:
            continue
        if e.payload.get("workflow", case.workflow_id) != case.workflow_id:
            return e.seq, (
                f"entry {e.seq} migrates workflow {e.payload.get('workflow')!r}, "
                f"but the case row says {case.workflow_id!r}"
            )
        if moved is not None and e.payload.get("from_version") != moved.payload.get(
            "to_version"
        ):
            return e.seq, (
                f"entry {e.seq} moves from workflow version "
                f"{e.payload.get('from_version')!r}, but entry {moved.seq} had "
                f"moved the case to version {moved.payload.get('to_version')!r}"
            )
        moved = e
    if moved is not None and moved.payload.get("to_version") != case.workflow_version:
        return moved.seq, (
            f"case row says workflow version {case.workflow_version}, its last "
            f"migration (entry {moved.seq}) moved it to "
            f"{moved.payload.get('to_version')!r}"
        )
    return None
