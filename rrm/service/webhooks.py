"""Webhooks: domain events queued with the change, then signed and delivered.

A change's events are written to the webhook outbox in the change's own
transaction (:func:`record_change`), one row per matching subscription and event,
so a rolled-back change queues nothing and a committed one is never lost. The
subscription and outbox use cases for administrators live here too; sending is
in :mod:`rrm.service.webhook_delivery` (re-exported here). Payloads carry
identifiers only, never petitioners, reasons or free text.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

import structlog

from rrm.domain.case import require_aware
from rrm.domain.events import CaseOpened, DeadlineChanged, DomainEvent, TransitionFired
from rrm.errors import InvalidInput, WebhookNotFound
from rrm.service import validation
from rrm.service.ports import (
    WebhookDelivery,
    WebhookDeliveryQuery,
    WebhookStatus,
    WebhookSubscription,
)
from rrm.service.webhook_delivery import (
    WebhookReport,
    WebhookSettings,
    deliver_webhooks,
    next_webhook_wakeup,
    settle,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from rrm.domain.case import Deadline, HistoryEntry, JSONValue
    from rrm.service.ports import (
        CaseChange,
        UnitOfWork,
        UnitOfWorkFactory,
    )

__all__ = [
    "EVENT_TYPES",
    "WebhookReport",
    "WebhookSettings",
    "change_events",
    "check_event_types",
    "check_url",
    "create_subscription",
    "deadline_change",
    "delete_subscription",
    "deliver_webhooks",
    "disable_subscription",
    "enable_subscription",
    "event_type",
    "get_delivery",
    "get_subscription",
    "list_deliveries",
    "list_subscriptions",
    "next_webhook_wakeup",
    "record_change",
    "retry_delivery",
    "settle",
    "subscribed",
]

log = structlog.get_logger("rrm.webhooks")

#: Every event type a subscription can name; ``*``, ``case.*`` and ``deadline.*``
#: match groups of them.
EVENT_TYPES: Final = (
    "case.opened",
    "case.event_recorded",
    "deadline.opened",
    "deadline.met",
    "deadline.cancelled",
    "deadline.extended",
    "deadline.paused",
    "deadline.resumed",
    "deadline.recomputed",
)
_PATTERNS: Final = ("*", "case.*", "deadline.*")
_MAX_URL: Final = 2048


# -- events of a change ----------------------------------------------------------


def deadline_change(d: Deadline, entry: HistoryEntry) -> str:
    """Name what the change recorded by *entry* did to deadline *d*.

    Returns:
        ``opened``, ``met``, ``cancelled``, ``extended``, ``paused``, ``resumed``
        or ``recomputed`` (moved by another deadline, or marked lapsed).
    """
    if d.opened_seq == entry.seq:
        return "opened"
    if d.closed_seq == entry.seq:
        return d.status.value  # met or cancelled
    return {
        "deadline_extended": "extended",
        "deadline_paused": "paused",
        "deadline_resumed": "resumed",
    }.get(entry.event, "recomputed")


def change_events(change: CaseChange) -> list[DomainEvent]:
    """Return the domain events a committed change produces, in order.

    The case's opening or the recorded event comes first, then one event per
    deadline the change wrote.
    """
    case, entry = change.case, change.entry
    events: list[DomainEvent] = []
    if entry.from_state is None:
        events.append(
            CaseOpened(
                case_id=case.case_id,
                external_ref=case.external_ref,
                workflow=case.workflow_id,
                workflow_version=case.workflow_version,
                state=case.state,
                seq=entry.seq,
                at=entry.occurred_at,
            )
        )
    else:
        events.append(
            TransitionFired(
                case_id=case.case_id,
                event=entry.event,
                from_state=entry.from_state,
                to_state=case.state,
                actor=entry.actor,
                role=entry.role,
                seq=entry.seq,
                at=entry.occurred_at,
            )
        )
    events.extend(
        DeadlineChanged(
            case_id=case.case_id,
            deadline_id=d.deadline_id,
            key=d.key,
            change=deadline_change(d, entry),
            status=d.status.value,
            due_date=d.due_date,
            due_at=d.due_at,
            nominal=d.nominal,
            seq=entry.seq,
        )
        for d in change.deadlines
    )
    return events


def event_type(event: DomainEvent) -> str:
    """Return the webhook event type of a domain event (``deadline.met``, ...)."""
    if isinstance(event, CaseOpened):
        return "case.opened"
    if isinstance(event, TransitionFired):
        return "case.event_recorded"
    return f"deadline.{event.change}"


def subscribed(patterns: Sequence[str], kind: str) -> bool:
    """True when one of a subscription's *patterns* matches event type *kind*."""
    return any(
        p in {"*", kind} or (p.endswith(".*") and kind.startswith(p[:-1]))
        for p in patterns
    )


