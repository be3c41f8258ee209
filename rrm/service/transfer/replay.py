"""Replay: a document's steps as engine commands, on the database or a scratch store."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING, TypedDict

from rrm.domain.case import Case, Officer
from rrm.domain.commands import (
    AssignOfficers,
    ExtendDeadline,
    FireEvent,
    OpenCase,
    PauseDeadline,
    ResumeDeadline,
)
from rrm.errors import CaseNotFound, InvalidInput, RRMError
from rrm.service import handlers
from rrm.service.handlers import MIGRATED
from rrm.service.transfer.documents import (
    _ASSIGNED,
    _DEADLINE_EVENTS,
    _LAPSES,
    _Document,
    _Malformed,
    _Step,
)
from rrm.service.transfer.lapses import LAPSED

if TYPE_CHECKING:
    from datetime import datetime

    from rrm.service.engine import CaseEngine
    from rrm.service.ports import CaseChange, UnitOfWork
    from rrm.service.transfer.live import _Live
    from rrm.service.transfer.scratch import _Scratch
    from rrm.workflow.registry import Workflows

__all__: list[str] = []  # package-private: used by the import


def _initiation(engine: CaseEngine, doc: _Document) -> str:
    """Return the way the case was opened, named by the first event."""
    opening = doc.steps[0]
    try:
        spec = engine.workflows.get(doc.workflow, _first_version(doc))
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


def _migrations(doc: _Document) -> list[_Step]:
    return [s for s in doc.steps[1:] if s.event == MIGRATED]


def _first_version(doc: _Document) -> int | None:
    """Return the version the case opened on.

    A history that moved to a newer version (``workflow_migrated``) opened on the
    version its first move left; otherwise the document's version (``None``:
    the newest).
    """
    moves = _migrations(doc)
    if not moves:
        return doc.workflow_version
    start = moves[0].payload.get("from_version")
    if type(start) is not int:
        raise _Malformed(
            f"{moves[0].path}.payload.from_version",
            "must name the version the case left (a whole number)",
        )
    return start


def _opening(doc: _Document, initiation: str) -> OpenCase:
    first = doc.steps[0]
    return OpenCase(
        workflow=doc.workflow,
        workflow_version=_first_version(doc),
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
    target: _Live | _Scratch, doc: _Document, case_id: str, s: _Step
) -> Case:
    if s.event in _LAPSES:
        # Written by the engine: replayed as it wrote them, at the recorded time.
        record = target.lapse if s.event == LAPSED else target.mark
        return record(case_id, key=s.deadline, due=s.due, at=s.at)
    common = _Who(case_id=case_id, actor=s.actor, role=s.role, reason=s.reason)
    if s.event in _DEADLINE_EVENTS:
        return _deadline_step(target, s, common)
    if s.event == MIGRATED:
        # A move to a newer version, by the reviewed mapping the record names.
        sha256 = s.payload.get("mapping_sha256")
        to = _to_version(doc, s)
        return target.migrate(to, sha256=sha256, at=s.at, **common)
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


def _deadline_step(target: _Live | _Scratch, s: _Step, common: _Who) -> Case:
    if s.event == "deadline_extended":
        assert s.new_due is not None  # noqa: S101 - _engine_fields read it
        return target.extend(
            ExtendDeadline(key=s.deadline, new_date=s.new_due, at=s.at, **common)
        )
    if s.event == "deadline_paused":
        return target.pause(PauseDeadline(key=s.deadline, at=s.at, **common))
    return target.resume(ResumeDeadline(key=s.deadline, at=s.at, **common))


def migration_change(
    uow: UnitOfWork,
    workflows: Workflows,
    case_id: str,
    to_version: int,
    *,
    sha256: object,
    actor: str,
    role: str,
    reason: str,
    at: datetime,
    now: datetime,
) -> CaseChange:
    """Build the change replaying a recorded move to *to_version*.

    The case moves by today's reviewed mapping, which must be the one the record
    names (``mapping_sha256``): a mapping edited since would tell another story.

    Raises:
        CaseNotFound: If the case is not there.
        WorkflowNotFound, InvalidInput: If no mapping moves the case, or not the
            recorded one.
    """
    case = uow.cases.get(case_id, lock=True)
    if case is None:
        raise CaseNotFound(case_id)
    mapping = workflows.migration(case.workflow_id, case.workflow_version, to_version)
    if sha256 is not None and sha256 != mapping.sha256:
        raise InvalidInput(
            "payload.mapping_sha256",
            f"the record moved the case by another mapping than "
            f"{mapping.source_file or 'the one here'} (SHA-256 {sha256!s:.12}..., "
            f"here {mapping.sha256:.12}...)",
        )
    return handlers.migrate_case(
        uow,
        workflows,
        case,
        mapping,
        actor=actor,
        role=role,
        reason=reason,
        now=now,
        at=at,
    )


def _to_version(doc: _Document, s: _Step) -> int:
    value = s.payload.get("to_version")
    if type(value) is not int:
        raise InvalidInput(
            f"{s.path}.payload.to_version",
            f"{s.label(doc.where)}: must name the version the case moved to",
        )
    return value


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


def _ordered(doc: _Document) -> list[_Step]:
    """Return the steps to replay after the opening.

    Assignments go last: the engine dates them now (``AssignOfficers`` has no
    ``at``), and events dated earlier cannot follow them.
    """
    rest = doc.steps[1:]
    timed = [s for s in rest if s.event != _ASSIGNED]
    assigns = [s for s in rest if s.event == _ASSIGNED]
    return timed + assigns


def _replay(target: _Live | _Scratch, doc: _Document, initiation: str) -> Case:
    steps = _ordered(doc)
    first = doc.steps[0]
    case = _guard(doc, first, lambda: target.open_case(_opening(doc, initiation)))
    _check_step(doc, first, case)
    case_id = case.case_id
    for s in steps:
        case = _guard(doc, s, partial(_apply_step, target, doc, case_id, s))
        _check_step(doc, s, case)
    if (
        doc.workflow_version is not None
        and case.workflow_version != doc.workflow_version
    ):
        raise InvalidInput(
            "case.workflow_version",
            f"{doc.where} says the case is on {doc.workflow} "
            f"v{doc.workflow_version}, its history replays to "
            f"v{case.workflow_version}",
        )
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
