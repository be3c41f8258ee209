"""Case import and export: a case's whole record as JSON-ready dicts, and back.

``export_case`` writes the ``rrm-case/1`` format; ``import_cases`` reads it and the
hand-written ``rrm-history/1`` format (``rrm/schemas/case.schema.json`` describes
both). An import replays every event through the workflow at its historical time,
first into a scratch store in memory and only then into the engine's database, so a
document with an illegal step writes nothing. No I/O happens here: callers read and
write the files.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import Enum
from functools import partial
from typing import TYPE_CHECKING, Any, Literal, Self, TypedDict, cast, final

from rrm.domain.case import (
    GENESIS_HASH,
    Case,
    Facility,
    HistoryEntry,
    JSONValue,
    Officer,
    Petitioner,
    require_aware,
)
from rrm.domain.commands import (
    AssignOfficers,
    Claim,
    ExtendDeadline,
    FireEvent,
    OpenCase,
    PauseDeadline,
    ResumeDeadline,
)
from rrm.errors import CaseNotFound, ConcurrencyConflict, InvalidInput, RRMError
from rrm.service import handlers
from rrm.service import validation as v

if TYPE_CHECKING:
    from types import TracebackType

    from rrm.domain.case import Deadline
    from rrm.service.engine import CaseEngine
    from rrm.service.ports import (
        CaseChange,
        CaseQuery,
        CaseRepository,
        DeadlineQuery,
        Determination,
        OutboxRepository,
    )

__all__ = [
    "EXPORT_FORMAT",
    "HISTORY_FORMAT",
    "ImportReport",
    "ImportedCase",
    "export_case",
    "import_cases",
]

EXPORT_FORMAT = "rrm-case/1"
HISTORY_FORMAT = "rrm-history/1"

# Entries the engine writes by itself: lapses are re-derived by the next tick.
_SKIPPED = frozenset({"deadline_missed"})
_DEADLINE_EVENTS = frozenset(
    {"deadline_extended", "deadline_paused", "deadline_resumed"}
)
_ASSIGNED = "officers_assigned"

_CASE_KEYS = frozenset(
    {"workflow", "workflow_version", "initiation", "complainant", "respondent",
     "facility", "claim", "petitioners", "officers", "external_ref"}
)  # fmt: skip
# Export-only keys: facts the engine derives, read back only to check the replay.
_EXPORT_CASE_KEYS = _CASE_KEYS | {
    "case_id", "state", "version", "attributes", "opened_at", "updated_at",
    "last_event_at",
}  # fmt: skip
_EVENT_KEYS = frozenset(
    {"at", "event", "role", "actor", "reason", "payload", "idempotency_key"}
)
_ENTRY_KEYS = frozenset(
    {"seq", "event", "from_state", "to_state", "actor", "role", "reason", "payload",
     "occurred_at", "recorded_at", "idempotency_key", "prev_hash", "hash"}
)  # fmt: skip
# The order of the case's fields in an export, for readers of the file.
_EXPORT_ORDER = (
    "case_id", "external_ref", "workflow", "workflow_version", "initiation", "state",
    "version", "complainant", "respondent", "facility", "claim", "petitioners",
    "officers", "attributes", "opened_at", "updated_at", "last_event_at",
)  # fmt: skip
# Officer fields and their defaults (None: required).
_OFFICER_FIELDS: dict[str, str | None] = {
    "officer_id": None, "role": None, "name": "", "email": "", "language": "en",
    "timezone": "",
}  # fmt: skip


# -- export ---------------------------------------------------------------------


def _plain(value: object) -> Any:
    """Return *value* as JSON-ready data (ISO 8601 times with offset, ISO dates)."""
    if isinstance(value, date):
        moment = value.astimezone(UTC) if isinstance(value, datetime) else value
        return moment.isoformat()
    if isinstance(value, Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)
        }
    if isinstance(value, Mapping):
        return {str(k): _plain(item) for k, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def export_case(engine: CaseEngine, ref: str) -> dict[str, Any]:
    """Return a case's whole record in the ``rrm-case/1`` format.

    The record holds the case (parties, facility, claim, petitioners with their
    confidential flag, officers, attributes), every history entry with its hashes,
    every deadline and every outbox alert. Confidential petitioners are included:
    the export is for moving a case between RRM installations, not for publication.

    Args:
        engine: The engine holding the case.
        ref: The case id or external reference.

    Raises:
        CaseNotFound: If no case has that id or reference.

    .. versionadded:: 0.2.0
    """
    case = engine.get(ref)
    plain = _plain(case)
    body = {key: plain.get(key) for key in _EXPORT_ORDER}
    body["workflow"] = case.workflow_id
    body["claim"] = case.attributes.get("claim")
    history = [_plain(e) for e in engine.history(case.case_id)]
    for entry in history:
        del entry["case_id"]
    return {
        "format": EXPORT_FORMAT,
        "case": body,
        "history": history,
        "deadlines": plain["deadlines"],
        "alerts": [_plain(a) for a in engine.alerts(case_id=case.case_id)],
    }


# -- report ---------------------------------------------------------------------


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class ImportedCase:
    """What an import did with one document.

    Attributes:
        external_ref: The case's reference.
        case_id: The id of the case in this engine (new ids are minted on import).
        outcome: ``imported``, or ``unchanged`` when the case was already there
            with the same history.
        events_replayed: History entries replayed through the engine (0 when
            unchanged).
        events_skipped: Entries left for the engine to re-derive
            (``deadline_missed``).
        source: The document's name, when the caller gave ``sources``.
    """

    external_ref: str
    case_id: str
    outcome: Literal["imported", "unchanged"]
    events_replayed: int
    events_skipped: int
    source: str | None = None


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class ImportReport:
    """The outcome of ``import_cases``, one entry per document in order."""

    cases: tuple[ImportedCase, ...]

    @property
    def imported(self) -> int:
        """How many documents created a case."""
        return sum(c.outcome == "imported" for c in self.cases)

    @property
    def unchanged(self) -> int:
        """How many documents matched a case that was already there."""
        return sum(c.outcome == "unchanged" for c in self.cases)


# -- reading documents ------------------------------------------------------------


class _Malformed(Exception):  # an internal signal; becomes InvalidInput
    def __init__(self, path: str, reason: str) -> None:
        super().__init__(path, reason)
        self.path = path
        self.reason = reason


def _obj(value: object, path: str, keys: frozenset[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise _Malformed(path, "must be a JSON object")
    unknown = sorted(set(value) - keys)
    if unknown:
        where = unknown[0] if path == "(document)" else f"{path}.{unknown[0]}"
        raise _Malformed(where, "is not a known field")
    return value


def _list(value: object, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise _Malformed(path, "must be a JSON array")
    return value


def _text(m: Mapping[str, Any], key: str, path: str, default: str | None = None) -> str:
    value = m.get(key, default)
    if value is None:
        raise _Malformed(f"{path}.{key}", "is required")
    if not isinstance(value, str):
        raise _Malformed(f"{path}.{key}", "must be text")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _Malformed(f"{path}.{key}", "is not valid text") from None
    return value


def _instant(m: Mapping[str, Any], key: str, path: str) -> datetime:
    text = _text(m, key, path)
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise _Malformed(
            f"{path}.{key}", f"{text!r} is not an ISO 8601 date and time"
        ) from None
    try:
        return require_aware(f"{path}.{key}", value).astimezone(UTC)
    except InvalidInput as exc:
        raise _Malformed(exc.field, exc.reason) from None


def _day(value: object, path: str) -> date:
    if not isinstance(value, str):
        raise _Malformed(path, "must be a date (YYYY-MM-DD)")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise _Malformed(path, f"{value!r} is not a date (YYYY-MM-DD)") from None


def _texts(value: object, path: str) -> tuple[str, ...]:
    items = _list(value, path)
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise _Malformed(f"{path}[{i}]", "must be text")
    return tuple(items)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Step:
    """One history entry of a document, read and checked for shape."""

    path: str
    position: int
    event: str
    role: str
    actor: str
    reason: str
    payload: dict[str, JSONValue]
    at: datetime
    key: str | None = None
    to_state: str | None = None
    deadline: str = ""
    new_due: date | None = None
    assigned: tuple[tuple[str, str], ...] = ()
    removed: tuple[str, ...] = ()

    def label(self, where: str) -> str:
        return f"event {self.position} ({self.event}) of {where}"


def _read_step(raw: object, path: str, position: int, *, export: bool) -> _Step:
    m = _obj(raw, path, _ENTRY_KEYS if export else _EVENT_KEYS)
    payload = m.get("payload", {})
    if not isinstance(payload, Mapping):
        raise _Malformed(f"{path}.payload", "must be a JSON object")
    key = m.get("idempotency_key")
    if key is not None and not isinstance(key, str):
        raise _Malformed(f"{path}.idempotency_key", "must be text or null")
    role = _text(m, "role", path)
    step = _Step(
        path=path,
        position=position,
        event=_text(m, "event", path),
        role=role,
        actor=_text(m, "actor", path, f"import:{role}"),
        reason=_text(m, "reason", path, ""),
        payload=dict(payload),
        at=_instant(m, "occurred_at" if export else "at", path),
        key=key,
        to_state=_text(m, "to_state", path) if export else None,
    )
    return _engine_fields(step)


def _engine_fields(step: _Step) -> _Step:
    """Read the payload of an entry the engine writes (deadline change, assignment)."""
    p, path = step.payload, f"{step.path}.payload"
    if step.event in _DEADLINE_EVENTS:
        deadline = _text(p, "deadline", path)
        new_due = None
        if step.event == "deadline_extended":
            new_due = _day(p.get("new_due"), f"{path}.new_due")
        return dataclasses.replace(step, deadline=deadline, new_due=new_due)
    if step.event == _ASSIGNED:
        pairs = []
        for i, item in enumerate(_texts(p.get("assigned", []), f"{path}.assigned")):
            officer, sep, role = item.partition(":")
            if not sep or not officer or not role:
                raise _Malformed(f"{path}.assigned[{i}]", "must be 'officer_id:role'")
            pairs.append((officer, role))
        removed = _texts(p.get("removed", []), f"{path}.removed")
        return dataclasses.replace(step, assigned=tuple(pairs), removed=removed)
    return step


@dataclass(frozen=True, slots=True, kw_only=True)
class _Document:
    """A case document, read: who, what, and the steps to replay."""

    where: str
    source: str | None
    ref: str
    workflow: str
    workflow_version: int | None
    initiation: str | None
    complainant: str
    respondent: str
    facility: Facility
    claim: Claim
    petitioners: tuple[Petitioner, ...]
    officers: tuple[Officer, ...]
    steps: tuple[_Step, ...]
    final_state: str | None


def _read_facility(raw: object, respondent: str) -> Facility:
    path = "case.facility"
    keys = frozenset({"facility_id", "name", "owner", "country", "city", "region",
                      "sector"})  # fmt: skip
    m = _obj(raw, path, keys)
    try:
        country = v.party(f"{path}.country", _text(m, "country", path, respondent))
    except InvalidInput as exc:
        raise _Malformed(exc.field, exc.reason) from None
    return Facility(
        facility_id=_text(m, "facility_id", path), name=_text(m, "name", path),
        owner=_text(m, "owner", path), country=country,
        city=_text(m, "city", path, ""), region=_text(m, "region", path, ""),
        sector=_text(m, "sector", path, ""),
    )  # fmt: skip


def _read_claim(raw: object) -> Claim:
    path = "case.claim"
    keys = frozenset({"basis", "sector_category", "legal_provisions", "nlrb_order",
                      "alleged_conduct_from"})  # fmt: skip
    m = _obj(raw, path, keys)
    since = m.get("alleged_conduct_from")
    return Claim(
        basis=_text(m, "basis", path),
        sector_category=_text(m, "sector_category", path),
        legal_provisions=_texts(
            m.get("legal_provisions", []), f"{path}.legal_provisions"
        ),
        nlrb_order=_text(m, "nlrb_order", path, ""),
        alleged_conduct_from=(
            None if since is None else _day(since, f"{path}.alleged_conduct_from")
        ),
    )


def _read_people(
    m: Mapping[str, Any],
) -> tuple[tuple[Petitioner, ...], tuple[Officer, ...]]:
    petitioners = []
    for i, raw in enumerate(_list(m.get("petitioners", []), "case.petitioners")):
        path = f"case.petitioners[{i}]"
        p = _obj(raw, path, frozenset({"name", "confidential", "contact"}))
        confidential = p.get("confidential", False)
        if not isinstance(confidential, bool):
            raise _Malformed(f"{path}.confidential", "must be true or false")
        petitioners.append(
            Petitioner(
                name=_text(p, "name", path),
                confidential=confidential,
                contact=_text(p, "contact", path, ""),
            )
        )
    officers = []
    for i, raw in enumerate(_list(m.get("officers", []), "case.officers")):
        path = f"case.officers[{i}]"
        o = _obj(raw, path, frozenset(_OFFICER_FIELDS))
        fields = {k: _text(o, k, path, d) for k, d in _OFFICER_FIELDS.items()}
        officers.append(Officer(**fields))
    return tuple(petitioners), tuple(officers)


def _read_document(raw: object, where: str, source: str | None) -> _Document:
    if not isinstance(raw, Mapping):
        raise _Malformed("(document)", "must be a JSON object")
    fmt = raw.get("format")
    if not isinstance(fmt, str) or fmt not in {EXPORT_FORMAT, HISTORY_FORMAT}:
        raise _Malformed(
            "format", f"must be {EXPORT_FORMAT!r} or {HISTORY_FORMAT!r}, not {fmt!r}"
        )
    export = fmt == EXPORT_FORMAT
    top = {"format", "case", "history", "deadlines", "alerts"} if export else {
        "format", "case", "events"}  # fmt: skip
    _obj(raw, "(document)", frozenset(top))
    m = _obj(raw.get("case"), "case", _EXPORT_CASE_KEYS if export else _CASE_KEYS)
    version = m.get("workflow_version")
    if version is not None and type(version) is not int:
        raise _Malformed("case.workflow_version", "must be a whole number")
    listed = "history" if export else "events"
    entries = _list(raw.get(listed), listed)
    if not entries:
        raise _Malformed(listed, "must start with the event that opened the case")
    steps = tuple(
        _read_step(e, f"{listed}[{i}]", i + 1, export=export)
        for i, e in enumerate(entries)
    )
    respondent = _text(m, "respondent", "case")
    petitioners, officers = _read_people(m)
    initiation = m.get("initiation")
    if initiation is not None and not isinstance(initiation, str):
        raise _Malformed("case.initiation", "must be text")
    return _Document(
        where=where, source=source, ref=_text(m, "external_ref", "case"),
        workflow=_text(m, "workflow", "case"), workflow_version=version,
        initiation=initiation, complainant=_text(m, "complainant", "case"),
        respondent=respondent, facility=_read_facility(m.get("facility"), respondent),
        claim=_read_claim(m.get("claim")), petitioners=petitioners, officers=officers,
        steps=steps, final_state=_text(m, "state", "case") if export else None,
    )  # fmt: skip


# -- the scratch store ------------------------------------------------------------


@final
class _ScratchCases:
    """Cases of one import held in memory; facts about other cases come from the engine.

    The facility registry and earlier determinations are read from the real
    database, so a dry run refuses what the real replay would refuse.
    """

    def __init__(self, engine: CaseEngine) -> None:
        self._engine = engine
        self.cases: dict[str, Case] = {}
        self.entries: dict[str, list[HistoryEntry]] = {}
        self.determinations: list[Determination] = []

    def get(self, case_id: str, *, lock: bool = False) -> Case | None:  # noqa: ARG002
        return self.cases.get(case_id)

    def get_many(self, case_ids: Sequence[str]) -> dict[str, Case]:
        return {i: self.cases[i] for i in case_ids if i in self.cases}

    def get_by_ref(self, external_ref: str) -> Case | None:
        return next(
            (c for c in self.cases.values() if c.external_ref == external_ref), None
        )

    def apply(self, change: CaseChange) -> None:
        case = change.case
        current = self.cases.get(case.case_id)
        version = 0 if current is None else current.version
        if version != change.expected_version:
            raise ConcurrencyConflict(case.case_id, change.expected_version, version)
        self.cases[case.case_id] = case
        self.entries.setdefault(case.case_id, []).append(change.entry)
        if change.determination is not None:
            self.determinations.append(change.determination)

    def history(self, case_id: str) -> list[HistoryEntry]:
        return list(self.entries.get(case_id, ()))

    def last_hash(self, case_id: str) -> str:
        entries = self.entries.get(case_id)
        return entries[-1].hash if entries else GENESIS_HASH

    def entry_by_idempotency_key(self, case_id: str, key: str) -> HistoryEntry | None:
        return next(
            (e for e in self.entries.get(case_id, ()) if e.idempotency_key == key),
            None,
        )

    def facility(self, facility_id: str) -> Facility | None:
        for case in self.cases.values():
            if case.facility.facility_id == facility_id:
                return case.facility
        with self._engine._uow() as uow:  # noqa: SLF001 - read-only, same layer
            return uow.cases.facility(facility_id)

    def save_facility(self, facility: Facility) -> None:
        raise NotImplementedError  # pragma: no cover - no handler saves directly

    def prior_determinations(
        self, *, facility_id: str, owner: str, case_id: str
    ) -> int:
        own = sum(
            d.case_id != case_id and (d.facility_id == facility_id or d.owner == owner)
            for d in self.determinations
        )
        with self._engine._uow() as uow:  # noqa: SLF001 - read-only, same layer
            stored = uow.cases.prior_determinations(
                facility_id=facility_id, owner=owner, case_id=case_id
            )
        return own + stored

    def find(self, query: CaseQuery) -> list[Case]:
        raise NotImplementedError  # pragma: no cover - replays never list cases

    def open_deadlines(self, query: DeadlineQuery) -> list[Deadline]:
        raise NotImplementedError  # pragma: no cover - replays never list deadlines


@final
class _ScratchUnitOfWork:
    """A unit of work over the scratch store; nothing it holds is ever durable."""

    def __init__(self, cases: _ScratchCases) -> None:
        self.cases: CaseRepository = cases
        self._store = cases
        # Replays open cases and record events only; they never touch the outbox.
        self.outbox = cast("OutboxRepository", None)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def commit(self) -> None:
        return None

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        store = self._store
        saved = (dict(store.cases), {k: list(e) for k, e in store.entries.items()})
        count = len(store.determinations)
        try:
            yield
        except BaseException:
            store.cases, store.entries = saved
            del store.determinations[count:]
            raise

    def rollback(self) -> None:
        return None


@final
class _Scratch:
    """The engine's commands, applied to the scratch store at one fixed instant.

    The handlers are called directly rather than through a second ``CaseEngine``,
    so a dry run neither logs case events nor notifies the host's subscribers.
    """

    def __init__(self, engine: CaseEngine) -> None:
        self._workflows = engine.workflows
        self._now = require_aware("now", engine.clock.now()).astimezone(UTC)
        self.store = _ScratchCases(engine)
        self._uow = _ScratchUnitOfWork(self.store)

    def _apply(self, change: CaseChange) -> Case:
        self.store.apply(change)
        return change.case

    def open_case(self, cmd: OpenCase) -> Case:
        # The reference doubles as the case id, so errors name the case readably.
        return self._apply(
            handlers.open_case(
                self._uow, self._workflows, cmd, case_id=cmd.external_ref, now=self._now
            )
        )

    def fire(self, cmd: FireEvent) -> Case:
        result = handlers.fire_event(self._uow, self._workflows, cmd, now=self._now)
        return result if isinstance(result, Case) else self._apply(result)

    def extend(self, cmd: ExtendDeadline) -> Case:
        return self._change(cmd)

    def pause(self, cmd: PauseDeadline) -> Case:
        return self._change(cmd)

    def resume(self, cmd: ResumeDeadline) -> Case:
        return self._change(cmd)

    def _change(self, cmd: ExtendDeadline | PauseDeadline | ResumeDeadline) -> Case:
        return self._apply(
            handlers.change_deadline(self._uow, self._workflows, cmd, now=self._now)
        )

    def assign(self, cmd: AssignOfficers) -> Case:
        return self._apply(
            handlers.assign_officers(self._uow, self._workflows, cmd, now=self._now)
        )


# -- replay -----------------------------------------------------------------------


def _initiation(engine: CaseEngine, doc: _Document) -> str:
    """Return the way the case was opened, named by the first event."""
    opening = doc.steps[0]
    try:
        spec = engine.workflows.get(doc.workflow, doc.workflow_version)
    except RRMError as exc:
        raise _Malformed("case.workflow", str(exc)) from None
    by_event = {o.event: name for name, o in spec.openings.items()}
    found = by_event.get(opening.event)
    if found is None or doc.initiation not in {None, found}:
        named = spec.openings.get(doc.initiation or "")
        expected = named.event if named else " or ".join(sorted(by_event))
        raise _Malformed(
            f"{opening.path}.event",
            f"the first event must open the case ({expected}), not {opening.event!r}",
        )
    return found


def _initial_officers(doc: _Document) -> tuple[Officer, ...]:
    """Officers on the case when it opened: those no later assignment touched."""
    assigned = {pair for s in doc.steps for pair in s.assigned}
    removed = {officer for s in doc.steps for officer in s.removed}
    return tuple(
        o
        for o in doc.officers
        if (o.officer_id, o.role) not in assigned and o.officer_id not in removed
    )


def _opening(doc: _Document, initiation: str) -> OpenCase:
    first = doc.steps[0]
    return OpenCase(
        workflow=doc.workflow,
        workflow_version=doc.workflow_version,
        initiation=initiation,
        complainant=doc.complainant,
        respondent=doc.respondent,
        facility=doc.facility,
        claim=doc.claim,
        petitioners=doc.petitioners,
        officers=_initial_officers(doc),
        external_ref=doc.ref,
        actor=first.actor,
        role=first.role,
        reason=first.reason,
        payload=first.payload,
        at=first.at,
    )


class _Who(TypedDict):
    """The fields every command of a replayed step shares."""

    case_id: str
    actor: str
    role: str
    reason: str


def _apply_step(
    target: CaseEngine | _Scratch, doc: _Document, case_id: str, s: _Step
) -> Case:
    common = _Who(case_id=case_id, actor=s.actor, role=s.role, reason=s.reason)
    if s.event == "deadline_extended":
        assert s.new_due is not None  # noqa: S101 - _engine_fields read it
        return target.extend(
            ExtendDeadline(key=s.deadline, new_date=s.new_due, at=s.at, **common)
        )
    if s.event == "deadline_paused":
        return target.pause(PauseDeadline(key=s.deadline, at=s.at, **common))
    if s.event == "deadline_resumed":
        return target.resume(ResumeDeadline(key=s.deadline, at=s.at, **common))
    if s.event == _ASSIGNED:
        known = {(o.officer_id, o.role): o for o in doc.officers}
        assign = tuple(
            known.get(pair) or Officer(officer_id=pair[0], role=pair[1])
            for pair in s.assigned
        )
        return target.assign(AssignOfficers(assign=assign, remove=s.removed, **common))
    return target.fire(
        FireEvent(
            event=s.event, payload=s.payload, idempotency_key=s.key, at=s.at, **common
        )
    )


def _check_step(doc: _Document, s: _Step, case: Case) -> None:
    """Refuse a replay that does not reproduce what the record says happened."""
    # Assignments are replayed last (see _ordered), after the state moved on.
    if s.to_state not in {None, case.state} and s.event != _ASSIGNED:
        raise InvalidInput(
            s.path,
            f"{s.label(doc.where)}: the record says the case moved to "
            f"{s.to_state!r}, the replay gives {case.state!r}",
        )
    if s.event not in _DEADLINE_EVENTS:
        return
    moved = s.payload.get("moved")
    expected = {s.deadline: s.payload.get("new_due")}
    expected.update(moved if isinstance(moved, Mapping) else {})
    for key, due in expected.items():
        deadline = case.deadline(key)
        got = deadline.due_date.isoformat() if deadline else None
        if due is not None and got != due:
            raise InvalidInput(
                s.path,
                f"{s.label(doc.where)}: the record says {key!r} became due on "
                f"{due}, the replay gives {got}",
            )


def _ordered(doc: _Document) -> tuple[list[_Step], int]:
    """Return the steps to replay after the opening, and how many are skipped.

    Assignments go last: the engine dates them now (``AssignOfficers`` has no
    ``at``), and events dated earlier cannot follow them.
    """
    rest = [s for s in doc.steps[1:] if s.event not in _SKIPPED]
    timed = [s for s in rest if s.event != _ASSIGNED]
    assigns = [s for s in rest if s.event == _ASSIGNED]
    return timed + assigns, len(doc.steps) - 1 - len(rest)


def _replay(target: CaseEngine | _Scratch, doc: _Document, initiation: str) -> Case:
    steps, _ = _ordered(doc)
    first = doc.steps[0]
    case = _guard(doc, first, lambda: target.open_case(_opening(doc, initiation)))
    _check_step(doc, first, case)
    case_id = case.case_id
    for s in steps:
        case = _guard(doc, s, partial(_apply_step, target, doc, case_id, s))
        _check_step(doc, s, case)
    if doc.final_state is not None and case.state != doc.final_state:
        raise InvalidInput(
            "case.state",
            f"{doc.where} says the case is in state {doc.final_state!r}, "
            f"its history replays to {case.state!r}",
        )
    return case


def _guard(doc: _Document, s: _Step, action: Callable[[], Case]) -> Case:
    try:
        return action()
    except RRMError as exc:
        raise InvalidInput(s.path, f"{s.label(doc.where)}: {exc}") from exc


# -- import -----------------------------------------------------------------------


def _mismatch(s: _Step, e: HistoryEntry, *, timed: bool) -> str | None:
    """Say how a stored entry differs from a document's step, or return None."""
    if e.event != s.event:
        return f"the stored case has {e.event!r} there"
    if timed and e.occurred_at.astimezone(UTC) != s.at:
        return f"the stored case has it at {e.occurred_at.astimezone(UTC).isoformat()}"
    if e.role != s.role:
        return f"the stored case has it by the role {e.role!r}"
    stored = dict(e.payload)
    if s.event in _DEADLINE_EVENTS or s.event == _ASSIGNED:
        # The engine writes these payloads; a document may give only their inputs.
        same = all(stored.get(k) == value for k, value in s.payload.items())
    else:
        same = stored == s.payload
    return None if same else f"the stored case has the payload {stored!r}"


