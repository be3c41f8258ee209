"""Ports: the protocols the application layer needs from storage and delivery.

Adapters implement them; the service layer depends only on these shapes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Literal, Protocol, Self

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from contextlib import AbstractContextManager
    from datetime import datetime
    from types import TracebackType

    from rrm.domain.alerts import (
        Alert,
        AlertMessage,
        AlertView,
        DamageView,
        DigestView,
    )
    from rrm.domain.case import (
        Case,
        Deadline,
        Facility,
        HistoryEntry,
        JSONValue,
        Officer,
    )

__all__ = [
    "AlertQuery",
    "AlertRenderer",
    "CaseChange",
    "CaseQuery",
    "CaseRepository",
    "DeadlineQuery",
    "Determination",
    "FacilityRecord",
    "Notifier",
    "OutboxRepository",
    "UnitOfWork",
    "UnitOfWorkFactory",
    "WebhookDelivery",
    "WebhookDeliveryQuery",
    "WebhookRepository",
    "WebhookSender",
    "WebhookStatus",
    "WebhookSubscription",
    "WebhookTarget",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Determination:
    """A denial-of-rights determination against a facility, counted for repeats."""

    case_id: str
    facility_id: str
    owner: str
    determined_at: datetime
    seq: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Damage:
    """A case whose stored rows the last verification found not to match its history.

    Kept in the damage register (``rrm_damage``) by ``rrm audit verify`` and the
    worker's nightly verification; reads name it and the deadline sweep skips
    the case until a verification finds it whole again. ``fingerprint`` is the
    SHA-256 of the problems: the administrator is told once per distinct damage.

    .. versionadded:: 0.6.0
    """

    case_id: str
    found_at: datetime
    field: str
    problems: tuple[str, ...]
    fingerprint: str


@dataclass(frozen=True, slots=True, kw_only=True)
class FacilityRecord:
    """A registered facility with its cases and determinations counted."""

    facility: Facility
    cases: int
    determinations: int
    owner_determinations: int


@dataclass(frozen=True, slots=True, kw_only=True)
class StateCount:
    """How many cases of one workflow version are in one state.

    .. versionadded:: 0.5.0
    """

    workflow_id: str
    workflow_version: int
    state: str
    cases: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CaseChange:
    """Everything one fire (or case opening) writes, applied in one transaction.

    Attributes:
        case: The case after the change (its ``version`` is the new version).
        expected_version: The version the change was decided against; 0 for a new
            case.
        entry: The history entry appended by the change.
        deadlines: Deadlines inserted or updated by the change (matched by id).
        officers: When not ``None``, the full new list of assigned officers.
        determination: A denial-of-rights determination recorded by the change.
    """

    case: Case
    expected_version: int
    entry: HistoryEntry
    deadlines: tuple[Deadline, ...] = ()
    officers: tuple[Officer, ...] | None = None
    determination: Determination | None = None
    #: The case moves to another version of its workflow (``case.workflow_version``).
    repin: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class CaseQuery:
    """Filters for listing cases; ``None`` means any."""

    state: str | None = None
    workflow_id: str | None = None
    facility_id: str | None = None
    officer_id: str | None = None
    limit: int | None = None
    #: Case-insensitive text found in the external reference or facility name.
    text: str | None = None
    #: Only these cases (e.g. those with a deadline due in a window).
    case_ids: frozenset[str] | None = None
    #: Keyset cursor: only cases listed after this (sort key, case_id): the
    #: opening instant for ``newest``/``oldest``, the reference for ``reference``.
    after: tuple[datetime | str, str] | None = None
    #: ``newest`` (opened latest first), ``oldest``, or ``reference`` (A to Z).
    order: Literal["newest", "oldest", "reference"] = "newest"


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadlineQuery:
    """Filters for listing open deadlines; ``None`` means any."""

    due_before: datetime | None = None
    due_from: datetime | None = None
    officer_id: str | None = None
    case_id: str | None = None
    include_paused: bool = False
    limit: int | None = None


class CaseRepository(Protocol):
    """Loads and stores cases; every write happens inside a unit of work."""

    def get(
        self,
        case_id: str,
        *,
        lock: bool = False,
        cached: bool = False,
        stored: bool = False,
    ) -> Case | None:
        """Return the case with its deadlines, or ``None``.

        With *lock*, the case is held until the transaction ends, so a change is
        decided on the current case and concurrent writers queue instead of
        failing (on SQLite the write transaction already excludes them). With
        *cached*, a copy this process holds may be returned unread; ``apply``
        then raises ``StaleCopy`` (writing nothing) if the stored case moved on.
        With *stored*, every row is read from the database, none from a cache:
        what a verification compares with the history.

        .. versionchanged:: 0.6.0 *stored*.
        """
        ...

    def get_many(self, case_ids: Sequence[str]) -> dict[str, Case]:
        """Return the cases that exist among *case_ids*, by id, in a few queries."""
        ...

    def get_by_ref(self, external_ref: str) -> Case | None:
        """Return the case with that external reference, or ``None``."""
        ...

    def apply(self, change: CaseChange) -> None:
        """Write a change; a version mismatch raises ``ConcurrencyConflict``."""
        ...

    def history(self, case_id: str) -> list[HistoryEntry]:
        """Return the case's history entries in order of ``seq``."""
        ...

    def last_hash(self, case_id: str) -> str:
        """Return the hash of the case's latest history entry (genesis if none)."""
        ...

    def entry_by_idempotency_key(self, case_id: str, key: str) -> HistoryEntry | None:
        """Return the entry recorded under an idempotency key, or ``None``."""
        ...

    def facility(self, facility_id: str) -> Facility | None:
        """Return a facility from the registry, or ``None``."""
        ...

    def save_facility(self, facility: Facility) -> None:
        """Insert a facility into the registry or update its details."""
        ...

    def prior_determinations(
        self, *, facility_id: str, owner: str, case_id: str
    ) -> int:
        """Count DoR determinations against the facility or its owner in other cases."""
        ...

    def determinations(self, case_id: str) -> list[Determination]:
        """Return the case's own DoR determinations, by ``seq``.

        .. versionadded:: 0.6.0
        """
        ...

    def openings(self, facility_id: str) -> list[HistoryEntry]:
        """Return the first history entry of every case on a facility.

        .. versionadded:: 0.6.0
        """
        ...

    def damage(self, case_ids: Sequence[str] | None = None) -> dict[str, Damage]:
        """Return the registered damage of these cases (``None``: of all), by id.

        .. versionadded:: 0.6.0
        """
        ...

    def record_damage(self, damage: Damage) -> bool:
        """Register a damaged case; True when new or its problems changed.

        .. versionadded:: 0.6.0
        """
        ...

    def clear_damage(self, case_id: str) -> bool:
        """Remove a case from the damage register; True if it was there.

        .. versionadded:: 0.6.0
        """
        ...

    def facilities(self, facility_id: str | None = None) -> list[FacilityRecord]:
        """Return registered facilities (or one) with their counts, by id."""
        ...

    def find(self, query: CaseQuery) -> list[Case]:
        """Return cases matching the query, newest first."""
        ...

    def state_counts(self) -> list[StateCount]:
        """Return how many cases each workflow version holds in each state."""
        ...

    def open_deadlines(self, query: DeadlineQuery) -> list[Deadline]:
        """Return open deadlines matching the query, earliest due first."""
        ...

    def lapsed_deadlines(
        self, *, since: datetime, officer_id: str | None = None, limit: int = 100
    ) -> list[Deadline]:
        """Return deadlines that lapsed at or after *since*, latest lapse first."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertQuery:
    """Filters for listing outbox entries; ``None`` means any."""

    statuses: tuple[str, ...] | None = None
    case_id: str | None = None
    recipient_id: str | None = None
    limit: int | None = None


class OutboxRepository(Protocol):
    """The deadline sweep's queries and the alert outbox."""

    def claim_due_cases(self, *, now: datetime, limit: int) -> list[str]:
        """Return (and lock) cases with an open deadline whose next action is due.

        On PostgreSQL the case rows are locked with ``FOR UPDATE SKIP LOCKED``, so
        concurrent workers take different cases.
        """
        ...

    def save_schedules(self, deadlines: Sequence[Deadline]) -> None:
        """Store the lapse and alert bookkeeping of deadlines (not a case change)."""
        ...

    def add_alerts(self, alerts: Sequence[Alert]) -> int:
        """Insert alerts not already in the outbox; return how many were new."""
        ...

    def claim_alerts(
        self,
        *,
        now: datetime,
        limit: int,
        lease_until: datetime,
        worker: str | None = None,
        alive_since: datetime | None = None,
    ) -> list[Alert]:
        """Claim alerts ready to send (pending, failed and due, or abandoned).

        Claimed alerts are marked ``sending`` until *lease_until*, held by
        *worker*. A claim is abandoned when its lease has run out, or, with
        *alive_since*, when its worker's heartbeat (:meth:`renew_heartbeat`) is
        older than that or gone: a worker that dies frees its claims then. A
        claim taken over ends later than the claim it replaces, whatever the
        workers' clocks say, so the claim's end (``claimed_until``) is a fencing
        token: a worker whose claim was taken over can neither renew it nor
        record an outcome with it.
        """
        ...

    def renew_claim(
        self, alert_id: str, *, token: datetime, until: datetime
    ) -> datetime | None:
        """Extend this worker's claim before a send; None if the claim was lost."""
        ...

    def renew_heartbeat(
        self, worker: str, *, at: datetime, alive_since: datetime
    ) -> None:
        """Record that *worker* is alive at *at*; forget workers not seen since.

        .. versionadded:: 0.5.0
        """
        ...

    def record_delivery(self, alert: Alert, *, token: datetime) -> bool:
        """Store a delivery outcome if the claim still holds; only delivery columns."""
        ...

    def acknowledge(self, alert_id: str, *, officer_id: str, at: datetime) -> bool:
        """Record an acknowledgement once; False if it was already acknowledged."""
        ...

    def requeue(self, alert_id: str, *, at: datetime) -> bool:
        """Put a failed or dead alert back in the queue."""
        ...

    def requeue_unreachable(self, *, at: datetime) -> int:
        """Requeue dead alerts that failed only for temporary reasons."""
        ...

    def resume_deferred(self, deadline_id: str, *, due_step_suffix: str) -> int:
        """Requeue a resumed deadline's deferred alerts whose due date still stands."""
        ...

    def alert(self, alert_id: str) -> Alert | None:
        """Return one alert, or ``None``."""
        ...

    def count_alerts(self, statuses: Sequence[str]) -> int:
        """Return how many alerts have one of *statuses*."""
        ...

    def alerts(self, query: AlertQuery) -> list[Alert]:
        """Return alerts matching the query, oldest owed first."""
        ...

    def next_wakeup(self, *, alerts: bool = True) -> datetime | None:
        """Return when the sweep (and, if *alerts*, the sender) is next owed."""
        ...

    def digest_recipients(self) -> list[Officer]:
        """Return officers with an e-mail assigned to cases with open deadlines."""
        ...


