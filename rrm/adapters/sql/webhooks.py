"""Webhook subscriptions and the webhook outbox, on SQLite or PostgreSQL.

Deliveries are claimed like alerts (:mod:`rrm.adapters.sql.outbox`): on
PostgreSQL with ``FOR UPDATE SKIP LOCKED``, so any number of workers take
disjoint rows; on SQLite the write lock taken by ``BEGIN IMMEDIATE`` makes one
claimer at a time. A claim's expiry instant is its token: the worker that holds
it renews and records only while the row still carries that instant. The fire
path reads the active subscriptions once per unit of work, as one prepared
statement.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, final

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from rrm.adapters.sql.fast import Prepared
from rrm.adapters.sql.repository import _storage_errors
from rrm.adapters.sql.tables import WEBHOOK_DELIVERY, WEBHOOK_SUBSCRIPTION
from rrm.service.ports import (
    WebhookDelivery,
    WebhookStatus,
    WebhookSubscription,
    WebhookTarget,
)

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from rrm.service.ports import WebhookDeliveryQuery

__all__ = ["SqlWebhooks"]

_READY: Final = (WebhookStatus.PENDING.value, WebhookStatus.FAILED.value)
_SENDING: Final = WebhookStatus.SENDING.value
_RETRYABLE: Final = (WebhookStatus.FAILED.value, WebhookStatus.DEAD.value)

# Every column but the secret, which leaves the table only to sign (``target``).
_SUBSCRIPTION_COLUMNS: Final = tuple(
    c for c in WEBHOOK_SUBSCRIPTION.c if c.key != "secret"
)
_ACTIVE: Final = Prepared(
    sa.select(*_SUBSCRIPTION_COLUMNS)
    .where(WEBHOOK_SUBSCRIPTION.c.disabled_at.is_(None))
    .order_by(
        WEBHOOK_SUBSCRIPTION.c.created_at, WEBHOOK_SUBSCRIPTION.c.subscription_id
    ),
    (),
)
# A repeated ``webhook-id`` (the same event for the same subscription) is skipped.
_ADD_DELIVERY: Final = {
    name: Prepared(
        insert(WEBHOOK_DELIVERY).on_conflict_do_nothing(), WEBHOOK_DELIVERY.c.keys()
    )
    for name, insert in (("sqlite", sqlite.insert), ("postgresql", postgresql.insert))
}
# Oldest first; within one change the case event before its deadlines'.
_ORDER: Final = (
    WEBHOOK_DELIVERY.c.created_at,
    WEBHOOK_DELIVERY.c.case_id,
    WEBHOOK_DELIVERY.c.seq,
    WEBHOOK_DELIVERY.c.event_type,
    WEBHOOK_DELIVERY.c.delivery_id,
)
_OUTCOME_COLUMNS: Final = (
    "status",
    "attempts",
    "next_attempt_at",
    "claimed_until",
    "last_error",
    "last_status",
    "delivered_at",
)


@final
class SqlWebhooks:
    """Subscriptions and deliveries, through the unit of work's connection.

    .. versionadded:: 0.3.0
    """

    def __init__(self, connection: sa.Connection) -> None:
        self._conn = connection
        self._pg = connection.dialect.name == "postgresql"
        # The active subscriptions, read once for this unit of work.
        self._active: list[WebhookSubscription] | None = None

    def forget(self) -> None:
        """Read the active subscriptions again (writes of this unit were undone)."""
        self._active = None

    # -- subscriptions ----------------------------------------------------------

    def active_subscriptions(self) -> list[WebhookSubscription]:
        """Return the subscriptions not disabled, read once per unit of work."""
        if self._active is None:
            with _storage_errors("load the webhook subscriptions"):
                rows = _ACTIVE.fetch(self._conn, {})
            self._active = [_subscription(row) for row in rows]
        return self._active

    def add_subscription(self, subscription: WebhookSubscription) -> None:
        """Store a new subscription, with its secret."""
        row = {
            f.name: getattr(subscription, f.name)
            for f in dataclasses.fields(subscription)
        }
        row["event_types"] = list(subscription.event_types)
        self._active = None
        with _storage_errors("save the webhook subscription"):
            self._conn.execute(sa.insert(WEBHOOK_SUBSCRIPTION).values(row))

    def subscription(self, subscription_id: str) -> WebhookSubscription | None:
        """Return one subscription (without its secret), or ``None``."""
        stmt = sa.select(*_SUBSCRIPTION_COLUMNS).where(
            WEBHOOK_SUBSCRIPTION.c.subscription_id == subscription_id
        )
        with _storage_errors("load the webhook subscription"):
            row = self._conn.execute(stmt).mappings().first()
        return None if row is None else _subscription(row)

    def subscriptions(self) -> list[WebhookSubscription]:
        """Return every subscription (without secrets), oldest first."""
        stmt = sa.select(*_SUBSCRIPTION_COLUMNS).order_by(
            WEBHOOK_SUBSCRIPTION.c.created_at, WEBHOOK_SUBSCRIPTION.c.subscription_id
        )
        with _storage_errors("list the webhook subscriptions"):
            return [_subscription(r) for r in self._conn.execute(stmt).mappings()]

    def set_disabled(self, subscription_id: str, *, at: datetime | None) -> bool:
        """Disable a subscription at *at* (if active), or enable it with ``None``."""
        stmt = sa.update(WEBHOOK_SUBSCRIPTION).where(
            WEBHOOK_SUBSCRIPTION.c.subscription_id == subscription_id
        )
        if at is not None:
            stmt = stmt.where(WEBHOOK_SUBSCRIPTION.c.disabled_at.is_(None))
        self._active = None
        with _storage_errors("change the webhook subscription"):
            result = self._conn.execute(
                stmt.values(disabled_at=at).execution_options(preserve_rowcount=True)
            )
        return bool(result.rowcount == 1)

    def delete_subscription(self, subscription_id: str) -> bool:
        """Delete a subscription and all its deliveries; False if there was none."""
        self._active = None
        with _storage_errors("delete the webhook subscription"):
            self._conn.execute(
                sa.delete(WEBHOOK_DELIVERY).where(
                    WEBHOOK_DELIVERY.c.subscription_id == subscription_id
                )
            )
            result = self._conn.execute(
                sa.delete(WEBHOOK_SUBSCRIPTION)
                .where(WEBHOOK_SUBSCRIPTION.c.subscription_id == subscription_id)
                .execution_options(preserve_rowcount=True)
            )
        return bool(result.rowcount == 1)

    def target(self, subscription_id: str) -> WebhookTarget | None:
        """Return the endpoint and signing secret of a subscription, or ``None``."""
        table = WEBHOOK_SUBSCRIPTION
        stmt = sa.select(table.c.url, table.c.secret, table.c.disabled_at).where(
            table.c.subscription_id == subscription_id
        )
        with _storage_errors("load the webhook endpoint"):
            row = self._conn.execute(stmt).mappings().first()
        if row is None:
            return None
        return WebhookTarget(
            subscription_id=subscription_id,
            url=row["url"],
            secret=row["secret"],
            disabled=row["disabled_at"] is not None,
        )

    # -- deliveries -------------------------------------------------------------

    def add_deliveries(self, deliveries: Sequence[WebhookDelivery]) -> int:
        """Queue deliveries not already queued; return how many were new."""
        rows = [_delivery_row(d) for d in deliveries]
        with _storage_errors("queue webhook messages"):
            new = _ADD_DELIVERY[self._conn.dialect.name].run_many(self._conn, rows)
        return max(new, 0)

    def claim_deliveries(
        self, *, now: datetime, limit: int, lease_until: datetime
    ) -> list[WebhookDelivery]:
        """Claim due deliveries and mark them ``sending`` until *lease_until*."""
        d = WEBHOOK_DELIVERY.c
        ready = sa.and_(d.status.in_(_READY), d.next_attempt_at <= now)
        abandoned = sa.and_(d.status == _SENDING, d.claimed_until <= now)
        stmt = (
            sa.select(WEBHOOK_DELIVERY)
            .where(sa.or_(ready, abandoned))
            .order_by(*_ORDER)
            .limit(limit)
        )
        if self._pg:
            stmt = stmt.with_for_update(skip_locked=True)
        with _storage_errors("claim webhook messages to send"):
            rows = self._conn.execute(stmt).mappings().all()
            ids = [row["delivery_id"] for row in rows]
            if ids:
                self._conn.execute(
                    sa.update(WEBHOOK_DELIVERY)
                    .where(d.delivery_id.in_(ids))
                    .values(status=_SENDING, claimed_until=lease_until)
                )
        return [
            dataclasses.replace(
                _delivery(row), status=WebhookStatus.SENDING, claimed_until=lease_until
            )
            for row in rows
        ]

    def renew_claim(
        self, delivery_id: str, *, token: datetime, until: datetime
    ) -> datetime | None:
        """Extend this worker's claim before a send; None if the claim was lost."""
        stmt = (
            sa.update(WEBHOOK_DELIVERY)
            .where(*_held(delivery_id, token))
            .values(claimed_until=until)
        )
        with _storage_errors(f"renew the claim on webhook message {delivery_id}"):
            result = self._conn.execute(stmt.execution_options(preserve_rowcount=True))
        return until if result.rowcount == 1 else None

    def record_delivery(self, delivery: WebhookDelivery, *, token: datetime) -> bool:
        """Store an attempt's outcome if this worker still holds the claim."""
        row = _delivery_row(delivery)
        stmt = (
            sa.update(WEBHOOK_DELIVERY)
            .where(*_held(delivery.delivery_id, token))
            .values({k: row[k] for k in _OUTCOME_COLUMNS})
        )
        with _storage_errors(f"record webhook message {delivery.delivery_id}"):
            result = self._conn.execute(stmt.execution_options(preserve_rowcount=True))
        return bool(result.rowcount == 1)

    def requeue(self, delivery_id: str, *, at: datetime) -> bool:
        """Put a failed or dead delivery back in the queue, to send at *at*."""
        d = WEBHOOK_DELIVERY.c
        stmt = (
            sa.update(WEBHOOK_DELIVERY)
            .where(d.delivery_id == delivery_id, d.status.in_(_RETRYABLE))
            .values(
                status=WebhookStatus.PENDING.value,
                attempts=0,
                next_attempt_at=at,
                claimed_until=None,
            )
        )
        with _storage_errors(f"requeue webhook message {delivery_id}"):
            result = self._conn.execute(stmt.execution_options(preserve_rowcount=True))
        return bool(result.rowcount == 1)

    def delivery(self, delivery_id: str) -> WebhookDelivery | None:
        """Return one delivery, or ``None``."""
        stmt = sa.select(WEBHOOK_DELIVERY).where(
            WEBHOOK_DELIVERY.c.delivery_id == delivery_id
        )
        with _storage_errors(f"load webhook message {delivery_id}"):
            row = self._conn.execute(stmt).mappings().first()
        return None if row is None else _delivery(row)

    def deliveries(self, query: WebhookDeliveryQuery) -> list[WebhookDelivery]:
        """Return deliveries matching the query, oldest first."""
        d = WEBHOOK_DELIVERY.c
        stmt = sa.select(WEBHOOK_DELIVERY)
        if query.statuses is not None:
            stmt = stmt.where(d.status.in_(query.statuses))
        if query.subscription_id is not None:
            stmt = stmt.where(d.subscription_id == query.subscription_id)
        if query.case_id is not None:
            stmt = stmt.where(d.case_id == query.case_id)
        stmt = stmt.order_by(*_ORDER).limit(query.limit)
        with _storage_errors("list webhook messages"):
            return [_delivery(r) for r in self._conn.execute(stmt).mappings()]

    def next_wakeup(self) -> datetime | None:
        """Return when a delivery is next due: an attempt, or a lease running out."""
        d = WEBHOOK_DELIVERY.c
        retries = sa.select(sa.func.min(d.next_attempt_at)).where(d.status.in_(_READY))
        leases = sa.select(sa.func.min(d.claimed_until)).where(d.status == _SENDING)
        with _storage_errors("plan the next webhook delivery"):
            found = [
                self._conn.execute(s).scalar_one_or_none() for s in (retries, leases)
            ]
        return min((_aware(f) for f in found if f is not None), default=None)


