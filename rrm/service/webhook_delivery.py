"""Webhook delivery: claim, sign and post queued messages; record each outcome.

Every message is claimed under a lease, its claim renewed just before the send,
and its outcome recorded right after in a transaction of its own, conditional on
the claim, as alert delivery does (:mod:`rrm.service.delivery`). 2xx is
delivered; 410 Gone dead-letters the message and disables its subscription; any
other answer, a timeout or a refused connection is retried after 1, 2, 4, ...
minutes, then hourly, and dead-lettered after the last attempt. A worker that dies
between a send and its record repeats that one message once the lease runs out,
under the same ``webhook-id``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final, final

import structlog

from rrm.domain.case import require_aware
from rrm.errors import InvalidInput, NotificationError
from rrm.service.ports import WebhookStatus

if TYPE_CHECKING:
    from rrm.service.ports import (
        UnitOfWork,
        UnitOfWorkFactory,
        WebhookDelivery,
        WebhookSender,
        WebhookTarget,
    )

__all__ = [
    "WebhookReport",
    "WebhookSettings",
    "deliver_webhooks",
    "next_webhook_wakeup",
    "settle",
]

log = structlog.get_logger("rrm.webhooks")

# After this many temporary failures in a row to one endpoint it is taken to be
# down: its other claimed messages wait for the next attempt without using one.
_BREAKER: Final = 3
_GONE: Final = 410
_OK: Final = range(200, 300)


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookSettings:
    """How webhook deliveries are retried, leased and batched.

    Attributes:
        max_attempts: Attempts before a delivery is dead-lettered.
        backoff_base: Wait before the first retry; it doubles with each attempt.
        backoff_max: The longest wait between retries.
        lease: How long a claimed delivery stays reserved for its worker.
        batch: Deliveries claimed per transaction.

    Raises:
        InvalidInput: A count below 1 or a duration that is not positive.

    .. versionadded:: 0.3.0
    """

    # 1, 2, 4, ... minutes, then hourly: twelve attempts span about 7.5 hours.
    max_attempts: int = 12
    backoff_base: timedelta = timedelta(minutes=1)
    backoff_max: timedelta = timedelta(hours=1)
    lease: timedelta = timedelta(minutes=5)
    batch: int = 100

    def __post_init__(self) -> None:
        for name in ("max_attempts", "batch"):
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise InvalidInput(name, "must be a whole number of at least 1")
        for name in ("backoff_base", "backoff_max", "lease"):
            value = getattr(self, name)
            if not isinstance(value, timedelta) or value <= timedelta(0):
                raise InvalidInput(name, "must be a positive duration")


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookReport:
    """What one round of webhook delivery did.

    Attributes:
        delivered: Messages the endpoint accepted (2xx).
        failed: Attempts that failed and were scheduled again.
        dead: Deliveries dead-lettered (last attempt, 410 Gone, a permanent
            failure, or their subscription disabled).
        disabled: Subscriptions disabled because their endpoint answered 410.
        postponed: Messages held back, without an attempt, because their
            endpoint kept failing in this round.

    .. versionadded:: 0.3.0
    """

    delivered: int = 0
    failed: int = 0
    dead: int = 0
    disabled: int = 0
    postponed: int = 0

    def __add__(self, other: WebhookReport) -> WebhookReport:
        return WebhookReport(
            **{
                f.name: getattr(self, f.name) + getattr(other, f.name)
                for f in dataclasses.fields(self)
            }
        )


def next_webhook_wakeup(uow: UnitOfWork) -> datetime | None:
    """Return when a webhook delivery is next owed (a retry or a lease end), if any.

    .. versionadded:: 0.3.0
    """
    return uow.webhooks.next_wakeup()


@dataclass(frozen=True, slots=True, kw_only=True)
class _Round:
    """One round's fixed inputs."""

    uow_factory: UnitOfWorkFactory
    sender: WebhookSender
    settings: WebhookSettings
    now: datetime
    started: float

    def instant(self) -> datetime:
        """The round's instant plus the time spent since it began.

        The clock is read once per round; time spent sending is measured, so a
        long round still stamps and leases from the real moment.
        """
        return self.now + timedelta(seconds=time.monotonic() - self.started)