def _difference(doc: _Document, stored: list[HistoryEntry]) -> None:
    """Refuse a document whose history is not the stored case's (or its start).

    Lapses are compared on neither side (the engine re-derives them), and
    assignments are compared in order but without their times.
    """
    kept = [e for e in stored if e.event not in _SKIPPED]
    steps = [s for s in doc.steps if s.event not in _SKIPPED]
    for timed in (True, False):
        mine = [s for s in steps if (s.event != _ASSIGNED) is timed]
        theirs = [e for e in kept if (e.event != _ASSIGNED) is timed]
        for i, s in enumerate(mine):
            why = (
                "the stored case has no such event"
                if i >= len(theirs)
                else _mismatch(s, theirs[i], timed=timed)
            )
            if why is not None:
                raise InvalidInput(
                    s.path,
                    f"{s.label(doc.where)}: case {doc.ref!r} already exists with a "
                    f"different history: {why}. Nothing was imported.",
                )


def _existing(engine: CaseEngine, ref: str) -> Case | None:
    try:
        case = engine.get(ref)
    except CaseNotFound:
        return None
    return case if case.external_ref == ref else None


@dataclass(frozen=True, slots=True, kw_only=True)
class _Plan:
    doc: _Document
    initiation: str
    existing: Case | None
    replay: bool


