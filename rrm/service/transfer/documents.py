"""The two document formats, and reading one into a checked ``_Document``.

Every shape error is raised as ``_Malformed`` (a JSON path and a reason), which
the import turns into ``InvalidInput`` naming the document.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from rrm.domain.case import (
    Facility,
    JSONValue,
    Officer,
    Petitioner,
    require_aware,
)
from rrm.domain.commands import Claim
from rrm.errors import InvalidInput
from rrm.service import inputs
from rrm.service import validation as v

__all__ = ["EXPORT_FORMAT", "HISTORY_FORMAT"]

EXPORT_FORMAT = "rrm-case/1"
HISTORY_FORMAT = "rrm-history/1"

# Entries the engine writes by itself about one deadline, replayed as it wrote
# them: a lapse the sweep recorded, a step an earlier import found missing.
_LAPSES = frozenset({"deadline_missed", "step_unknown"})
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
     "occurred_at", "recorded_at", "idempotency_key", "prev_hash", "hash", "via",
     "subject"}
)  # fmt: skip
# Officer fields and their defaults (None: required).
_OFFICER_FIELDS: dict[str, str | None] = {
    "officer_id": None, "role": None, "name": "", "email": "", "language": "en",
    "timezone": "",
}  # fmt: skip


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


def _checked(
    check: Callable[[str, object], str],
    m: Mapping[str, Any],
    key: str,
    path: str,
    default: str | None = None,
) -> str:
    """Read text with a check of ``validation`` (a reference, a name), in NFKC."""
    value = _text(m, key, path, default)
    try:
        return check(f"{path}.{key}", value)
    except InvalidInput as exc:
        raise _Malformed(exc.field, exc.reason) from None


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
    due: date | None = None
    assigned: tuple[tuple[str, str], ...] = ()
    removed: tuple[str, ...] = ()

    def label(self, where: str) -> str:
        return f"event {self.position} ({self.event}) of {where}"


def _read_step(raw: object, path: str, position: int, *, export: bool) -> _Step:
    m = _obj(raw, path, _ENTRY_KEYS if export else _EVENT_KEYS)
    payload = m.get("payload", {})
    if not isinstance(payload, Mapping):
        raise _Malformed(f"{path}.payload", "must be a JSON object")
    try:
        v.check_payload(payload, f"{path}.payload")
    except InvalidInput as exc:
        raise _Malformed(exc.field, exc.reason) from None
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
    """Read the payload of an entry the engine writes (deadline, assignment)."""
    p, path = step.payload, f"{step.path}.payload"
    if step.event in _LAPSES:
        due = p.get("due_date")
        return dataclasses.replace(
            step,
            deadline=_text(p, "deadline", path),
            due=None if due is None else _day(due, f"{path}.due_date"),
        )
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
        facility_id=_checked(v.reference, m, "facility_id", path),
        name=_checked(v.name, m, "name", path),
        owner=_checked(v.name, m, "owner", path), country=country,
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
                name=_checked(v.name, p, "name", path),
                confidential=confidential,
                contact=_text(p, "contact", path, ""),
            )
        )
    officers = []
    for i, raw in enumerate(_list(m.get("officers", []), "case.officers")):
        path = f"case.officers[{i}]"
        o = _obj(raw, path, frozenset(_OFFICER_FIELDS))
        fields = {k: _text(o, k, path, d) for k, d in _OFFICER_FIELDS.items()}
        fields["officer_id"] = _checked(v.reference, o, "officer_id", path)
        fields["name"] = _checked(v.optional_name, o, "name", path, "")
        officers.append(Officer(**fields))
    return tuple(petitioners), tuple(officers)


def _read_document(raw: object, where: str, source: str | None) -> _Document:
    if not isinstance(raw, Mapping):
        raise _Malformed("(document)", "must be a JSON object")
    try:
        # Before anything walks it: a host may hand any Python data.
        inputs.check_depth("(document)", raw, max_depth=inputs.MAX_DOCUMENT_DEPTH)
    except InvalidInput as exc:
        raise _Malformed(exc.field, exc.reason) from None
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
        where=where, source=source,
        ref=_checked(v.reference, m, "external_ref", "case"),
        workflow=_text(m, "workflow", "case"), workflow_version=version,
        initiation=initiation, complainant=_text(m, "complainant", "case"),
        respondent=respondent, facility=_read_facility(m.get("facility"), respondent),
        claim=_read_claim(m.get("claim")), petitioners=petitioners, officers=officers,
        steps=steps, final_state=_text(m, "state", "case") if export else None,
    )  # fmt: skip
