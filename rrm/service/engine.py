"""``CaseEngine``, the embedding API: one transaction per command, events after."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Literal, NoReturn, final

import structlog

from rrm.domain.alerts import Alert, AlertStatus
from rrm.domain.case import (
    Case,
    Deadline,
    HistoryEntry,
    case_row_break,
    chain_break,
    require_aware,
)
from rrm.domain.commands import (
    ResumeDeadline,
)
from rrm.domain.deadlines import local_date
from rrm.domain.events import DomainEvent
from rrm.errors import (
    AlertNotFound,
    CaseDamaged,
    CaseNotFound,
    ConcurrencyConflict,
    FacilityNotFound,
    InvalidInput,
    NotPermitted,
    RRMError,
    StaleCopy,
    StorageError,
    TransitionNotAllowed,
)
from rrm.service import alerting, handlers, integrity, validation
from rrm.service.access import MANAGERS, Action, Authorizer, Gate, HostCheck
from rrm.service.alerting import AlertSettings, TickReport
from rrm.service.delivery import Delivery, deliver
from rrm.service.migration import MigrationOrder, MigrationReport
from rrm.service.migration import migrate as run_migration
from rrm.service.ports import (
    AlertQuery,
    AlertRenderer,
    CaseChange,
    CaseQuery,
    Damage,
    DeadlineQuery,
    FacilityRecord,
    Notifier,
    UnitOfWork,
    UnitOfWorkFactory,
    WebhookSender,
)
from rrm.service.transfer.rederive import RowDifference, newest_seals, rederive
from rrm.service.webhook_delivery import (
    WebhookSettings,
    deliver_webhooks,
    next_webhook_wakeup,
)
from rrm.service.webhooks import change_events, deadline_change, record_change

if TYPE_CHECKING:
    from rrm.clock import Clock
    from rrm.domain.access import Principal
    from rrm.domain.commands import (
        AssignOfficers,
        ExtendDeadline,
        FireEvent,
        OpenCase,
        PauseDeadline,
    )
    from rrm.workflow.registry import Workflows
    from rrm.workflow.spec import TransitionSpec

_MAX_DAYS = 3660

# Cases read per page by verify_all: bounded memory over any number of cases.
_VERIFY_PAGE = 500
# Whole cases a process remembers between reads (a few hundred bytes each).
_WHOLE_CACHE = 4096

__all__ = ["AvailableEvent", "CaseEngine", "CaseRecord", "ChainReport", "Subscriber"]

log = structlog.get_logger("rrm.engine")

Subscriber = Callable[[DomainEvent], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainAnchor:
    """The hash of one history entry, kept outside the database to check it later.

    A hash chain shows an edit of one entry, but not a history rewritten from
    the edit onwards with every hash recomputed. An anchor taken earlier (by
    :meth:`CaseEngine.anchor`, ``rrm audit anchor``) and stored where the
    database's writers cannot change it does: the rewritten chain no longer holds
    the anchored hash.

    .. versionadded:: 0.2.0
    """

    case_id: str
    seq: int
    hash: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainReport:
    """Result of checking one case's history chain.

    ``first_broken_seq`` is the first entry that does not follow from the one
    before it (its number, link, hash or starting state), the first entry
    missing from or beyond the case row's version, or the entry the case row's
    state or workflow version contradicts. ``problems`` says in words what is
    wrong, one sentence per finding (the chain's, then the anchor's).

    .. versionchanged:: 0.2.0 ``anchor_mismatch_seq``: an anchored entry that is
       missing or no longer has its anchored hash.
    .. versionchanged:: 0.5.0 ``problems``; an entry that does not start from the
       state the one before it ended in, and a case row whose state or workflow
       version is not its history's, are broken.
    .. versionchanged:: 0.6.0 ``differences``: every stored row (case, deadline,
       officer, petitioner, facility, determination) that is not what replaying
       the history gives, also listed in ``problems``; ``rows_checked`` is true
       when the replay ran (it needs an intact chain).
    """

    case_id: str
    entries: int
    first_broken_seq: int | None
    anchor_mismatch_seq: int | None = None
    problems: tuple[str, ...] = ()
    differences: tuple[RowDifference, ...] = ()
    rows_checked: bool = False
    external_ref: str = ""

    @property
    def ok(self) -> bool:
        """True when the chain, the anchored entry and every stored row hold."""
        return (
            self.first_broken_seq is None
            and self.anchor_mismatch_seq is None
            and not self.differences
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class CaseRecord:
    """A case, its history (oldest first) and its chain's check, read together.

    .. versionadded:: 0.4.0
    """

    case: Case
    history: list[HistoryEntry]
    chain: ChainReport


@dataclass(frozen=True, slots=True, kw_only=True)
class AvailableEvent:
    """An event the asking principal may record on a case now.

    .. versionadded:: 0.3.0
    """

    transition: TransitionSpec
    roles: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class OutcomeCount:
    """How many cases of one workflow version are in one state, and what it means.

    ``outcome`` is the state's outcome as the workflow names it ("remediated",
    "out of scope", "closed by agreement"...) for a closed case, ``None`` for a
    case still open.

    .. versionadded:: 0.5.0
    """

    workflow_id: str
    workflow_version: int
    state: str
    label: str
    terminal: bool
    outcome: str | None
    cases: int


@final
class CaseEngine:
    """Open cases, record events, and query cases and deadlines.

    Construct it with :func:`rrm.bootstrap`, or directly with a unit-of-work
    factory, the loaded workflows and a clock.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        *,
        uow_factory: UnitOfWorkFactory,
        workflows: Workflows,
        clock: Clock,
        subscribers: Iterable[Subscriber] = (),
        id_factory: Callable[[], str] | None = None,
        notifier: Notifier | None = None,
        renderer: AlertRenderer | None = None,
        alert_settings: AlertSettings | None = None,
        authorizer: Authorizer | None = None,
        health_check: Callable[[], None] | None = None,
        webhook_sender: WebhookSender | None = None,
        webhook_settings: WebhookSettings | None = None,
    ) -> None:
        self._uow = uow_factory
        # The host's own check by default: the Python API trusts its embedder.
        self.authorizer: Authorizer = authorizer or HostCheck()
        self._health_check = health_check
        self._webhook_sender = webhook_sender
        self._webhook_settings = webhook_settings
        self.workflows = workflows
        self.clock = clock
        self._subscribers = list(subscribers)
        self._new_id = id_factory or (lambda: uuid.uuid4().hex)
        self.alert_settings = alert_settings or AlertSettings()
        # Cases this process found whole, by the fingerprint of the rows and
        # history it replayed: a page shown again replays only if they changed.
        self._whole: dict[str, str] = {}
        if (notifier is None) != (renderer is None):
            raise InvalidInput(
                "notifier", "give both a notifier and a renderer, or neither"
            )
        self._delivery = (
            Delivery(renderer=renderer, notifier=notifier, settings=self.alert_settings)
            if notifier is not None and renderer is not None
            else None
        )

    def _now(self) -> datetime:
        # One reading per use case, normalised: the history hash covers UTC text.
        return require_aware("now", self.clock.now()).astimezone(UTC)

    def with_authorizer(self, authorizer: Authorizer) -> CaseEngine:
        """Return an engine on the same storage and settings, another authorizer.

        The case service replays an administrator's import this way: each step
        is recorded under the actor its document names, authorized by the
        administrator's permission checked before.

        .. versionadded:: 0.3.0
        """
        twin = copy.copy(self)
        twin.authorizer = authorizer
        return twin

    @property
    def uow_factory(self) -> UnitOfWorkFactory:
        """The engine's unit-of-work factory (for the service's own use cases)."""
        return self._uow

    def gate(self, principal: Principal | None) -> Gate:
        """Return the authorizer bound to *principal* (``None``: no principal)."""
        return Gate(self.authorizer, principal)

    def authorize(
        self,
        principal: Principal | None,
        action: Action,
        roles: str | Sequence[str] = MANAGERS,
        *,
        case: Case | None = None,
    ) -> str:
        """Check a management action (alerts, webhooks, feeds, export, audit).

        Args:
            principal: Who asks.
            action: What it asks to do.
            roles: The role to act in, or roles to try in order (the first
                allowed is used); by default ``admin``, then ``supervisor``.
            case: The case the action concerns, if one.

        Returns:
            The role the action is allowed in.

        Raises:
            NotPermitted: If the authorizer refuses every role.

        .. versionadded:: 0.3.0
        """
        choices = (roles,) if isinstance(roles, str) else tuple(roles)
        return self.gate(principal).check_any(action, choices, case)

    def subscribe(self, subscriber: Subscriber) -> None:
        """Add a callback that receives domain events after each commit."""
        self._subscribers.append(subscriber)

    # -- commands ---------------------------------------------------------------

    def open_case(self, cmd: OpenCase, *, principal: Principal | None = None) -> Case:
        """Open a case; returns it as stored.

        Args:
            cmd: What to open.
            principal: Who asks, when the engine enforces an access policy; the
                command's actor must then be this principal.

        Raises:
            InvalidInput, WorkflowNotFound, CaseAlreadyExists, RoleNotAllowed,
            NotPermitted, GuardRejected: Nothing is written.
        """
        now = self._now()
        with self._uow() as uow:
            change = handlers.open_case(
                uow,
                self.workflows,
                cmd,
                case_id=self._new_id(),
                now=now,
                gate=self.gate(principal),
            )
            uow.cases.apply(change)
            record_change(uow, change, now=now)
            uow.commit()
        self._after(change)
        return change.case

    def fire(self, cmd: FireEvent, *, principal: Principal | None = None) -> Case:
        """Record an event; a repeated idempotency key returns the case unchanged.

        Args:
            cmd: The event to record.
            principal: Who asks, when the engine enforces an access policy.

        Raises:
            CaseNotFound, TransitionNotAllowed, RoleNotAllowed, NotPermitted,
            GuardRejected, ConcurrencyConflict, InvalidInput: Nothing is written.
        """
        now = self._now()
        gate = self.gate(principal)
        try:
            with self._uow() as uow:
                result = self._fire_in(uow, cmd, now=now, gate=gate)
                if isinstance(result, Case):
                    return result
                uow.commit()
        except ConcurrencyConflict:
            # A retry racing the original under the same idempotency key: once the
            # original has committed, the retry is answered with its result.
            if cmd.idempotency_key is None or cmd.expected_version is not None:
                raise
            with self._uow() as uow:
                retried = handlers.fire_event(
                    uow, self.workflows, cmd, now=now, gate=gate
                )
            if not isinstance(retried, Case):
                raise
            return retried
        self._after(result)
        return result.case

    def _fire_in(
        self, uow: UnitOfWork, cmd: FireEvent, *, now: datetime, gate: Gate
    ) -> CaseChange | Case:
        """Decide and write a fire, first on this process's copy of the case.

        A fire usually follows another on the same case by this process, so it
        is decided on the copy that process wrote, without reading the case; the
        write is guarded by the case's version and stamp. If the copy was stale,
        or the event was refused (the refusal may rest on the copy), the fire is
        decided again on the stored case: nothing was written meanwhile.
        """
        try:
            result = handlers.fire_event(
                uow, self.workflows, cmd, now=now, cached=True, gate=gate
            )
        except StorageError:
            raise  # the database failed: not a question of the copy
        except RRMError:
            return self._fire_on_stored(uow, cmd, now=now, gate=gate)
        if isinstance(result, Case):
            return result
        try:
            uow.cases.apply(result)
        except StaleCopy:
            return self._fire_on_stored(uow, cmd, now=now, gate=gate)
        record_change(uow, result, now=now)
        return result

    def _fire_on_stored(
        self, uow: UnitOfWork, cmd: FireEvent, *, now: datetime, gate: Gate
    ) -> CaseChange | Case:
        """Decide and write a fire on the stored case, read (and locked) now."""
        result = handlers.fire_event(uow, self.workflows, cmd, now=now, gate=gate)
        if not isinstance(result, Case):
            uow.cases.apply(result)
            record_change(uow, result, now=now)
        return result

    def extend(
        self, cmd: ExtendDeadline, *, principal: Principal | None = None
    ) -> Case:
        """Extend an open deadline by agreement; dependent deadlines move too."""
        return self._change_deadline(cmd, principal)

    def pause(self, cmd: PauseDeadline, *, principal: Principal | None = None) -> Case:
        """Toll (pause) an open deadline."""
        return self._change_deadline(cmd, principal)

    def resume(
        self, cmd: ResumeDeadline, *, principal: Principal | None = None
    ) -> Case:
        """Resume a paused deadline; it moves later by the days it was paused."""
        return self._change_deadline(cmd, principal)

    def assign(
        self, cmd: AssignOfficers, *, principal: Principal | None = None
    ) -> Case:
        """Assign officers to a case or remove them."""
        now = self._now()
        with self._uow() as uow:
            change = handlers.assign_officers(
                uow, self.workflows, cmd, now=now, gate=self.gate(principal)
            )
            uow.cases.apply(change)
            record_change(uow, change, now=now)
            uow.commit()
        self._after(change)
        return change.case

    def _change_deadline(
        self,
        cmd: ExtendDeadline | PauseDeadline | ResumeDeadline,
        principal: Principal | None,
    ) -> Case:
        now = self._now()
        with self._uow() as uow:
            change = handlers.change_deadline(
                uow, self.workflows, cmd, now=now, gate=self.gate(principal)
            )
            uow.cases.apply(change)
            record_change(uow, change, now=now)
            if isinstance(cmd, ResumeDeadline):
                # Alerts held back while it was paused go out if their date stands.
                for d in change.deadlines:
                    uow.outbox.resume_deferred(
                        d.deadline_id, due_step_suffix=f"@{d.due_date.isoformat()}"
                    )
            uow.commit()
        self._after(change)
        return change.case

    def migrate(
        self,
        workflow_id: str,
        *,
        from_version: int,
        to_version: int,
        actor: str,
        role: str = "admin",
        reason: str = "",
        dry_run: bool = False,
        principal: Principal | None = None,
    ) -> MigrationReport:
        """Move every case of one workflow version to another by its state mapping.

        The mapping is the reviewed file
        ``<workflow-id>/migrate-v<from>-to-v<to>.toml``. Every case is planned
        first; if one is in a state the mapping leaves out, nothing moves. Then
        each case moves in its own transaction, with one audited
        ``workflow_migrated`` entry, its open deadlines recomputed under the new
        version (and explained), and its version pin moved. With *dry_run*
        nothing is written and the report says what would change.

        Raises:
            WorkflowNotFound, InvalidInput, NotPermitted: Nothing is written.

        .. versionadded:: 0.5.0
        """
        gate = self.gate(principal)
        gate.check_any(Action.MIGRATE, (validation.text("role", role),), None)
        who, _ = gate.actor(validation.text("actor", actor))
        for name, value in (("from_version", from_version), ("to_version", to_version)):
            if type(value) is not int:
                raise InvalidInput(name, "must be a whole number")
        mapping = self.workflows.migration(
            validation.text("workflow", workflow_id), from_version, to_version
        )
        order = MigrationOrder(
            mapping=mapping,
            actor=who,
            role=role,
            reason=validation.optional_text("reason", reason),
            now=self._now(),
        )
        return run_migration(
            self._uow, self.workflows, order, dry_run=dry_run, on_change=self._after
        )

    def migrate_case(
        self,
        case_id: str,
        *,
        to_version: int,
        actor: str,
        role: str = "admin",
        reason: str = "",
        at: datetime | None = None,
        principal: Principal | None = None,
    ) -> Case:
        """Move one case to *to_version* by the reviewed mapping (as ``migrate``).

        An import replays a history's ``workflow_migrated`` entry this way, at
        its recorded time (*at*).

        Raises:
            CaseNotFound, WorkflowNotFound, InvalidInput, NotPermitted: Nothing is
                written.

        .. versionadded:: 0.5.0
        """
        gate = self.gate(principal)
        gate.check_any(Action.MIGRATE, (validation.text("role", role),), None)
        who, _ = gate.actor(validation.text("actor", actor))
        if type(to_version) is not int:
            raise InvalidInput("to_version", "must be a whole number")
        now = self._now()
        with self._uow() as uow:
            ref = validation.text("case", case_id)
            case = uow.cases.get(ref, lock=True)
            if case is None:
                named = uow.cases.get_by_ref(ref)
                case = uow.cases.get(named.case_id, lock=True) if named else None
            if case is None:
                raise CaseNotFound(ref)
            mapping = self.workflows.migration(
                case.workflow_id, case.workflow_version, to_version
            )
            change = handlers.migrate_case(
                uow,
                self.workflows,
                case,
                mapping,
                actor=who,
                role=role,
                reason=validation.optional_text("reason", reason),
                now=now,
                at=at,
            )
            uow.cases.apply(change)
            record_change(uow, change, now=now)
            uow.commit()
        self._after(change)
        return change.case

    # -- queries ----------------------------------------------------------------

    def get(self, case_id: str, *, intact: bool = True, verified: bool = False) -> Case:
        """Return a case by id or external reference.

        Args:
            case_id: The case's id or external reference.
            intact: When true (the default), a damaged case raises
                ``CaseDamaged`` naming the field: a row its pinned workflow
                cannot hold (a state it lacks, edited in the database), or a case
                the last verification registered as damaged. The audit passes
                ``False`` to read it as stored.
            verified: Also replay the history now and raise ``CaseDamaged``
                when any stored row differs from it (what a page or command
                that shows one case does; a few milliseconds per ten entries).

        Raises:
            CaseNotFound: If neither matches.
            CaseDamaged: If the stored row is damaged (see *intact*).

        .. versionchanged:: 0.5.0 ``intact``.
        .. versionchanged:: 0.6.0 ``verified``; the damage register is read.
        """
        ref = validation.text("case", case_id)
        with self._uow(read_only=True) as uow:
            case = uow.cases.get(ref) or uow.cases.get_by_ref(ref)
            known = uow.cases.damage([case.case_id]) if case is not None else {}
        if case is None:
            raise CaseNotFound(ref)
        if not intact:
            return case
        integrity.raise_if_damaged(case, self.workflows, known.get(case.case_id))
        if verified:
            self._replayed(case)
        return case

    def _replayed(self, case: Case) -> None:
        """Raise ``CaseDamaged`` when a stored row of *case* is not its history's."""
        stored, entries = self._snapshot(case.case_id)
        report = self._check_chain(stored, entries, None)
        if report.first_broken_seq is None:
            report = self._rows_once(report, stored, entries)
        if not report.ok:
            self._damaged(stored, report)

    def _rows_once(
        self, report: ChainReport, case: Case, entries: list[HistoryEntry]
    ) -> ChainReport:
        """:meth:`_rows` for reads that show one case: not again while unchanged.

        A case found whole is remembered by a fingerprint of every stored row
        and of its history's newest hash; a read finding the same replays
        nothing. Any edit of a row, or a new entry, changes the fingerprint.
        Only whole findings are kept, and the audit (:meth:`verify`) always
        replays.
        """
        with self._uow(read_only=True) as uow:
            determinations = uow.cases.determinations(case.case_id)
        last = entries[-1].hash if entries else ""
        text = repr((case, determinations, len(entries), last))
        key = hashlib.sha256(text.encode()).hexdigest()
        if self._whole.get(case.case_id) == key:
            return dataclasses.replace(report, rows_checked=True)
        report = self._rows(report, case, entries)
        if report.ok:
            if len(self._whole) >= _WHOLE_CACHE:
                self._whole.clear()
            self._whole[case.case_id] = key
        else:
            self._whole.pop(case.case_id, None)
        return report

    @staticmethod
    def _damaged(case: Case, report: ChainReport) -> NoReturn:
        first = report.differences[0] if report.differences else None
        field = f"{first.table} {first.field}" if first is not None else "history"
        detail = report.problems[0] if report.problems else "differs from its history"
        more = len(report.problems) - 1
        if more > 0:
            detail += f" (and {more} more)"
        raise CaseDamaged(case.case_id, field, detail, ref=case.external_ref)

    def find(
        self,
        *,
        state: str | None = None,
        workflow: str | None = None,
        facility_id: str | None = None,
        officer_id: str | None = None,
        limit: int | None = None,
        text: str | None = None,
        due_within: int | None = None,
        due_unit: Literal["calendar", "business"] = "calendar",
        after: tuple[datetime | str, str] | None = None,
        order: Literal["newest", "oldest", "reference"] = "newest",
        intact: bool = True,
    ) -> list[Case]:
        """Return cases by state, workflow, facility or officer, newest first.

        With *intact* (the default) a damaged row raises ``CaseDamaged`` naming
        the case and the field (see :meth:`get`); the audit lists rows as stored.

        Args:
            state: Only cases in this state.
            workflow: Only cases of this workflow id.
            facility_id: Only cases about this facility.
            officer_id: Only cases this officer is assigned to.
            limit: At most this many cases.
            text: Text found (case-insensitively) in the reference or the
                facility's name.
            due_within: Only cases with an open deadline due within this many
                days (overdue ones included), counted as :meth:`due` does.
            due_unit: ``calendar`` or ``business`` days for *due_within*.
            after: Continue a listing after this ``(sort key, case_id)``: the
                opening instant, or the reference when *order* is ``reference``.
            order: ``newest`` (opened latest first), ``oldest``, or
                ``reference`` (A to Z).
            intact: ``False`` lists rows as stored, damaged ones included.

        .. versionchanged:: 0.3.0 *text*, *due_within*, *due_unit* and *after*.
        .. versionchanged:: 0.4.0 *order*.
        """
        _check_limit(limit)
        for name, value in (
            ("state", state),
            ("workflow", workflow),
            ("facility_id", facility_id),
            ("officer_id", officer_id),
            ("text", text),
        ):
            if value is not None:
                validation.text(name, value)
        if order not in {"newest", "oldest", "reference"}:
            raise InvalidInput("order", "must be 'newest', 'oldest' or 'reference'")
        key_type = str if order == "reference" else datetime
        if after is not None and (
            not isinstance(after, tuple)
            or len(after) != 2  # noqa: PLR2004 - a pair
            or not isinstance(after[0], key_type)
            or not isinstance(after[1], str)
        ):
            raise InvalidInput("after", "must be a (sort key, case_id) pair")
        if after is not None and isinstance(after[0], datetime):
            require_aware("after", after[0])
        case_ids = None
        if due_within is not None:
            case_ids = frozenset(d.case_id for d in self.due(due_within, unit=due_unit))
        query = CaseQuery(
            state=state,
            workflow_id=workflow,
            facility_id=facility_id,
            officer_id=officer_id,
            limit=limit,
            text=text,
            case_ids=case_ids,
            after=after,
            order=order,
        )
        with self._uow(read_only=True) as uow:
            found = uow.cases.find(query)
            known = uow.cases.damage([c.case_id for c in found]) if intact else {}
        if not intact:
            return found
        return [
            integrity.raise_if_damaged(c, self.workflows, known.get(c.case_id))
            for c in found
        ]

    def _intact(self, case: Case) -> Case:
        """Return *case*, or name the field its pinned workflow cannot hold."""
        with self._uow(read_only=True) as uow:
            known = uow.cases.damage([case.case_id]).get(case.case_id)
        return integrity.raise_if_damaged(case, self.workflows, known)

    def available_events(
        self, case: Case, *, principal: Principal | None = None
    ) -> list[AvailableEvent]:
        """Return the events *principal* may record on *case* in its state now.

        An event is listed with the roles the principal may use for it: those
        the workflow allows that the authorizer grants on this case. Events only
        the engine records (role ``system``) are never listed. Guards that need
        the event's payload are checked when the event is recorded. A closed
        case lists only the workflow's dated facts (workflow v2).

        .. versionadded:: 0.3.0
        """
        spec = self.workflows.get(case.workflow_id, case.workflow_version)
        terminal = spec.states[case.state].terminal
        gate = self.gate(principal)
        found = []
        for t in spec.transitions_from(case.state):
            if terminal and not spec.is_fact(t.event):
                continue  # a closed case takes dated facts only
            roles = gate.roles_on(case, [r for r in t.roles if r != "system"])
            if roles:
                found.append(AvailableEvent(transition=t, roles=tuple(roles)))
        return found

    def outcomes(self, workflow: str | None = None) -> list[OutcomeCount]:
        """Return how many cases are in each state, with the outcome it stands for.

        The figures an agency reports (how many cases were remediated, found out
        of scope, closed by agreement, still open), by workflow version: a
        version's states are counted as that version names them.

        Args:
            workflow: Only this workflow's cases (all when ``None``).

        Raises:
            CaseDamaged: If a case is in the damage register: its state may be
                wrong, so the counts would be.

        .. versionadded:: 0.5.0
        .. versionchanged:: 0.6.0 A registered damaged case is named.
        """
        wanted = None if workflow is None else validation.text("workflow", workflow)
        with self._uow(read_only=True) as uow:
            counts = uow.cases.state_counts()
            known = uow.cases.damage()
        if known:
            first = known[min(known)]
            with self._uow(read_only=True) as uow:
                case = uow.cases.get(first.case_id)
            if case is not None:
                integrity.raise_if_damaged(case, self.workflows, first)
        out = []
        for c in counts:
            if wanted is not None and c.workflow_id != wanted:
                continue
            spec = self.workflows.get(c.workflow_id, c.workflow_version)
            state = spec.states.get(c.state)
            terminal = state is not None and state.terminal
            outcome = None
            if state is not None and state.terminal:
                outcome = state.outcome or c.state
            out.append(
                OutcomeCount(
                    workflow_id=c.workflow_id,
                    workflow_version=c.workflow_version,
                    state=c.state,
                    label=state.label if state is not None else c.state,
                    terminal=terminal,
                    outcome=outcome,
                    cases=c.cases,
                )
            )
        return out

    def facilities(self) -> list[FacilityRecord]:
        """Return the facility registry with cases and determinations counted.

        .. versionadded:: 0.3.0
        """
        with self._uow(read_only=True) as uow:
            return uow.cases.facilities()

    def facility(self, facility_id: str) -> FacilityRecord:
        """Return one registered facility with its counts.

        Raises:
            FacilityNotFound: If no facility has that id.

        .. versionadded:: 0.3.0
        """
        ref = validation.text("facility_id", facility_id)
        with self._uow(read_only=True) as uow:
            found = uow.cases.facilities(ref)
        if not found:
            raise FacilityNotFound(ref)
        return found[0]

    def readiness(self) -> None:
        """Check that the database answers at the schema revision RRM needs.

        Raises:
            StorageError: The database is unreachable or busy.
            SchemaOutOfDate: The schema needs an upgrade.

        .. versionadded:: 0.3.0
        """
        if self._health_check is not None:
            self._health_check()
        with self._uow(read_only=True) as uow:
            uow.outbox.count_alerts(("dead",))

    def role_for(
        self,
        case: Case,
        event: str,
        *,
        principal: Principal | None = None,
        idempotency_key: str | None = None,
    ) -> str:
        """Return the one role *principal* may record *event* in on *case* now.

        For callers that do not say which role they act in. A retry of a
        command already recorded under *idempotency_key* finds the case moved
        on, where the event may no longer be possible: it gets the role it was
        recorded in, and :meth:`fire` answers it with the case as it is.

        Raises:
            TransitionNotAllowed: The event is not possible in the case's state.
            NotPermitted: The principal holds no role that may record it here.
            InvalidInput: It holds several; the caller must choose.

        .. versionadded:: 0.3.0
        """
        if idempotency_key is not None:
            key = validation.text("idempotency_key", idempotency_key)
            with self._uow(read_only=True) as uow:
                seen = uow.cases.entry_by_idempotency_key(case.case_id, key)
            if seen is not None:
                return seen.role
        spec = self.workflows.get(case.workflow_id, case.workflow_version)
        possible = [t.event for t in spec.transitions_from(case.state)]
        closed = spec.states[case.state].terminal
        if closed:  # a closed case takes dated facts only
            possible = [e for e in possible if spec.is_fact(e)]
        if event not in possible:
            raise TransitionNotAllowed(
                case.case_id,
                case.state,
                event,
                tuple(dict.fromkeys(possible)),
                closed=closed,
            )
        roles = [
            r
            for a in self.available_events(case, principal=principal)
            if a.transition.event == event
            for r in a.roles
        ]
        roles = list(dict.fromkeys(roles))
        if not roles:
            who = principal.principal_id if principal is not None else "(anonymous)"
            raise NotPermitted(
                who,
                Action.FIRE.value,
                "",
                case.case_id,
                f"you hold no role that may record {event!r} on this case",
            )
        if len(roles) > 1:
            raise InvalidInput(
                "role", f"you may act as {' or '.join(roles)}: say which one"
            )
        return roles[0]

    def history(self, case_id: str) -> list[HistoryEntry]:
        """Return a case's history, oldest first."""
        case = self.get(case_id)
        with self._uow(read_only=True) as uow:
            return uow.cases.history(case.case_id)

    def verify(
        self,
        case_id: str,
        *,
        anchor: ChainAnchor | None = None,
        rows: bool = True,
        record: bool = False,
    ) -> ChainReport:
        """Check a case's hash chain and every stored row against its history.

        Each entry must link to the one before it, match its hash and start
        from the state the one before it ended in. The case row must agree with
        the last entry: its version is the last entry's number (a deleted newest
        entry is reported as missing), its state the last entry's, and its
        workflow version the last migration's. With an *anchor* of this case,
        its entry must still carry the anchored hash: only an anchor finds the
        newest entry deleted with the row set back to the entry before it.

        With *rows* (the default) and an intact chain, the history is then
        replayed through the case's pinned workflow version and every stored
        field that differs from the replay is named with both values
        (``differences``): the case row, each deadline (due date, status,
        pauses), the determinations, and, against the digests the giving entry
        sealed, the parties, facility, claim, petitioners and officers.

        With *record* the finding goes to the damage register: a damaged case
        is registered (reads name it, the sweep skips it, the administrator
        gets one e-mail per distinct damage when ``AlertSettings.admin_address``
        is set); a whole one is taken off it.

        Raises:
            CaseNotFound: If no case matches.
            InvalidInput: If the anchor is of another case or malformed.

        .. versionchanged:: 0.6.0 *rows*: the stored rows are re-derived;
           *record*.
        """
        if anchor is not None and not isinstance(anchor, ChainAnchor):
            raise InvalidInput("anchor", "must be a ChainAnchor")
        case, entries = self._snapshot(case_id)
        report = self._check_chain(case, entries, anchor)
        if rows and report.first_broken_seq is None:
            report = self._rows(report, case, entries)
        structural = integrity.structural_damage(case, self.workflows)
        if structural is not None and not report.problems:
            message = f"rrm_case {structural[0]}: {structural[1]}"
            report = dataclasses.replace(
                report,
                differences=(
                    RowDifference(
                        table="rrm_case",
                        field=structural[0],
                        stored=None,
                        derived=None,
                        message=message,
                    ),
                ),
                problems=(message,),
            )
        if record:
            self._register(case, report)
        return report

    def _forget_deleted(self) -> None:
        """Take cases that no longer exist off the damage register."""
        with self._uow() as uow:
            for case_id in uow.cases.damage():
                if uow.cases.get(case_id) is None:
                    uow.cases.clear_damage(case_id)
            uow.commit()

    def _register(self, case: Case, report: ChainReport) -> None:
        first = report.differences[0] if report.differences else None
        field = f"{first.table} {first.field}" if first is not None else "history"
        with self._uow() as uow:
            integrity.register(
                uow,
                case.case_id,
                field=field,
                problems=() if report.ok else report.problems,
                now=self._now(),
                settings=self.alert_settings,
            )
            uow.commit()

    def damaged(self) -> list[Damage]:
        """Return the damage register: cases the last verification found damaged.

        .. versionadded:: 0.6.0
        """
        with self._uow(read_only=True) as uow:
            found = uow.cases.damage()
        return sorted(found.values(), key=lambda d: d.case_id)

    def verify_all(
        self,
        *,
        anchors: Mapping[str, ChainAnchor] | None = None,
        record: bool = False,
    ) -> Iterator[ChainReport]:
        """Verify every case (see :meth:`verify`), in order of reference.

        *anchors* maps case ids to anchors; cases without one are checked
        without. Reports are yielded one case at a time, so a nightly run over
        a large database holds one page of cases in memory. With *record*
        each finding goes to the damage register, and registered cases that
        no longer exist are taken off it.

        .. versionadded:: 0.6.0
        """
        kept = dict(anchors or {})
        after: tuple[datetime | str, str] | None = None
        while True:
            page = self.find(
                intact=False, order="reference", limit=_VERIFY_PAGE, after=after
            )
            for case in page:
                yield self.verify(
                    case.case_id, anchor=kept.get(case.case_id), record=record
                )
            if len(page) < _VERIFY_PAGE:
                if record:
                    self._forget_deleted()
                return
            after = (page[-1].external_ref, page[-1].case_id)

    def _rows(
        self, report: ChainReport, case: Case, entries: list[HistoryEntry]
    ) -> ChainReport:
        with self._uow(read_only=True) as uow:
            determinations = uow.cases.determinations(case.case_id)
            openings = uow.cases.openings(case.facility.facility_id)
        found = rederive(
            self,
            case,
            entries,
            determinations=determinations,
            facility_seals=newest_seals(openings, case.facility.facility_id),
        )
        if found:
            log.warning(
                "case_rows_differ",
                case_id=case.case_id,
                fields=len(found),
                tables=sorted({d.table for d in found}),
            )
        return dataclasses.replace(
            report,
            differences=tuple(found),
            problems=(*report.problems, *(d.message for d in found)),
            rows_checked=True,
        )

    def record(self, case_id: str) -> CaseRecord:
        """Return a case, its history and its chain's check, from one snapshot.

        What a page that shows a whole case needs, read once: the history is
        not read again to be verified. When the chain is intact the history is
        replayed too, and a stored row that differs from it raises
        ``CaseDamaged`` naming the first field (``rrm audit verify`` lists all).

        Raises:
            CaseNotFound: If no case matches.
            CaseDamaged: If the case is damaged (see :meth:`get`).

        .. versionadded:: 0.4.0
        .. versionchanged:: 0.6.0 The stored rows are re-derived.
        """
        case, entries = self._snapshot(case_id)
        self._intact(case)
        chain = self._check_chain(case, entries, None)
        if chain.first_broken_seq is None:
            chain = self._rows_once(chain, case, entries)
            if chain.differences:
                self._damaged(case, chain)
        return CaseRecord(case=case, history=entries, chain=chain)

    def _snapshot(self, case_id: str) -> tuple[Case, list[HistoryEntry]]:
        ref = validation.text("case", case_id)
        # The case and its history from one snapshot: a fire committed between
        # two reads would look like a broken chain.
        with self._uow(read_only=True) as uow:
            named = uow.cases.get_by_ref(ref)
            # Every row as stored: a cached copy would hide a row edited in place.
            case = uow.cases.get(named.case_id if named else ref, stored=True)
            if case is None:
                raise CaseNotFound(ref)
            entries = uow.cases.history(case.case_id)
        return case, entries

    def _check_chain(
        self, case: Case, entries: list[HistoryEntry], anchor: ChainAnchor | None
    ) -> ChainReport:
        found = chain_break(entries) or case_row_break(
            case, entries, migrated_event=handlers.MIGRATED
        )
        problems = [found[1]] if found is not None else []
        mismatch = None
        if anchor is not None:
            if anchor.case_id != case.case_id:
                raise InvalidInput("anchor", f"is of case {anchor.case_id!r}")
            held = next((e.hash for e in entries if e.seq == anchor.seq), None)
            if held != anchor.hash:
                mismatch = anchor.seq
                problems.append(
                    f"anchored entry {anchor.seq} is missing"
                    if held is None
                    else f"entry {anchor.seq} no longer has its anchored hash"
                )
                log.warning(
                    "anchor_mismatch", case_id=case.case_id, anchor_seq=anchor.seq
                )
        return ChainReport(
            case_id=case.case_id,
            external_ref=case.external_ref,
            entries=len(entries),
            first_broken_seq=found[0] if found is not None else None,
            anchor_mismatch_seq=mismatch,
            problems=tuple(problems),
        )

    def anchor(self, case_id: str) -> ChainAnchor:
        """Return the anchor of a case's newest history entry (to keep elsewhere).

        Raises:
            CaseNotFound: If no case matches.

        .. versionadded:: 0.2.0
        """
        ref = validation.text("case", case_id)
        with self._uow(read_only=True) as uow:
            case = uow.cases.get(ref) or uow.cases.get_by_ref(ref)
            if case is None:
                raise CaseNotFound(ref)
            entries = uow.cases.history(case.case_id)
        newest = entries[-1]
        return ChainAnchor(case_id=case.case_id, seq=newest.seq, hash=newest.hash)

    def due(
        self,
        within: int,
        *,
        unit: Literal["calendar", "business"] = "calendar",
        officer_id: str | None = None,
    ) -> list[Deadline]:
        """Return open deadlines due within *within* days (overdue ones included).

        Business days are counted in each deadline's own calendar, from today in
        that calendar's time zone.

        Raises:
            InvalidInput: If *within* is not a number of days from 0 to 3660, or
                *unit* is neither "calendar" nor "business".
        """
        if type(within) is not int or not 0 <= within <= _MAX_DAYS:
            raise InvalidInput(
                "within", f"must be a whole number of days, 0 to {_MAX_DAYS}"
            )
        if not isinstance(unit, str) or unit not in {"calendar", "business"}:
            raise InvalidInput("unit", "must be 'calendar' or 'business'")
        if officer_id is not None:
            validation.text("officer_id", officer_id)
        now = self._now()
        # Business days never outrun calendar days by more than weekends and
        # holidays, and a local day may last 25 hours: the bound only narrows the
        # query, the exact test on each deadline's own calendar follows.
        span = within * 2 + 21 if unit == "business" else within + 2
        query = DeadlineQuery(
            due_before=now + timedelta(days=span), officer_id=officer_id
        )
        with self._uow(read_only=True) as uow:
            candidates = uow.cases.open_deadlines(query)
        return [
            d for d in candidates if d.due_date <= self._horizon(d, now, within, unit)
        ]

    def _horizon(self, d: Deadline, now: datetime, within: int, unit: str) -> date:
        today = local_date(now, d.timezone)
        if unit == "calendar":
            return today + timedelta(days=within)
        return self.workflows.calendar(d.calendar_id).add_business_days(today, within)

    def overdue(self, *, officer_id: str | None = None) -> list[Deadline]:
        """Return open deadlines that have lapsed (their due instant has come)."""
        # A deadline has lapsed once now >= due_at; the query bound is exclusive.
        if officer_id is not None:
            validation.text("officer_id", officer_id)
        bound = self._now() + timedelta(microseconds=1)
        query = DeadlineQuery(due_before=bound, officer_id=officer_id)
        with self._uow(read_only=True) as uow:
            return uow.cases.open_deadlines(query)

    # -- deadlines enforcement --------------------------------------------------

    def tick(self) -> TickReport:
        """Do everything owed now: lapses, lapse actions, queued and sent alerts.

        Idempotent: safe to run twice, late, or from several processes at once.
        Delivery failures are recorded for retry, never raised. Without a notifier
        alerts are queued but not sent (``unsent`` counts them).

        .. versionadded:: 0.1.0
        """
        now = self._now()
        report, changes = alerting.sweep(
            self._uow, self.workflows, self.alert_settings, now=now
        )
        for change in changes:
            self._after(change)
        report = report + TickReport(
            queued=alerting.queue_digests(self._uow, self.alert_settings, now=now)
        )
        if self._delivery is not None:
            report = report + deliver(
                self._uow, self.workflows, self._delivery, now=now
            )
        else:
            # Counted, not loaded: a host without a notifier may hold many.
            with self._uow(read_only=True) as uow:
                unsent = uow.outbox.count_alerts(("pending", "failed"))
            report = report + TickReport(unsent=unsent)
        if self._webhook_sender is not None:
            hooks = deliver_webhooks(
                self._uow,
                self._webhook_sender,
                now=now,
                settings=self._webhook_settings,
            )
            report = report + TickReport(
                webhooks_sent=hooks.delivered,
                webhooks_failed=hooks.failed,
                webhooks_dead=hooks.dead,
            )
        log.info("tick_completed", **dataclasses.asdict(report))
        return report

    def next_wakeup(self) -> datetime | None:
        """Return the earliest instant anything is owed (alert, lapse or retry)."""
        with self._uow() as uow:
            owed = uow.outbox.next_wakeup(alerts=self._delivery is not None)
            if self._webhook_sender is not None:
                hook = next_webhook_wakeup(uow)
                owed = min((t for t in (owed, hook) if t is not None), default=None)
        digest = alerting.next_digest(self._uow, self.alert_settings, now=self._now())
        return min((t for t in (owed, digest) if t is not None), default=None)

    def alerts(
        self,
        *,
        status: tuple[str, ...] | None = None,
        case_id: str | None = None,
        recipient_id: str | None = None,
        limit: int | None = None,
    ) -> list[Alert]:
        """Return outbox entries (pending, sent, failed, dead, ...), oldest first."""
        if status is not None:
            if not isinstance(status, tuple | list) or not all(
                isinstance(s, str) for s in status
            ):
                raise InvalidInput("status", "must be a list of alert statuses")
            unknown = set(status) - {s.value for s in AlertStatus}
            if unknown:
                raise InvalidInput("status", f"unknown alert status {min(unknown)!r}")
        _check_limit(limit)
        for name, value in (("case_id", case_id), ("recipient_id", recipient_id)):
            if value is not None:
                validation.text(name, value)
        query = AlertQuery(
            statuses=status, case_id=case_id, recipient_id=recipient_id, limit=limit
        )
        with self._uow(read_only=True) as uow:
            return uow.outbox.alerts(query)

    def acknowledge(
        self, alert_id: str, *, officer_id: str, principal: Principal | None = None
    ) -> Alert:
        """Record that an officer has seen an alert (its recipient or a supervisor).

        With a *principal*, an acknowledgement (recorded once) is the
        recipient's own, or that of a supervisor of the case or an administrator.

        Raises:
            AlertNotFound: If no such alert exists.
            InvalidInput: If *officer_id* is empty.
            NotPermitted: If the principal may not take this acknowledgement.
        """
        officer = validation.text("officer_id", officer_id)
        alert_id = validation.text("alert_id", alert_id)
        with self._uow() as uow:
            alert = uow.outbox.alert(alert_id)
            if alert is None:
                raise AlertNotFound(alert_id)
            if principal is not None and alert.recipient_id != officer:
                case = uow.cases.get(alert.case_id) if alert.case_id else None
                self.authorize(principal, Action.ACKNOWLEDGE_ALERT, case=case)
            uow.outbox.acknowledge(alert_id, officer_id=officer, at=self._now())
            acked = uow.outbox.alert(alert_id)
            uow.commit()
        assert acked is not None  # noqa: S101 - read in the same transaction
        log.info(
            "alert_acknowledged",
            alert_id=alert_id,
            case_id=acked.case_id,
            officer_id=acked.acknowledged_by,
        )
        return acked

    def retry(self, alert_id: str) -> Alert:
        """Put a failed or dead-lettered alert back in the queue, to send now.

        Raises:
            AlertNotFound: If no such alert exists.
            InvalidInput: If the alert is not failed or dead.
        """
        alert_id = validation.text("alert_id", alert_id)
        with self._uow() as uow:
            alert = uow.outbox.alert(alert_id)
            if alert is None:
                raise AlertNotFound(alert_id)
            if not uow.outbox.requeue(alert_id, at=self._now()):
                raise InvalidInput(
                    "alert_id", f"alert is {alert.status.value}, not failed or dead"
                )
            again = uow.outbox.alert(alert_id)
            uow.commit()
        assert again is not None  # noqa: S101 - read in the same transaction
        log.info("alert_requeued", alert_id=alert_id, case_id=alert.case_id)
        return again

    # -- after commit -----------------------------------------------------------

    def _after(self, change: CaseChange) -> None:
        case, entry = change.case, change.entry
        bound = log.bind(
            case_id=case.case_id,
            workflow=case.workflow_id,
            workflow_version=case.workflow_version,
        )
        if entry.from_state is None:
            bound.info(
                "case_opened", state=case.state, case_event=entry.event, seq=entry.seq
            )
        else:
            bound.info(
                "transition_fired",
                case_event=entry.event,
                state=case.state,
                from_state=entry.from_state,
                seq=entry.seq,
            )
        for d in change.deadlines:
            bound.info(
                f"deadline_{deadline_change(d, entry)}",
                deadline_key=d.key,
                due_date=d.due_date.isoformat(),
                nominal=d.nominal,
            )
        # Domain events are built only for subscribers; the log lines always go out.
        if not self._subscribers:
            return
        for event in change_events(change):
            for subscriber in self._subscribers:
                try:
                    subscriber(event)
                except Exception:
                    # A host callback must never undo or hide a committed change.
                    log.exception("subscriber_failed", case_id=case.case_id)


# The largest row count SQLite and PostgreSQL accept as a LIMIT (a signed 64-bit
# integer); anything above it means "all" anyway.
_MAX_LIMIT = 2**63 - 1


def _check_limit(limit: object) -> None:
    if limit is not None and (type(limit) is not int or not 1 <= limit <= _MAX_LIMIT):
        raise InvalidInput("limit", f"must be a whole number from 1 to {_MAX_LIMIT}")