def _read_all(
    engine: CaseEngine,
    documents: Sequence[Mapping[str, Any]],
    sources: Sequence[str] | None,
) -> list[tuple[_Document, str]]:
    if isinstance(documents, str | bytes | Mapping) or not isinstance(
        documents, Sequence
    ):
        raise InvalidInput("documents", "must be a list of case documents")
    if sources is not None and (
        isinstance(sources, str) or len(sources) != len(documents)
    ):
        raise InvalidInput("sources", "must name each document, in the same order")
    read = []
    for i, raw in enumerate(documents):
        source = None if sources is None else str(sources[i])
        where = source or f"document {i + 1}"
        try:
            doc = _read_document(raw, where, source)
            read.append((doc, _initiation(engine, doc)))
        except _Malformed as exc:
            raise InvalidInput(exc.path, f"{exc.reason} (in {where})") from None
    return read


def _plan(engine: CaseEngine, read: list[tuple[_Document, str]]) -> list[_Plan]:
    """Check every document against the database and a dry run; write nothing."""
    scratch = _Scratch(engine)
    plans: list[_Plan] = []
    for doc, initiation in read:
        existing = _existing(engine, doc.ref)
        if existing is not None:
            if existing.workflow_id != doc.workflow:
                raise InvalidInput(
                    "case.workflow",
                    f"case {doc.ref!r} already exists under the workflow "
                    f"{existing.workflow_id!r}, not {doc.workflow!r} (in {doc.where})",
                )
            _difference(doc, engine.history(existing.case_id))
        elif scratch.store.get_by_ref(doc.ref) is not None:
            # The same case twice in one import: the second copy must agree.
            _difference(doc, scratch.store.history(doc.ref))
        else:
            _replay(scratch, doc, initiation)
        replay = existing is None and not any(p.doc.ref == doc.ref for p in plans)
        plans.append(
            _Plan(doc=doc, initiation=initiation, existing=existing, replay=replay)
        )
    return plans


