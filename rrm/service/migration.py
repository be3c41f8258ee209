"""Move live cases to a newer version of their workflow by a reviewed state mapping.

The mapping is data (``<workflow-id>/migrate-v<from>-to-v<to>.toml``). A migration
is checked whole before anything is written: if any case of the old version is in
a state the mapping leaves out, nothing moves. Each case then moves in its own
transaction with one audited ``workflow_migrated`` entry; a migration interrupted
half-way is finished by running it again (moved cases are on the new version).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, final

from rrm.errors import InvalidInput
from rrm.service import handlers
from rrm.service.ports import CaseQuery
from rrm.service.webhooks import record_change

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from datetime import date, datetime

    from rrm.domain.case import Case
    from rrm.service.ports import CaseChange, UnitOfWork, UnitOfWorkFactory
    from rrm.workflow.migration import MigrationMap
    from rrm.workflow.registry import Workflows

__all__ = [
    "CaseMigration",
    "DeadlineMove",
    "MigrationOrder",
    "MigrationReport",
    "migrate",
]

_PAGE = 500


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class DeadlineMove:
    """What a migration does with one open deadline.

    Attributes:
        key: The deadline's key before the move.
        change: ``recomputed`` (a new due date under the new rules),
            ``unchanged`` (recomputed to the same date, or kept as agreed),
            or ``cancelled`` (the new version holds no such clock in the new state).
        was_due: Its due date before.
        now_due: Its due date after, or ``None`` when cancelled.
        explanation: Why it falls on that date now.
    """

    key: str
    change: Literal["recomputed", "unchanged", "cancelled"]
    was_due: date
    now_due: date | None
    explanation: str


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class CaseMigration:
    """One case's move (done, or only planned in a dry run)."""

    case_id: str
    external_ref: str
    from_state: str
    to_state: str
    deadlines: tuple[DeadlineMove, ...]


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class MigrationReport:
    """The outcome of a migration, one entry per case of the old version."""

    workflow_id: str
    from_version: int
    to_version: int
    mapping_file: str
    mapping_sha256: str
    dry_run: bool
    cases: tuple[CaseMigration, ...]

    @property
    def moved(self) -> int:
        """How many cases moved (0 in a dry run)."""
        return 0 if self.dry_run else len(self.cases)


def _pages(uow_factory: UnitOfWorkFactory, workflow_id: str) -> Iterator[list[Case]]:
    after: tuple[datetime | str, str] | None = None
    while True:
        with uow_factory(read_only=True) as uow:
            page = uow.cases.find(
                CaseQuery(
                    workflow_id=workflow_id, order="oldest", after=after, limit=_PAGE
                )
            )
        if not page:
            return
        yield page
        after = (page[-1].opened_at, page[-1].case_id)


def _summary(case: Case, change: CaseChange) -> CaseMigration:
    moves = []
    new = {d.key: d for d in change.deadlines if d.opened_seq == change.entry.seq}
    payload = change.entry.payload.get("deadlines")
    mapped = payload if isinstance(payload, dict) else {}
    for old in (d for d in case.deadlines if d.is_open):
        info = mapped.get(old.key)
        key = info.get("as") if isinstance(info, dict) else None
        again = new.get(key) if isinstance(key, str) else None
        if again is None:
            moves.append(
                DeadlineMove(
                    key=old.key,
                    change="cancelled",
                    was_due=old.due_date,
                    now_due=None,
                    explanation=f"{change.case.state} holds no such clock in "
                    f"v{change.case.workflow_version}",
                )
            )
            continue
        moves.append(
            DeadlineMove(
                key=old.key,
                change="unchanged" if again.due_date == old.due_date else "recomputed",
                was_due=old.due_date,
                now_due=again.due_date,
                explanation=again.explanation,
            )
        )
    return CaseMigration(
        case_id=case.case_id,
        external_ref=case.external_ref,
        from_state=case.state,
        to_state=change.case.state,
        deadlines=tuple(moves),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class MigrationOrder:
    """Who moves the cases, why, and with which mapping."""

    mapping: MigrationMap
    actor: str
    role: str
    reason: str
    now: datetime


def _plan(
    uow: UnitOfWork, workflows: Workflows, case: Case, order: MigrationOrder
) -> CaseChange:
    return handlers.migrate_case(
        uow,
        workflows,
        case,
        order.mapping,
        actor=order.actor,
        role=order.role,
        reason=order.reason,
        now=order.now,
    )


def _write(
    uow_factory: UnitOfWorkFactory,
    workflows: Workflows,
    planned: Case,
    order: MigrationOrder,
) -> tuple[Case, CaseChange] | None:
    """Move one case in its own transaction, decided again on the stored case.

    Returns None when the case is no longer on the old version (moved by a
    concurrent run).
    """
    with uow_factory() as uow:
        case = uow.cases.get(planned.case_id, lock=True)
        if case is None or case.workflow_version != order.mapping.from_version:
            return None
        change = _plan(uow, workflows, case, order)
        uow.cases.apply(change)
        record_change(uow, change, now=order.now)
        uow.commit()
    return case, change


def migrate(
    uow_factory: UnitOfWorkFactory,
    workflows: Workflows,
    order: MigrationOrder,
    *,
    dry_run: bool,
    on_change: Callable[[CaseChange], None] | None = None,
) -> MigrationReport:
    """Plan every case of the old version, then (unless *dry_run*) move each.

    Raises:
        InvalidInput: If a case is in a state the mapping leaves out (nothing is
            written), or the actor is missing.
    """
    mapping = order.mapping
    unmapped: dict[str, list[str]] = {}
    planned: list[tuple[Case, CaseChange]] = []
    for page in _pages(uow_factory, mapping.workflow_id):
        with uow_factory(read_only=True) as uow:
            for case in page:
                if case.workflow_version != mapping.from_version:
                    continue
                if mapping.target(case.state) is None:
                    unmapped.setdefault(case.state, []).append(case.external_ref)
                    continue
                planned.append((case, _plan(uow, workflows, case, order)))
    if unmapped:
        listed = "; ".join(
            f"{state} ({len(refs)} case(s), e.g. {refs[0]})"
            for state, refs in sorted(unmapped.items())
        )
        raise InvalidInput(
            "states",
            f"refused whole: {mapping.source_file or 'the mapping'} has no target "
            f"for state(s) {listed}; nothing was migrated",
        )
    cases = []
    for case, plan in planned:
        done = (case, plan) if dry_run else _write(uow_factory, workflows, case, order)
        if done is None:
            continue
        if not dry_run and on_change is not None:
            on_change(done[1])
        cases.append(_summary(*done))
    return MigrationReport(
        workflow_id=mapping.workflow_id,
        from_version=mapping.from_version,
        to_version=mapping.to_version,
        mapping_file=f"{mapping.workflow_id}/migrate-v{mapping.from_version}"
        f"-to-v{mapping.to_version}.toml",
        mapping_sha256=mapping.sha256,
        dry_run=dry_run,
        cases=tuple(cases),
    )