def _held(delivery_id: str, token: datetime) -> tuple[sa.ColumnElement[bool], ...]:
    d = WEBHOOK_DELIVERY.c
    return (
        d.delivery_id == delivery_id,
        d.status == _SENDING,
        d.claimed_until == token,
    )


def _subscription(row: Mapping[Any, Any]) -> WebhookSubscription:
    return WebhookSubscription(
        subscription_id=row["subscription_id"],
        url=row["url"],
        event_types=tuple(row["event_types"]),
        description=row["description"],
        created_at=row["created_at"],
        created_by=row["created_by"],
        disabled_at=row["disabled_at"],
    )


def _delivery_row(delivery: WebhookDelivery) -> dict[str, Any]:
    row = {f.name: getattr(delivery, f.name) for f in dataclasses.fields(delivery)}
    row["status"] = delivery.status.value
    row["payload"] = dict(delivery.payload)
    return row


def _delivery(row: Mapping[Any, Any]) -> WebhookDelivery:
    fields = {f.name: row[f.name] for f in dataclasses.fields(WebhookDelivery)}
    fields["status"] = WebhookStatus(row["status"])
    return WebhookDelivery(**fields)


def _aware(value: Any) -> datetime:
    # Aggregates bypass the column type, so SQLite hands back text or naive values.
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        msg = f"unexpected instant {value!r}"
        raise TypeError(msg)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