class WebhookStatus(StrEnum):
    """Where a webhook delivery stands.

    ``pending`` and ``failed`` wait for their ``next_attempt_at``; ``sending`` is
    claimed by a worker until ``claimed_until``; ``delivered`` and ``dead`` are
    settled (a dead one waits for an administrator's retry).

    .. versionadded:: 0.3.0
    """

    PENDING = "pending"
    SENDING = "sending"
    DELIVERED = "delivered"
    FAILED = "failed"
    DEAD = "dead"


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookSubscription:
    """Where to send which domain events, signed with a secret.

    Attributes:
        subscription_id: The subscription's id (``sub_...``).
        url: The endpoint (http or https); never logged, it may carry a token.
        event_types: Event type names (``case.opened``), prefixes
            (``deadline.*``) or ``*``.
        description: Free text for the administrators.
        created_at: When the subscription was made.
        created_by: Who made it.
        disabled_at: When it was disabled (by an administrator, or by the
            endpoint answering 410 Gone); ``None`` while it is active.
        secret: The signing secret (``whsec_...``), filled only in the value
            returned by the creation; empty everywhere else.

    .. versionadded:: 0.3.0
    """

    subscription_id: str
    url: str = field(repr=False)
    event_types: tuple[str, ...]
    description: str = ""
    created_at: datetime
    created_by: str = ""
    disabled_at: datetime | None = None
    secret: str = field(default="", repr=False)

    @property
    def active(self) -> bool:
        """True while deliveries are queued and sent for this subscription."""
        return self.disabled_at is None


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookTarget:
    """What sending one delivery needs: the endpoint and the signing secret."""

    subscription_id: str
    url: str = field(repr=False)
    secret: str = field(repr=False)
    disabled: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookDelivery:
    """One webhook message in the outbox: one subscription, one domain event.

    ``delivery_id`` is the ``webhook-id`` every attempt carries, so a receiver can
    drop a repeat. ``payload`` is the JSON body (``type``, ``timestamp``,
    ``data``), identifiers only.

    .. versionadded:: 0.3.0
    """

    delivery_id: str
    subscription_id: str
    event_type: str
    case_id: str
    seq: int
    payload: Mapping[str, JSONValue]
    created_at: datetime
    status: WebhookStatus = WebhookStatus.PENDING
    attempts: int = 0
    next_attempt_at: datetime | None = None
    claimed_until: datetime | None = None
    last_error: str = ""
    last_status: int | None = None
    delivered_at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookDeliveryQuery:
    """Filters for listing webhook deliveries; ``None`` means any."""

    statuses: tuple[str, ...] | None = None
    subscription_id: str | None = None
    case_id: str | None = None
    limit: int | None = None