def deliver_webhooks(
    uow_factory: UnitOfWorkFactory,
    sender: WebhookSender,
    *,
    now: datetime,
    settings: WebhookSettings | None = None,
) -> WebhookReport:
    """Send every webhook message that is due, oldest first; record each outcome.

    Never raises for an endpoint's failure (that is a retry or a dead letter).
    A database failure while recording propagates; the message in flight is then
    sent again, with the same ``webhook-id``, once its lease runs out.

    Args:
        uow_factory: The database.
        sender: Posts the signed messages.
        now: This round's instant (aware).
        settings: Retries, lease and batch size; the defaults otherwise.

    Returns:
        Counts of what was delivered, retried, dead-lettered and postponed.

    .. versionadded:: 0.3.0
    """
    work = _Round(
        uow_factory=uow_factory,
        sender=sender,
        settings=settings or WebhookSettings(),
        now=require_aware("now", now).astimezone(UTC),
        started=time.monotonic(),
    )
    report = WebhookReport()
    while True:
        with uow_factory() as uow:
            claimed = uow.webhooks.claim_deliveries(
                now=work.now,
                limit=work.settings.batch,
                lease_until=work.instant() + work.settings.lease,
            )
            uow.commit()
        if not claimed:
            return report
        report += _batch(work, claimed)


def _batch(work: _Round, claimed: list[WebhookDelivery]) -> WebhookReport:
    report = WebhookReport()
    failures: dict[str, int] = {}
    postponed: list[WebhookDelivery] = []
    for delivery in claimed:
        sub = delivery.subscription_id
        if failures.get(sub, 0) >= _BREAKER:
            postponed.append(delivery)
            continue
        part = _send_one(work, delivery)
        if part is None:
            continue  # another worker holds it now
        report += part
        failures[sub] = failures.get(sub, 0) + 1 if part.failed else 0
    if postponed:
        _postpone(work, postponed)
        log.warning("webhook_endpoint_unreachable", postponed=len(postponed))
    return report + WebhookReport(postponed=len(postponed))


def _send_one(work: _Round, delivery: WebhookDelivery) -> WebhookReport | None:
    """Renew, send and record one claimed delivery; None if the claim was lost."""
    assert delivery.claimed_until is not None  # noqa: S101 - claimed ones carry it
    with work.uow_factory() as uow:
        token = uow.webhooks.renew_claim(
            delivery.delivery_id,
            token=delivery.claimed_until,
            until=work.instant() + work.settings.lease,
        )
        if token is None:
            return None
        target = uow.webhooks.target(delivery.subscription_id)
        uow.commit()
    outcome, gone = _attempt(work, delivery, target)
    with work.uow_factory() as uow:
        recorded = uow.webhooks.record_delivery(outcome, token=token)
        if gone:
            gone = uow.webhooks.set_disabled(outcome.subscription_id, at=work.now)
        uow.commit()
    if gone:
        log.warning(
            "webhook_subscription_disabled",
            subscription_id=outcome.subscription_id,
            status_code=_GONE,
        )
    if not recorded:
        return None
    return WebhookReport(
        delivered=outcome.status is WebhookStatus.DELIVERED,
        failed=outcome.status is WebhookStatus.FAILED,
        dead=outcome.status is WebhookStatus.DEAD,
        disabled=gone,
    )