def _iso(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _data(event: DomainEvent, change: CaseChange) -> dict[str, JSONValue]:
    """Identifiers of the event only: no petitioner, reason or payload text."""
    data: dict[str, JSONValue] = {
        "case_id": event.case_id,
        "external_ref": change.case.external_ref,
        "seq": event.seq,
    }
    if isinstance(event, CaseOpened):
        data.update(
            workflow=event.workflow,
            workflow_version=event.workflow_version,
            state=event.state,
        )
    elif isinstance(event, TransitionFired):
        data.update(
            event=event.event,
            from_state=event.from_state,
            to_state=event.to_state,
            actor=event.actor,
            role=event.role,
        )
    else:
        data.update(
            deadline_id=event.deadline_id,
            key=event.key,
            change=event.change,
            status=event.status,
            due_date=event.due_date.isoformat(),
            due_at=_iso(event.due_at),
            nominal=event.nominal,
        )
    data["occurred_at"] = _iso(change.entry.occurred_at)
    return data


def _delivery_id(subscription_id: str, event: DomainEvent, kind: str) -> str:
    """The ``webhook-id``: derived from what it reports, so a repeat is the same."""
    deadline = event.deadline_id if isinstance(event, DeadlineChanged) else ""
    key = "\x1f".join((subscription_id, event.case_id, str(event.seq), kind, deadline))
    return "msg_" + hashlib.sha256(key.encode()).hexdigest()[:32]


def record_change(uow: UnitOfWork, change: CaseChange, *, now: datetime) -> int:
    """Queue the webhook messages of a change, in the change's transaction.

    Call it right after ``uow.cases.apply(change)``. Without subscriptions this
    costs one query per unit of work (the active subscriptions are read once and
    kept for the transaction).

    Args:
        uow: The open unit of work the change was applied in.
        change: The change just applied.
        now: When the change was recorded (aware); the payloads' ``timestamp``.

    Returns:
        How many messages were queued.

    .. versionadded:: 0.3.0
    """
    subscriptions = uow.webhooks.active_subscriptions()
    if not subscriptions:
        return 0
    stamp = _iso(require_aware("now", now))
    queued: list[WebhookDelivery] = []
    for event in change_events(change):
        kind = event_type(event)
        wanted = [s for s in subscriptions if subscribed(s.event_types, kind)]
        if not wanted:
            continue
        payload: dict[str, JSONValue] = {
            "type": kind,
            "timestamp": stamp,
            "data": _data(event, change),
        }
        queued.extend(
            WebhookDelivery(
                delivery_id=_delivery_id(s.subscription_id, event, kind),
                subscription_id=s.subscription_id,
                event_type=kind,
                case_id=event.case_id,
                seq=event.seq,
                payload=payload,
                created_at=now,
                next_attempt_at=now,
            )
            for s in wanted
        )
    return uow.webhooks.add_deliveries(queued) if queued else 0


# -- subscriptions ---------------------------------------------------------------


def check_url(value: object) -> str:
    """Return *value* if it is an http or https URL with a host.

    Raises:
        InvalidInput: Anything else, with the reason.
    """
    url = validation.text("url", value)
    if len(url) > _MAX_URL or any(c.isspace() or ord(c) < 0x20 for c in url):  # noqa: PLR2004
        raise InvalidInput("url", "must be one URL without spaces, at most 2048 long")
    try:
        parts = urlsplit(url)
    except ValueError:  # an unbalanced [ipv6] host
        raise InvalidInput("url", "is not a valid URL") from None
    if parts.scheme.lower() not in {"http", "https"}:
        raise InvalidInput("url", "must start with http:// or https://")
    if not parts.hostname:
        raise InvalidInput(
            "url", "must name a host, e.g. https://hooks.example.gov/rrm"
        )
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise InvalidInput("url", "has a port that is not a number from 1 to 65535")
    return url


def check_event_types(value: object) -> tuple[str, ...]:
    """Return the event types of a subscription, without repeats.

    Raises:
        InvalidInput: If *value* is not a non-empty list of known event types,
            prefixes (``case.*``, ``deadline.*``) or ``*``.
    """
    if isinstance(value, str) or not isinstance(value, list | tuple) or not value:
        raise InvalidInput(
            "event_types", "must be a non-empty list, e.g. ['case.*', 'deadline.met']"
        )
    known = (*EVENT_TYPES, *_PATTERNS)
    for name in value:
        if not isinstance(name, str) or name not in known:
            raise InvalidInput(
                "event_types",
                f"unknown event type {name!r}; use one of {', '.join(known)}",
            )
    return tuple(dict.fromkeys(value))


def create_subscription(
    uow_factory: UnitOfWorkFactory,
    *,
    url: str,
    event_types: Sequence[str],
    now: datetime,
    description: str = "",
    created_by: str = "",
) -> WebhookSubscription:
    """Subscribe an endpoint to domain events; returns it with its secret, once.

    Args:
        uow_factory: The database.
        url: Where to post (http or https).
        event_types: Event types, prefixes (``deadline.*``) or ``*``.
        now: When the subscription is made (aware).
        description: Free text for administrators.
        created_by: Who made it.

    Returns:
        The subscription with its generated ``whsec_...`` signing secret; the
        secret is never returned again.

    Raises:
        InvalidInput: A bad URL or event type; nothing is written.

    .. versionadded:: 0.3.0
    """
    subscription = WebhookSubscription(
        subscription_id=f"sub_{uuid.uuid4().hex}",
        url=check_url(url),
        event_types=check_event_types(event_types),
        description=validation.optional_text("description", description),
        created_at=require_aware("now", now).astimezone(UTC),
        created_by=validation.optional_text("created_by", created_by),
        secret="whsec_" + base64.b64encode(secrets.token_bytes(32)).decode(),
    )
    with uow_factory() as uow:
        uow.webhooks.add_subscription(subscription)
        uow.commit()
    log.info(
        "webhook_subscription_created",
        subscription_id=subscription.subscription_id,
        event_types=list(subscription.event_types),
    )
    return subscription


def list_subscriptions(uow_factory: UnitOfWorkFactory) -> list[WebhookSubscription]:
    """Return every subscription, oldest first, without secrets."""
    with uow_factory(read_only=True) as uow:
        return uow.webhooks.subscriptions()


def get_subscription(
    uow_factory: UnitOfWorkFactory, subscription_id: str
) -> WebhookSubscription:
    """Return one subscription, without its secret.

    Raises:
        WebhookNotFound: If there is none with that id.
    """
    ident = validation.text("subscription_id", subscription_id)
    with uow_factory(read_only=True) as uow:
        found = uow.webhooks.subscription(ident)
    if found is None:
        raise WebhookNotFound(ident)
    return found


def _set_disabled(
    uow_factory: UnitOfWorkFactory, subscription_id: str, *, at: datetime | None
) -> WebhookSubscription:
    ident = validation.text("subscription_id", subscription_id)
    with uow_factory() as uow:
        uow.webhooks.set_disabled(ident, at=at)
        found = uow.webhooks.subscription(ident)
        if found is None:
            raise WebhookNotFound(ident)
        uow.commit()
    event = (
        "webhook_subscription_enabled"
        if at is None
        else "webhook_subscription_disabled"
    )
    log.info(event, subscription_id=ident)
    return found


def disable_subscription(
    uow_factory: UnitOfWorkFactory, subscription_id: str, *, now: datetime
) -> WebhookSubscription:
    """Stop queueing and sending for a subscription (kept, with its deliveries).

    Messages still queued for it are dead-lettered when their turn comes; after
    :func:`enable_subscription` they can be retried.

    Raises:
        WebhookNotFound: If there is none with that id.
    """
    return _set_disabled(
        uow_factory, subscription_id, at=require_aware("now", now).astimezone(UTC)
    )


def enable_subscription(
    uow_factory: UnitOfWorkFactory, subscription_id: str
) -> WebhookSubscription:
    """Queue and send for a disabled subscription again (changes from now on).

    Raises:
        WebhookNotFound: If there is none with that id.
    """
    return _set_disabled(uow_factory, subscription_id, at=None)


def delete_subscription(uow_factory: UnitOfWorkFactory, subscription_id: str) -> None:
    """Delete a subscription with its secret and all its deliveries.

    Raises:
        WebhookNotFound: If there is none with that id.
    """
    ident = validation.text("subscription_id", subscription_id)
    with uow_factory() as uow:
        if not uow.webhooks.delete_subscription(ident):
            raise WebhookNotFound(ident)
        uow.commit()
    log.info("webhook_subscription_deleted", subscription_id=ident)


# -- the outbox, seen by administrators ------------------------------------------


def list_deliveries(
    uow_factory: UnitOfWorkFactory,
    *,
    status: Sequence[str] | None = None,
    subscription_id: str | None = None,
    case_id: str | None = None,
    limit: int | None = None,
) -> list[WebhookDelivery]:
    """Return deliveries (``pending``, ``failed``, ``dead``, ...), oldest first.

    Raises:
        InvalidInput: An unknown status, empty id or a bad limit.
    """
    statuses = None
    if status is not None:
        if isinstance(status, str) or not isinstance(status, list | tuple):
            raise InvalidInput("status", "must be a list of delivery statuses")
        known = {s.value for s in WebhookStatus}
        for s in status:
            if s not in known:
                raise InvalidInput(
                    "status", f"unknown delivery status {s!r}; use {', '.join(known)}"
                )
        statuses = tuple(status)
    if limit is not None and (type(limit) is not int or limit < 1):
        raise InvalidInput("limit", "must be a whole number of at least 1")
    query = WebhookDeliveryQuery(
        statuses=statuses,
        subscription_id=None
        if subscription_id is None
        else validation.text("subscription_id", subscription_id),
        case_id=None if case_id is None else validation.text("case_id", case_id),
        limit=limit,
    )
    with uow_factory(read_only=True) as uow:
        return uow.webhooks.deliveries(query)


def get_delivery(uow_factory: UnitOfWorkFactory, delivery_id: str) -> WebhookDelivery:
    """Return one delivery.

    Raises:
        WebhookNotFound: If there is none with that id.
    """
    ident = validation.text("delivery_id", delivery_id)
    with uow_factory(read_only=True) as uow:
        found = uow.webhooks.delivery(ident)
    if found is None:
        raise WebhookNotFound(ident, kind="delivery")
    return found


def retry_delivery(
    uow_factory: UnitOfWorkFactory, delivery_id: str, *, now: datetime
) -> WebhookDelivery:
    """Put a failed or dead-lettered delivery back in the queue, to send now.

    It keeps its ``webhook-id`` and starts a fresh round of attempts.

    Raises:
        WebhookNotFound: If there is no such delivery.
        InvalidInput: If it is not failed or dead, or its subscription is
            disabled.
    """
    ident = validation.text("delivery_id", delivery_id)
    at = require_aware("now", now).astimezone(UTC)
    with uow_factory() as uow:
        found = uow.webhooks.delivery(ident)
        if found is None:
            raise WebhookNotFound(ident, kind="delivery")
        target = uow.webhooks.target(found.subscription_id)
        if target is None or target.disabled:
            raise InvalidInput(
                "delivery_id",
                f"its subscription {found.subscription_id} is disabled; "
                "enable it first",
            )
        if not uow.webhooks.requeue(ident, at=at):
            raise InvalidInput(
                "delivery_id", f"delivery is {found.status.value}, not failed or dead"
            )
        again = uow.webhooks.delivery(ident)
        uow.commit()
    assert again is not None  # noqa: S101 - read in the same transaction
    log.info(
        "webhook_requeued",
        delivery_id=ident,
        subscription_id=found.subscription_id,
        case_id=found.case_id,
    )
    return again
