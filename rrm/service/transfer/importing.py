"""Import: the report, checking every document and a dry run, then the replay."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import TYPE_CHECKING, Any, Literal, final

from rrm.errors import CaseNotFound, InvalidInput
from rrm.service.transfer.documents import (
    _ASSIGNED,
    _DEADLINE_EVENTS,
    _LAPSES,
    _Document,
    _Malformed,
    _read_document,
    _Step,
)
from rrm.service.transfer.live import _Live
from rrm.service.transfer.replay import _initiation, _ordered, _replay
from rrm.service.transfer.scratch import _Scratch

if TYPE_CHECKING:
    from rrm.domain.case import Case, HistoryEntry
    from rrm.service.engine import CaseEngine

__all__ = ["ImportReport", "ImportedCase", "import_cases"]

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
        events_skipped: Entries not replayed: always 0 since lapses
            (``deadline_missed``) are replayed as recorded.
        source: The document's name, when the caller gave ``sources``.
        unknown_steps: Keys of the deadlines whose step the record lacks (past
            due, neither met nor lapsed), marked unknown by this import: no tick
            takes their lapse action; the officers are alerted instead.

    .. versionchanged:: 0.5.0 ``unknown_steps``; ``deadline_missed`` is replayed.
    """

    external_ref: str
    case_id: str
    outcome: Literal["imported", "unchanged"]
    events_replayed: int
    events_skipped: int
    source: str | None = None
    unknown_steps: tuple[str, ...] = ()


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

    Lapses and unknown steps are compared on neither side (an earlier import may
    have marked a step unknown, or left a lapse to the next tick, where the
    document records it), and assignments are compared in order but without
    their times.
    """
    kept = [e for e in stored if e.event not in _LAPSES]
    steps = [s for s in doc.steps if s.event not in _LAPSES]
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
    into the engine, each case in one transaction. A case whose external reference
    exists already is left alone if its history matches the document (or starts
    with it), so importing the same files twice changes nothing.

    Lapses the record holds (``deadline_missed``) are replayed as the sweep wrote
    them, so an imported case ends as the same history lived through with ticks
    would. A deadline still running past its due date after the replay is a step
    the record lacks, not a lapse: it is marked unknown (one audited
    ``step_unknown`` entry each, see :mod:`rrm.domain.unknown`), no tick takes its
    lapse action, and the officers are alerted to record the step or the lapse.

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
    made: dict[str, tuple[Case, tuple[str, ...]]] = {}
    for p in plans:
        if p.replay:
            made[p.doc.ref] = _import_one(engine, p)
    results = []
    for p in plans:
        case, unknown = made.get(p.doc.ref) or (p.existing, ())
        assert case is not None  # noqa: S101 - planned: existing, or made above
        results.append(
            ImportedCase(
                external_ref=p.doc.ref,
                case_id=case.case_id,
                outcome="imported" if p.replay else "unchanged",
                events_replayed=len(_ordered(p.doc)) + 1 if p.replay else 0,
                events_skipped=0,
                source=p.doc.source,
                unknown_steps=unknown if p.replay else (),
            )
        )
    return ImportReport(cases=tuple(results))


def _import_one(engine: CaseEngine, plan: _Plan) -> tuple[Case, tuple[str, ...]]:
    """Replay one planned case and mark the steps it lacks, in one transaction."""
    with engine.uow_factory() as uow:
        live = _Live(engine, uow)
        case = _replay(live, plan.doc, plan.initiation)
        case, unknown = live.mark_lacking(case)
        uow.commit()
    for change in live.changes:
        engine._after(change)  # noqa: SLF001 - the engine's log lines and subscribers
    return case, unknown
