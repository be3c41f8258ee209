"""The real replay: a case's whole import in one transaction of the engine's database.

The engine's commands are decided by the same handlers as ``CaseEngine`` uses, on
one unit of work, so a case is imported whole or not at all, and no tick running
meanwhile in another process sees it half-replayed (it would take lapse actions on
deadlines a later step of the record meets, or on steps the record lacks).
"""

from __future__ import annotations

from datetime import UTC
from typing import TYPE_CHECKING, final

from rrm.domain.case import Case, require_aware
from rrm.domain.commands import ResumeDeadline
from rrm.service import handlers
from rrm.service.access import Action
from rrm.service.transfer.lapses import lacking, lapse_change, unknown_change
from rrm.service.transfer.replay import migration_change
from rrm.service.webhooks import record_change

if TYPE_CHECKING:
    from datetime import date, datetime

    from rrm.domain.commands import (
        AssignOfficers,
        ExtendDeadline,
        FireEvent,
        OpenCase,
        PauseDeadline,
    )
    from rrm.service.engine import CaseEngine
    from rrm.service.ports import CaseChange, UnitOfWork

__all__: list[str] = []  # package-private: used by the import


@final
class _Live:
    """The engine's commands on one open unit of work, at one fixed instant.

    Every change is applied and its webhook messages queued in the transaction;
    the caller commits, then hands :attr:`changes` to the engine's log and
    subscribers.
    """

    def __init__(self, engine: CaseEngine, uow: UnitOfWork) -> None:
        self._engine = engine
        self._workflows = engine.workflows
        self._uow = uow
        self._gate = engine.gate(None)
        self.now = require_aware("now", engine.clock.now()).astimezone(UTC)
        self.changes: list[CaseChange] = []

    def _apply(self, change: CaseChange) -> Case:
        self._uow.cases.apply(change)
        record_change(self._uow, change, now=self.now)
        self.changes.append(change)
        return change.case

    def open_case(self, cmd: OpenCase) -> Case:
        new_id = self._engine._new_id()  # noqa: SLF001 - the engine's id factory
        return self._apply(
            handlers.open_case(
                self._uow,
                self._workflows,
                cmd,
                case_id=new_id,
                now=self.now,
                gate=self._gate,
            )
        )

    def fire(self, cmd: FireEvent) -> Case:
        result = handlers.fire_event(
            self._uow, self._workflows, cmd, now=self.now, gate=self._gate
        )
        return result if isinstance(result, Case) else self._apply(result)

    def extend(self, cmd: ExtendDeadline) -> Case:
        return self._change(cmd)

    def pause(self, cmd: PauseDeadline) -> Case:
        return self._change(cmd)

    def resume(self, cmd: ResumeDeadline) -> Case:
        return self._change(cmd)

    def _change(self, cmd: ExtendDeadline | PauseDeadline | ResumeDeadline) -> Case:
        change = handlers.change_deadline(
            self._uow, self._workflows, cmd, now=self.now, gate=self._gate
        )
        case = self._apply(change)
        if isinstance(cmd, ResumeDeadline):
            # As CaseEngine.resume: alerts held back while paused go out.
            for d in change.deadlines:
                self._uow.outbox.resume_deferred(
                    d.deadline_id, due_step_suffix=f"@{d.due_date.isoformat()}"
                )
        return case

    def assign(self, cmd: AssignOfficers) -> Case:
        return self._apply(
            handlers.assign_officers(
                self._uow, self._workflows, cmd, now=self.now, gate=self._gate
            )
        )

    def lapse(self, case_id: str, *, key: str, due: date | None, at: datetime) -> Case:
        return self._apply(
            lapse_change(
                self._uow,
                self._workflows,
                case_id,
                key=key,
                due=due,
                at=at,
                now=self.now,
            )
        )

    def migrate(
        self,
        to_version: int,
        *,
        sha256: object,
        at: datetime,
        case_id: str,
        actor: str,
        role: str,
        reason: str,
    ) -> Case:
        self._gate.check_any(Action.MIGRATE, (role,), None)
        return self._apply(
            migration_change(
                self._uow,
                self._workflows,
                case_id,
                to_version,
                sha256=sha256,
                actor=actor,
                role=role,
                reason=reason,
                at=at,
                now=self.now,
            )
        )

    def mark(
        self,
        case_id: str,
        *,
        key: str,
        due: date | None,
        at: datetime,
        since: datetime | None = None,
    ) -> Case:
        return self._apply(
            unknown_change(
                self._uow,
                case_id,
                key=key,
                due=due,
                at=at,
                since=since,
                now=self.now,
            )
        )

    def mark_lacking(self, case: Case) -> tuple[Case, tuple[str, ...]]:
        """Mark every step the replayed record lacks; return the case and the keys.

        Each mark is dated at the record's last event, so an officer may still
        record the missing step at its real date; it holds from now.
        """
        keys = []
        for d in lacking(case, now=self.now):
            case = self.mark(
                case.case_id,
                key=d.key,
                due=d.due_date,
                at=case.last_event_at,
                since=self.now,
            )
            keys.append(d.key)
        return case, tuple(keys)
