"""Re-derive a stored case from its history, and name every row that differs.

The history is the record; the case row, its deadlines, officers, petitioners,
facility and determinations are what the engine derived from it. An insider with
write access to the database can change those rows without touching the
history, so ``rrm audit verify`` replays each history entry through the case's
pinned workflow version (the same handlers that wrote it, at the entry's own
instants, in a scratch store) and compares what comes out with what is stored.
What no event derives (the parties, facility, claim, petitioners and officers
given when the case opened or officers were assigned) is compared with the
salted digests the giving entry sealed (:mod:`rrm.domain.subject`).

The deadline sweep's own bookkeeping (``alerts_through``, ``next_action_at``) is
not history: ``next_action_at`` must be what the deadline's rule gives for the
stored ``alerts_through``, which may not lie in the future.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import Enum
from typing import TYPE_CHECKING, Final

from rrm.domain.case import Case, Deadline, HistoryEntry, JSONValue, Officer
from rrm.domain.commands import AssignOfficers, Claim, FireEvent, OpenCase
from rrm.domain.subject import (
    GROUPS,
    SealedField,
    compare_subject,
    sealed_fields,
    seals,
)
from rrm.domain.unknown import unknown_steps
from rrm.errors import RRMError, StorageError
from rrm.service.handlers import MIGRATED
from rrm.service.transfer.documents import (
    _ASSIGNED,
    _DEADLINE_EVENTS,
    _LAPSES,
    _Malformed,
    _read_step,
    _Step,
)
from rrm.service.transfer.lapses import LAPSED
from rrm.service.transfer.replay import _deadline_step, _Who
from rrm.service.transfer.scratch import _Scratch
from rrm.workflow.clocks import scheduled, spec_key

if TYPE_CHECKING:
    from collections.abc import Mapping

    from rrm.service.engine import CaseEngine
    from rrm.service.ports import Determination

__all__ = ["RowDifference", "newest_seals", "rederive"]

# Deadline fields the history derives, in the order they are reported.
_DEADLINE_FIELDS: Final = (
    "key", "label", "status", "due_date", "due_at", "anchor_event", "anchor_at",
    "counting", "days", "calendar_id", "timezone", "actor", "citation", "evidence",
    "explanation", "opened_seq", "opened_at", "closed_seq", "closed_at",
    "paused_at", "extensions", "lapsed_at",
)  # fmt: skip
_CASE_FIELDS: Final = ("state", "version", "workflow_version", "opened_at",
                       "last_event_at", "updated_at")  # fmt: skip
_TABLE_OF_GROUP: Final = {
    "case": "rrm_case",
    "facility": "rrm_facility",
    "claim": "rrm_case",
    "petitioners": "rrm_petitioner",
    "officers": "rrm_case_officer",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class RowDifference:
    """One stored field that is not what the case's history gives.

    ``table`` and ``field`` name it (``rrm_deadline``, ``respondent_review
    (opened by entry 1).due_date``); ``stored`` and ``derived`` are both values
    as text, ``None`` when a side has no such row or the value cannot be shown
    (a confidential name) or recovered (a sealed digest). ``message`` says it
    in words.

    .. versionadded:: 0.6.0
    """

    table: str
    field: str
    stored: str | None
    derived: str | None
    message: str


def _text(value: object) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Enum):
        return str(value.value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _diff(table: str, field: str, stored: object, derived: object) -> RowDifference:
    s, d = _text(stored), _text(derived)
    return RowDifference(
        table=table,
        field=field,
        stored=s,
        derived=d,
        message=f"{table} {field}: stored {s}, its history gives {d}",
    )


def _same(a: object, b: object) -> bool:
    if isinstance(a, datetime) and isinstance(b, datetime):
        return a == b
    return _text(a) == _text(b)


def _claim(case: Case) -> Claim:
    raw = case.attributes.get("claim")
    m: Mapping[str, JSONValue] = raw if isinstance(raw, dict) else {}
    since = m.get("alleged_conduct_from")
    provisions = m.get("legal_provisions")
    return Claim(
        basis=str(m.get("basis", "")),
        sector_category=str(m.get("sector_category", "")),
        legal_provisions=tuple(str(p) for p in provisions)
        if isinstance(provisions, list)
        else (),
        nlrb_order=str(m.get("nlrb_order") or ""),
        alleged_conduct_from=date.fromisoformat(since)
        if isinstance(since, str)
        else None,
    )


def _first_version(case: Case, entries: list[HistoryEntry]) -> int:
    for e in entries:
        if e.event == MIGRATED and type(e.payload.get("from_version")) is int:
            return int(e.payload["from_version"])  # type: ignore[arg-type]
    return case.workflow_version


def _step(e: HistoryEntry) -> _Step:
    raw = {
        "seq": e.seq,
        "event": e.event,
        "from_state": e.from_state,
        "to_state": e.to_state,
        "actor": e.actor,
        "role": e.role,
        "reason": e.reason,
        "payload": dict(e.payload),
        "occurred_at": e.occurred_at.isoformat(),
        "idempotency_key": e.idempotency_key,
    }
    return _read_step(raw, f"entry {e.seq}", e.seq, export=True)


def _open(scratch: _Scratch, case: Case, first: HistoryEntry, version: int) -> Case:
    # The people are compared with what the entry sealed, not replayed: no
    # rule of the procedure reads them.
    cmd = OpenCase(
        workflow=case.workflow_id,
        workflow_version=version,
        initiation=case.initiation,
        complainant=case.complainant,
        respondent=case.respondent,
        facility=case.facility,
        claim=_claim(case),
        petitioners=(),
        officers=(),
        external_ref=case.external_ref,
        actor=first.actor,
        role=first.role,
        reason=first.reason,
        payload=dict(first.payload),
        at=first.occurred_at,
    )
    return scratch.open_case(cmd, case_id=case.case_id)


def _apply(scratch: _Scratch, case: Case, e: HistoryEntry) -> Case:
    s = _step(e)
    who = _Who(case_id=case.case_id, actor=e.actor, role=e.role, reason=e.reason)
    if s.event in _LAPSES:
        record = scratch.lapse if s.event == LAPSED else scratch.mark
        return record(case.case_id, key=s.deadline, due=s.due, at=s.at)
    if s.event in _DEADLINE_EVENTS:
        return _deadline_step(scratch, s, who)
    if s.event == MIGRATED:
        to = e.payload.get("to_version")
        return scratch.migrate(
            to if type(to) is int else -1,
            sha256=e.payload.get("mapping_sha256"),
            at=s.at,
            **who,
        )
    if s.event == _ASSIGNED:
        # Placeholders: who they are is compared with the seal, not replayed.
        assign = tuple(Officer(officer_id=o, role=r) for o, r in s.assigned)
        return scratch.assign(AssignOfficers(assign=assign, remove=s.removed, **who))
    return scratch.fire(
        FireEvent(
            event=e.event,
            payload=dict(e.payload),
            idempotency_key=e.idempotency_key,
            at=e.occurred_at,
            **who,
        )
    )


def _engine_since(
    derived: Case, stored: Case, options: Mapping[str, list[str]]
) -> Case:
    """Take a stored mark's ``since`` when it is one the engine writes.

    An import marks a step unknown from its own instant; a re-import of that
    export, from the mark's date. Both are the engine's; another is not.
    """
    marks = derived.attributes.get("unknown_steps")
    held = stored.attributes.get("unknown_steps")
    if not (isinstance(marks, dict) and isinstance(held, dict) and options):
        return derived
    merged: dict[str, JSONValue] = dict(marks)
    for key, allowed in options.items():
        mark, kept = marks.get(key), held.get(key)
        if (
            isinstance(mark, dict)
            and isinstance(kept, dict)
            and kept.get("since") in allowed
        ):
            merged[key] = {**mark, "since": kept["since"]}
    attributes = {**derived.attributes, "unknown_steps": merged}
    return dataclasses.replace(derived, attributes=attributes)


@dataclass(slots=True)
class _Replay:
    case: Case
    determinations: list[Determination]
    failure: RowDifference | None = None


def _replay(engine: CaseEngine, stored: Case, entries: list[HistoryEntry]) -> _Replay:
    scratch = _Scratch(engine)
    scratch.store.hidden.update({stored.case_id, stored.external_ref})
    version = _first_version(stored, entries)
    since: dict[str, list[str]] = {}
    case = stored
    for e in entries:
        scratch.at(e.recorded_at)
        try:
            if e.seq == 1:
                case = _open(scratch, stored, e, version)
            else:
                case = _apply(scratch, case, e)
        except StorageError:
            raise  # the database, not the case: no finding about its rows
        except (RRMError, _Malformed) as exc:
            reason = exc.reason if isinstance(exc, _Malformed) else str(exc)
            where = f"{stored.workflow_id} v{case.workflow_version}"
            return _Replay(
                case=case,
                determinations=[],
                failure=RowDifference(
                    table="rrm_case",
                    field=f"replay from entry {e.seq}",
                    stored=e.event,
                    derived=None,
                    message=(
                        f"the stored case cannot be replayed: entry {e.seq} "
                        f"({e.event}) is refused through {where}: {reason}"
                    ),
                ),
            )
        if e.event == "step_unknown":
            key = str(e.payload.get("deadline"))
            d = case.deadline(key)
            options = [e.recorded_at.astimezone(UTC).isoformat()]
            if d is not None:
                options.append(max(e.occurred_at, d.due_at).astimezone(UTC).isoformat())
            since[key] = options
    case = _engine_since(case, stored, since)
    made = scratch.store.determinations(stored.case_id)
    return _Replay(case=case, determinations=made)


def _case_differences(stored: Case, derived: Case) -> list[RowDifference]:
    found = [
        _diff("rrm_case", name, getattr(stored, name), getattr(derived, name))
        for name in _CASE_FIELDS
        if not _same(getattr(stored, name), getattr(derived, name))
    ]
    keys = sorted(set(stored.attributes) | set(derived.attributes))
    for key in keys:
        if key == "claim":
            continue  # given at opening: compared with the seal
        a, b = stored.attributes.get(key), derived.attributes.get(key)
        if not _same(a, b):
            found.append(_diff("rrm_case", f"attributes.{key}", a, b))
    return found


def _name(d: Deadline) -> str:
    return f"deadline {d.key} (opened by entry {d.opened_seq})"


def _deadline_differences(
    engine: CaseEngine, stored: Case, derived: Case
) -> list[RowDifference]:
    found: list[RowDifference] = []
    held = {d.deadline_id: d for d in stored.deadlines}
    made = {d.deadline_id: d for d in derived.deadlines}
    for deadline_id, d in made.items():
        s = held.get(deadline_id)
        if s is None:
            found.append(
                RowDifference(
                    table="rrm_deadline",
                    field=_name(d),
                    stored=None,
                    derived=d.status.value,
                    message=(
                        f"rrm_deadline {_name(d)} is missing: its history gives it, "
                        f"{d.status.value}, due {d.due_date.isoformat()}"
                    ),
                )
            )
            continue
        for name in _DEADLINE_FIELDS:
            a, b = getattr(s, name), getattr(d, name)
            if not _same(a, b):
                found.append(_diff("rrm_deadline", f"{_name(d)}.{name}", a, b))
        found.extend(_bookkeeping(engine, stored, s, d))
    for deadline_id, s in held.items():
        if deadline_id not in made:
            found.append(
                RowDifference(
                    table="rrm_deadline",
                    field=f"deadline {s.key} ({deadline_id})",
                    stored=s.status.value,
                    derived=None,
                    message=(
                        f"rrm_deadline {deadline_id} ({s.key}) is stored but no "
                        "entry of the history opened it"
                    ),
                )
            )
    return found


def _bookkeeping(
    engine: CaseEngine, case: Case, d: Deadline, derived: Deadline
) -> list[RowDifference]:
    """The sweep's fields: not history, but bound to the deadline's rule.

    ``next_action_at`` is checked against the derived deadline with the stored
    ``alerts_through``, so a changed status or due date is named once, where
    it was changed.
    """
    found: list[RowDifference] = []
    now = engine.clock.now()
    through = d.alerts_through
    if through is not None and through > now:
        found.append(
            RowDifference(
                table="rrm_deadline",
                field=f"{_name(d)}.alerts_through",
                stored=_text(through),
                derived=None,
                message=(
                    f"rrm_deadline {_name(d)}.alerts_through: stored "
                    f"{_text(through)}, in the future: alerts owed until then "
                    "would never be sent"
                ),
            )
        )
    if found:
        return found  # its next action follows from the wrong instant: named once
    try:
        spec = engine.workflows.get(case.workflow_id, case.workflow_version)
        rule = spec.deadlines[spec_key(derived.key)]
        calendar = engine.workflows.calendar(derived.calendar_id)
    except (RRMError, KeyError):
        return found
    basis = dataclasses.replace(derived, alerts_through=through)
    allowed = [scheduled(basis, rule, calendar).next_action_at]
    if d.deadline_id in {u.deadline_id for u in unknown_steps(case).values()}:
        # A step the imported record lacks: owed to the sweep from the mark
        # (its one alert), then nothing until an officer records the step.
        allowed = [through, None]
    expected = allowed[0]
    if all(_text(a) != _text(d.next_action_at) for a in allowed):
        found.append(_diff("rrm_deadline", f"{_name(d)}.next_action_at",
                           d.next_action_at, expected))  # fmt: skip
    return found


def _determination_differences(
    stored: list[Determination], derived: list[Determination]
) -> list[RowDifference]:
    found: list[RowDifference] = []
    held = {d.seq: d for d in stored}
    made = {d.seq: d for d in derived}
    for seq in sorted(held.keys() | made.keys()):
        s, d = held.get(seq), made.get(seq)
        field = f"determination of entry {seq}"
        if s is None or d is None:
            message = (
                f"rrm_determination {field} is missing: its history records it"
                if s is None
                else f"rrm_determination {field} is stored but no entry made it"
            )
            found.append(
                RowDifference(
                    table="rrm_determination",
                    field=field,
                    stored=None if s is None else s.facility_id,
                    derived=None if d is None else d.facility_id,
                    message=message,
                )
            )
            continue
        for name in ("facility_id", "owner", "determined_at"):
            a, b = getattr(s, name), getattr(d, name)
            if not _same(a, b):
                found.append(_diff("rrm_determination", f"{field}.{name}", a, b))
    return found


def _subject_differences(
    stored: Case, entries: list[HistoryEntry], facility_seals: list[SealedField]
) -> list[RowDifference]:
    sealed = sealed_fields(entries)
    # The opening sealed the version the case opened on; migrations moved it on.
    opened = dataclasses.replace(
        stored, workflow_version=_first_version(stored, entries)
    )
    findings = compare_subject(
        opened, sealed, groups=[g for g in GROUPS if g != "facility"]
    )
    # The facility's details are the newest opening's on that facility: a later
    # case may have updated them (any of the newest, when several tie).
    seals = facility_seals or [s for s in [sealed.get("facility")] if s is not None]
    checks = [
        compare_subject(stored, {"facility": s}, groups=["facility"]) for s in seals
    ]
    if checks and all(checks):
        findings = checks[0] + findings
    found = []
    for finding in findings:
        table = _TABLE_OF_GROUP[finding.group]
        found.append(
            RowDifference(
                table=table,
                field=finding.field,
                stored=finding.stored,
                derived=finding.recorded,
                message=f"{table} {finding.message}",
            )
        )
    return found


def newest_seals(openings: list[HistoryEntry], facility_id: str) -> list[SealedField]:
    """Return the facility seals of the most recently recorded openings on it.

    Only openings that sealed this facility count: a case row moved onto the
    facility by hand brings no say over its details. Several when openings
    were recorded at the same instant (one import).
    """
    sealed = [
        (e.recorded_at, found)
        for e in openings
        if (found := sealed_fields([e]).get("facility")) is not None
        and seals(found, "facility.facility_id", facility_id)
    ]
    if not sealed:
        return []
    newest = max(at for at, _ in sealed)
    return [found for at, found in sealed if at == newest]


def rederive(
    engine: CaseEngine,
    stored: Case,
    entries: list[HistoryEntry],
    *,
    determinations: list[Determination],
    facility_seals: list[SealedField] | None = None,
) -> list[RowDifference]:
    """Replay *entries* and return every stored row that differs, in report order.

    *stored* is the case as its rows hold it (read without the damage check),
    *entries* its intact history, *determinations* its stored determinations.
    *facility_seals* are the newest seals of the facility's details among all
    its cases (several when they tie); without them, this case's own.
    """
    found = _subject_differences(stored, entries, facility_seals or [])
    replay = _replay(engine, stored, entries)
    if replay.failure is not None:
        return [*found, replay.failure]
    derived = replay.case
    found += _case_differences(stored, derived)
    found += _deadline_differences(engine, stored, derived)
    found += _determination_differences(determinations, replay.determinations)
    return found