class WebhookRepository(Protocol):
    """Webhook subscriptions and the webhook outbox."""

    def active_subscriptions(self) -> list[WebhookSubscription]:
        """Return the subscriptions that are not disabled (without secrets).

        Read once per unit of work and kept for it: every change of one
        transaction is matched against the same list, at the cost of one query.
        """
        ...

    def add_subscription(self, subscription: WebhookSubscription) -> None:
        """Store a new subscription, with its secret."""
        ...

    def subscription(self, subscription_id: str) -> WebhookSubscription | None:
        """Return one subscription (without its secret), or ``None``."""
        ...

    def subscriptions(self) -> list[WebhookSubscription]:
        """Return every subscription (without secrets), oldest first."""
        ...

    def set_disabled(self, subscription_id: str, *, at: datetime | None) -> bool:
        """Disable a subscription at *at*, or enable it with ``None``.

        Returns False when no such subscription exists, or disabling one that
        already is (its first disabling instant stands).
        """
        ...

    def delete_subscription(self, subscription_id: str) -> bool:
        """Delete a subscription and all its deliveries; False if there was none."""
        ...

    def target(self, subscription_id: str) -> WebhookTarget | None:
        """Return where and how to send for a subscription, or ``None``."""
        ...

    def add_deliveries(self, deliveries: Sequence[WebhookDelivery]) -> int:
        """Queue deliveries not already queued; return how many were new."""
        ...

    def claim_deliveries(
        self, *, now: datetime, limit: int, lease_until: datetime
    ) -> list[WebhookDelivery]:
        """Claim deliveries ready to send (due, or their lease expired).

        Claimed deliveries are marked ``sending`` until *lease_until*; on
        PostgreSQL rows another worker is claiming are skipped, not waited for.
        """
        ...

    def renew_claim(
        self, delivery_id: str, *, token: datetime, until: datetime
    ) -> datetime | None:
        """Extend this worker's claim before a send; None if the claim was lost."""
        ...

    def record_delivery(self, delivery: WebhookDelivery, *, token: datetime) -> bool:
        """Store an attempt's outcome if the claim still holds; True when it did."""
        ...

    def requeue(self, delivery_id: str, *, at: datetime) -> bool:
        """Put a failed or dead delivery back in the queue, to send at *at*."""
        ...

    def delivery(self, delivery_id: str) -> WebhookDelivery | None:
        """Return one delivery, or ``None``."""
        ...

    def deliveries(self, query: WebhookDeliveryQuery) -> list[WebhookDelivery]:
        """Return deliveries matching the query, oldest first."""
        ...

    def next_wakeup(self) -> datetime | None:
        """Return when a delivery is next due (an attempt, or a lease running out)."""
        ...


