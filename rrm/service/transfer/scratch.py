"""The scratch store: an import's dry run, in memory, through the real handlers."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import UTC
from typing import TYPE_CHECKING, Self, cast, final

from rrm.domain.case import (
    GENESIS_HASH,
    Case,
    Facility,
    HistoryEntry,
    require_aware,
)
from rrm.errors import ConcurrencyConflict
from rrm.service import handlers
from rrm.service.transfer.lapses import lapse_change, unknown_change
from rrm.service.transfer.replay import migration_change

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from datetime import date, datetime
    from types import TracebackType

    from rrm.domain.case import Deadline
    from rrm.domain.commands import (
        AssignOfficers,
        ExtendDeadline,
        FireEvent,
        OpenCase,
        PauseDeadline,
        ResumeDeadline,
    )
    from rrm.service.engine import CaseEngine
    from rrm.service.ports import (
        CaseChange,
        CaseQuery,
        CaseRepository,
        Damage,
        DeadlineQuery,
        Determination,
        FacilityRecord,
        OutboxRepository,
        StateCount,
        WebhookDelivery,
        WebhookDeliveryQuery,
        WebhookRepository,
        WebhookSubscription,
        WebhookTarget,
    )

__all__: list[str] = []  # package-private: used by the import


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
        self.made: list[Determination] = []
        # Ids and references a re-derivation replays: never read from the database.
        self.hidden: set[str] = set()

    def get(
        self,
        case_id: str,
        *,
        lock: bool = False,  # noqa: ARG002
        cached: bool = False,  # noqa: ARG002
        stored: bool = False,  # noqa: ARG002
    ) -> Case | None:
        return self.cases.get(case_id) or self._stored(case_id, by_ref=False)

    def get_many(self, case_ids: Sequence[str]) -> dict[str, Case]:
        return {i: self.cases[i] for i in case_ids if i in self.cases}

    def get_by_ref(self, external_ref: str) -> Case | None:
        own = next(
            (c for c in self.cases.values() if c.external_ref == external_ref), None
        )
        return own or self._stored(external_ref, by_ref=True)

    def _stored(self, ref: str, *, by_ref: bool) -> Case | None:
        if ref in self.hidden:
            return None
        # A case this import does not hold (the earlier case a second request
        # follows) is read from the database, as the facility registry is; the
        # replay never writes to it.
        with self._engine._uow(read_only=True) as uow:  # noqa: SLF001 - same layer
            return uow.cases.get_by_ref(ref) if by_ref else uow.cases.get(ref)

    def apply(self, change: CaseChange) -> None:
        case = change.case
        current = self.cases.get(case.case_id)
        version = 0 if current is None else current.version
        if version != change.expected_version:
            raise ConcurrencyConflict(case.case_id, change.expected_version, version)
        self.cases[case.case_id] = case
        self.entries.setdefault(case.case_id, []).append(change.entry)
        if change.determination is not None:
            self.made.append(change.determination)

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
        with self._engine._uow(read_only=True) as uow:  # noqa: SLF001 - same layer
            return uow.cases.facility(facility_id)

    def save_facility(self, facility: Facility) -> None:
        raise NotImplementedError  # pragma: no cover - no handler saves directly

    def prior_determinations(
        self, *, facility_id: str, owner: str, case_id: str
    ) -> int:
        own = sum(
            d.case_id != case_id and (d.facility_id == facility_id or d.owner == owner)
            for d in self.made
        )
        with self._engine._uow(read_only=True) as uow:  # noqa: SLF001 - same layer
            stored = uow.cases.prior_determinations(
                facility_id=facility_id, owner=owner, case_id=case_id
            )
        return own + stored

    def determinations(self, case_id: str) -> list[Determination]:
        return [d for d in self.made if d.case_id == case_id]

    def openings(self, facility_id: str) -> list[HistoryEntry]:
        raise NotImplementedError  # pragma: no cover - replays never verify

    def damage(self, case_ids: Sequence[str] | None = None) -> dict[str, Damage]:  # noqa: ARG002
        return {}  # a replay's own cases are new; nothing damaged is replayed

    def record_damage(self, damage: Damage) -> bool:
        raise NotImplementedError  # pragma: no cover - replays never verify

    def clear_damage(self, case_id: str) -> bool:
        raise NotImplementedError  # pragma: no cover - replays never verify

    def find(self, query: CaseQuery) -> list[Case]:
        raise NotImplementedError  # pragma: no cover - replays never list cases

    def open_deadlines(self, query: DeadlineQuery) -> list[Deadline]:
        raise NotImplementedError  # pragma: no cover - replays never list deadlines

    def facilities(self, facility_id: str | None = None) -> list[FacilityRecord]:
        raise NotImplementedError  # pragma: no cover - replays never list facilities

    def state_counts(self) -> list[StateCount]:
        raise NotImplementedError  # pragma: no cover - replays never count cases

    def lapsed_deadlines(
        self, *, since: datetime, officer_id: str | None = None, limit: int = 100
    ) -> list[Deadline]:
        raise NotImplementedError  # pragma: no cover - replays never list lapses


@final
class _NoWebhooks:
    """No subscriptions: a dry run queues no webhook message and sends none."""

    def active_subscriptions(self) -> list[WebhookSubscription]:
        return []

    def add_subscription(self, subscription: WebhookSubscription) -> None:
        raise NotImplementedError  # pragma: no cover - replays manage no webhooks

    def subscription(self, subscription_id: str) -> WebhookSubscription | None:  # noqa: ARG002
        return None

    def subscriptions(self) -> list[WebhookSubscription]:
        return []

    def set_disabled(self, subscription_id: str, *, at: datetime | None) -> bool:  # noqa: ARG002
        return False

    def delete_subscription(self, subscription_id: str) -> bool:  # noqa: ARG002
        return False

    def target(self, subscription_id: str) -> WebhookTarget | None:  # noqa: ARG002
        return None

    def add_deliveries(self, deliveries: Sequence[WebhookDelivery]) -> int:  # noqa: ARG002
        return 0

    def claim_deliveries(
        self,
        *,
        now: datetime,  # noqa: ARG002
        limit: int,  # noqa: ARG002
        lease_until: datetime,  # noqa: ARG002
    ) -> list[WebhookDelivery]:
        return []

    def renew_claim(
        self,
        delivery_id: str,  # noqa: ARG002
        *,
        token: datetime,  # noqa: ARG002
        until: datetime,  # noqa: ARG002
    ) -> datetime | None:
        return None

    def record_delivery(self, delivery: WebhookDelivery, *, token: datetime) -> bool:  # noqa: ARG002
        return False

    def requeue(self, delivery_id: str, *, at: datetime) -> bool:  # noqa: ARG002
        return False

    def delivery(self, delivery_id: str) -> WebhookDelivery | None:  # noqa: ARG002
        return None

    def deliveries(self, query: WebhookDeliveryQuery) -> list[WebhookDelivery]:  # noqa: ARG002
        return []

    def next_wakeup(self) -> datetime | None:
        return None


@final
class _ScratchUnitOfWork:
    """A unit of work over the scratch store; nothing it holds is ever durable."""

    def __init__(self, cases: _ScratchCases) -> None:
        self.cases: CaseRepository = cases
        self._store = cases
        # Replays open cases and record events only; they never touch the outbox.
        self.outbox = cast("OutboxRepository", None)
        self.webhooks: WebhookRepository = _NoWebhooks()

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
        count = len(store.made)
        try:
            yield
        except BaseException:
            store.cases, store.entries = saved
            del store.made[count:]
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

    def at(self, now: datetime) -> None:
        """Apply the following commands at *now* (a re-derivation's entry time)."""
        self._now = now

    def open_case(self, cmd: OpenCase, *, case_id: str | None = None) -> Case:
        # The reference doubles as the case id, so errors name the case readably.
        return self._apply(
            handlers.open_case(
                self._uow,
                self._workflows,
                cmd,
                case_id=case_id or cmd.external_ref,
                now=self._now,
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

    def lapse(self, case_id: str, *, key: str, due: date | None, at: datetime) -> Case:
        return self._apply(
            lapse_change(
                self._uow,
                self._workflows,
                case_id,
                key=key,
                due=due,
                at=at,
                now=self._now,
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
                now=self._now,
            )
        )

    def mark(self, case_id: str, *, key: str, due: date | None, at: datetime) -> Case:
        return self._apply(
            unknown_change(
                self._uow,
                case_id,
                key=key,
                due=due,
                at=at,
                since=None,
                now=self._now,
            )
        )