def _attempt(
    work: _Round, delivery: WebhookDelivery, target: WebhookTarget | None
) -> tuple[WebhookDelivery, bool]:
    """Send one delivery; return its outcome and whether 410 Gone came back."""
    if target is None or target.disabled:
        log.warning(
            "webhook_dead_lettered",
            delivery_id=delivery.delivery_id,
            subscription_id=delivery.subscription_id,
            case_id=delivery.case_id,
            reason="subscription disabled",
        )
        return _dead(delivery, "subscription disabled", status=None, tried=False), False
    body = json.dumps(
        delivery.payload, separators=(",", ":"), ensure_ascii=False
    ).encode()
    status: int | None = None
    error, permanent = "", False
    try:
        status = work.sender.send(
            target.url,
            msg_id=delivery.delivery_id,
            timestamp=work.instant(),
            body=body,
            secret=target.secret,
        )
    except NotificationError as exc:
        error, permanent = str(exc)[:400], exc.permanent
    except Exception as exc:  # noqa: BLE001 - a host's sender must not stop the round
        # The type only: a message may quote the endpoint's URL.
        error = f"{type(exc).__name__} while sending"
    return settle(
        delivery,
        status=status,
        error=error,
        permanent=permanent,
        now=work.now,
        settings=work.settings,
    )


def settle(
    delivery: WebhookDelivery,
    *,
    status: int | None,
    error: str,
    permanent: bool,
    now: datetime,
    settings: WebhookSettings,
) -> tuple[WebhookDelivery, bool]:
    """Decide the outcome of one attempt (pure, apart from its log line).

    Args:
        delivery: The delivery as claimed.
        status: The endpoint's HTTP status, or ``None`` when none came back.
        error: Why no status came back (the sender's message).
        permanent: The sender judged that retrying cannot help.
        now: The round's instant.
        settings: Retry limits and backoff.

    Returns:
        The delivery as it now stands, and True when the endpoint answered 410
        Gone (its subscription must be disabled).
    """
    bound = log.bind(
        delivery_id=delivery.delivery_id,
        subscription_id=delivery.subscription_id,
        case_id=delivery.case_id,
        event_type=delivery.event_type,
        status_code=status,
    )
    attempts = delivery.attempts + 1
    if status in _OK:
        bound.info("webhook_delivered", attempts=attempts)
        delivered = dataclasses.replace(
            delivery,
            status=WebhookStatus.DELIVERED,
            attempts=attempts,
            last_status=status,
            last_error="",
            delivered_at=now,
            next_attempt_at=None,
            claimed_until=None,
        )
        return delivered, False
    if status == _GONE:
        bound.warning("webhook_dead_lettered", attempts=attempts, reason="gone")
        return _dead(
            delivery, "410 Gone: the endpoint asked to stop", status=status
        ), True
    reason = error or f"HTTP {status}"
    if permanent or attempts >= settings.max_attempts:
        bound.error("webhook_dead_lettered", attempts=attempts, permanent=permanent)
        return _dead(delivery, reason, status=status), False
    wait = min(settings.backoff_base * 2 ** (attempts - 1), settings.backoff_max)
    bound.warning(
        "webhook_failed", attempts=attempts, retry_in_seconds=int(wait.total_seconds())
    )
    failed = dataclasses.replace(
        delivery,
        status=WebhookStatus.FAILED,
        attempts=attempts,
        last_status=status,
        last_error=reason,
        next_attempt_at=now + wait,
        claimed_until=None,
    )
    return failed, False


def _dead(
    delivery: WebhookDelivery, reason: str, *, status: int | None, tried: bool = True
) -> WebhookDelivery:
    return dataclasses.replace(
        delivery,
        status=WebhookStatus.DEAD,
        attempts=delivery.attempts + tried,
        last_status=status if tried else delivery.last_status,
        last_error=reason,
        next_attempt_at=None,
        claimed_until=None,
    )


def _postpone(work: _Round, rest: list[WebhookDelivery]) -> None:
    """Give deliveries back for a later attempt, without using one up."""
    with work.uow_factory() as uow:
        for delivery in rest:
            assert delivery.claimed_until is not None  # noqa: S101
            later = dataclasses.replace(
                delivery,
                status=WebhookStatus.FAILED
                if delivery.attempts
                else WebhookStatus.PENDING,
                next_attempt_at=work.now + work.settings.backoff_base,
                claimed_until=None,
                last_error=delivery.last_error or "endpoint unreachable",
            )
            uow.webhooks.record_delivery(later, token=delivery.claimed_until)
        uow.commit()