class UnitOfWork(Protocol):
    """One database transaction; rolls back unless ``commit()`` was called."""

    cases: CaseRepository
    outbox: OutboxRepository
    webhooks: WebhookRepository

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def commit(self) -> None:
        """Make the transaction's writes durable."""
        ...

    def savepoint(self) -> AbstractContextManager[None]:
        """Return a nested transaction: an error inside undoes only its writes."""
        ...

    def rollback(self) -> None:
        """Discard the transaction's writes."""
        ...


class UnitOfWorkFactory(Protocol):
    """Makes a fresh unit of work per use case."""

    def __call__(self, *, read_only: bool = False) -> UnitOfWork:
        """Return a new, not yet entered, unit of work.

        A *read_only* one sees one consistent snapshot of the database for all
        its reads and refuses writes.
        """
        ...


class AlertRenderer(Protocol):
    """Turns an alert's view into a message in the recipient's language."""

    def render(self, view: AlertView) -> AlertMessage:
        """Return the rendered message (subject, text, HTML, calendar file)."""
        ...

    def render_digest(self, view: DigestView) -> AlertMessage:
        """Return an officer's daily digest of open deadlines, rendered."""
        ...

    def render_damage(self, view: DamageView) -> AlertMessage:
        """Return the administrator's notice of a damaged case, rendered.

        .. versionadded:: 0.6.0
        """
        ...


class Notifier(Protocol):
    """Delivers rendered alerts: SMTP, a host's mail service, a webhook.

    .. versionadded:: 0.1.0
    """

    def send(self, message: AlertMessage) -> None:
        """Deliver one message.

        Raises:
            NotificationError: Delivery failed; ``permanent`` says whether a retry
                can help.
        """
        ...


class WebhookSender(Protocol):
    """Posts one signed webhook message and reports the endpoint's answer.

    .. versionadded:: 0.3.0
    """

    def send(
        self,
        url: str,
        *,
        msg_id: str,
        timestamp: datetime,
        body: bytes,
        secret: str,
    ) -> int:
        """Post *body*, signed per Standard Webhooks; return the HTTP status code.

        Args:
            url: The subscription's endpoint.
            msg_id: The ``webhook-id`` (the same for every attempt).
            timestamp: The ``webhook-timestamp``: when this attempt is made.
            body: The JSON body, exactly as signed.
            secret: The subscription's signing secret (``whsec_...``).

        Raises:
            NotificationError: The endpoint could not be reached or did not
                answer in time (no status code).
        """
        ...