def import_cases(
    engine: CaseEngine,
    documents: Sequence[Mapping[str, Any]],
    *,
    sources: Sequence[str] | None = None,
) -> ImportReport:
    """Import cases with their history, replaying each event at its recorded time.

    Every document (``rrm-case/1`` or ``rrm-history/1``) is read and replayed into a
    scratch store first; only when all of them replay cleanly are they replayed
    into the engine. A case whose external reference exists already is left alone
    if its history matches the document (or starts with it), so importing the same
    files twice changes nothing.

    Args:
        engine: The engine to import into.
        documents: Parsed JSON documents, one case each.
        sources: Names of the documents (e.g. file names), used in messages and
            in the report.

    Returns:
        One entry per document, in order.

    Raises:
        InvalidInput: A document is malformed (``field`` is its JSON path), has a
            step the workflow refuses (``field`` is ``events[i]`` or
            ``history[i]``, the message counts events from 1 and gives the
            engine's reason), or differs from a case already stored under its
            reference. Nothing is written.

    .. versionadded:: 0.2.0
    """
    plans = _plan(engine, _read_all(engine, documents, sources))
    made: dict[str, Case] = {}
    for p in plans:
        if p.replay:
            made[p.doc.ref] = _replay(engine, p.doc, p.initiation)
    results = []
    for p in plans:
        steps, skipped = _ordered(p.doc)
        case = p.existing or made[p.doc.ref]
        results.append(
            ImportedCase(
                external_ref=p.doc.ref,
                case_id=case.case_id,
                outcome="imported" if p.replay else "unchanged",
                events_replayed=len(steps) + 1 if p.replay else 0,
                events_skipped=skipped if p.replay else 0,
                source=p.doc.source,
            )
        )
    return ImportReport(cases=tuple(results))
