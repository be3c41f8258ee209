"""Webhook subscriptions and deliveries; per-officer calendar feeds."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response

from rrm.adapters.email.ics import FeedEvent, feed_ics
from rrm.errors import FeedNotFound
from rrm.server.context import Caller, Reader, service
from rrm.server.models import FeedBody, WebhookBody
from rrm.service import credentials as creds
from rrm.service import webhooks
from rrm.service.access import Action
from rrm.service.ports import WebhookDelivery, WebhookStatus, WebhookSubscription
from rrm.views.calendar import feed_events

__all__ = ["feeds", "router"]

router = APIRouter()
#: The feed itself lives outside /api/v1: calendar clients fetch it without a
#: bearer token, the secret in its address is the credential.
feeds = APIRouter(tags=["calendar feeds"])


def _subscription(s: WebhookSubscription) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "subscription_id": s.subscription_id,
        "url": s.url,
        "event_types": list(s.event_types),
        "description": s.description,
        "created_at": s.created_at.isoformat(),
        "created_by": s.created_by,
        "disabled_at": s.disabled_at.isoformat() if s.disabled_at else None,
    }
    if s.secret:
        doc["secret"] = s.secret
    return doc


def _delivery(d: WebhookDelivery) -> dict[str, Any]:
    return {
        "delivery_id": d.delivery_id,
        "subscription_id": d.subscription_id,
        "event_type": d.event_type,
        "case_id": d.case_id,
        "seq": d.seq,
        "status": d.status.value,
        "attempts": d.attempts,
        "created_at": d.created_at.isoformat(),
        "next_attempt_at": d.next_attempt_at.isoformat() if d.next_attempt_at else None,
        "last_error": d.last_error,
        "last_status": d.last_status,
        "payload": dict(d.payload),
    }


def _admin(request: Request, principal: Any) -> Any:
    engine = service(request).engine
    engine.authorize(principal, Action.MANAGE_WEBHOOKS, "admin")
    return engine


@router.post("/webhooks", status_code=201, tags=["webhooks"], summary="Subscribe")
def subscribe(request: Request, principal: Caller, body: WebhookBody) -> dict[str, Any]:
    """Subscribe an endpoint; the signing secret is returned this once."""
    engine = _admin(request, principal)
    made = webhooks.create_subscription(
        engine.uow_factory,
        url=body.url,
        event_types=body.event_types,
        description=body.description,
        created_by=principal.principal_id,
        now=engine.clock.now(),
    )
    return _subscription(made)


@router.get("/webhooks", tags=["webhooks"], summary="List subscriptions")
def subscriptions(request: Request, principal: Caller) -> dict[str, Any]:
    """Every subscription, without secrets."""
    engine = _admin(request, principal)
    found = webhooks.list_subscriptions(engine.uow_factory)
    return {"subscriptions": [_subscription(s) for s in found]}


@router.get(
    "/webhooks/deliveries", tags=["webhooks"], summary="Deliveries (dead letters)"
)
def deliveries(
    request: Request,
    principal: Caller,
    status: Annotated[list[WebhookStatus] | None, Query()] = None,
    subscription_id: Annotated[str | None, Query(max_length=200)] = None,
    case_id: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Deliveries by status (pending, sending, delivered, failed, dead)."""
    engine = _admin(request, principal)
    found = webhooks.list_deliveries(
        engine.uow_factory,
        status=tuple(s.value for s in status) if status else None,
        subscription_id=subscription_id,
        case_id=case_id,
        limit=limit,
    )
    return {"deliveries": [_delivery(d) for d in found]}


@router.post(
    "/webhooks/deliveries/{delivery_id}/retry",
    tags=["webhooks"],
    summary="Retry a delivery",
)
def retry_delivery(
    request: Request, principal: Caller, delivery_id: str
) -> dict[str, Any]:
    """Queue a failed or dead-lettered delivery again, under its webhook-id."""
    engine = _admin(request, principal)
    again = webhooks.retry_delivery(
        engine.uow_factory, delivery_id, now=engine.clock.now()
    )
    return _delivery(again)


@router.get(
    "/webhooks/{subscription_id}", tags=["webhooks"], summary="One subscription"
)
def subscription(
    request: Request, principal: Caller, subscription_id: str
) -> dict[str, Any]:
    """One subscription, without its secret."""
    engine = _admin(request, principal)
    return _subscription(webhooks.get_subscription(engine.uow_factory, subscription_id))


@router.delete(
    "/webhooks/{subscription_id}",
    status_code=204,
    tags=["webhooks"],
    summary="Delete a subscription",
)
def unsubscribe(request: Request, principal: Caller, subscription_id: str) -> Response:
    """Delete a subscription and its queued deliveries."""
    engine = _admin(request, principal)
    webhooks.delete_subscription(engine.uow_factory, subscription_id)
    return Response(status_code=204)


def _feed(feed: creds.CalendarFeed, url: str | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "feed_id": feed.feed_id,
        "officer_id": feed.officer_id,
        "created_at": feed.created_at.isoformat(),
        "created_by": feed.created_by,
        "revoked_at": feed.revoked_at.isoformat() if feed.revoked_at else None,
    }
    if url is not None:
        doc["url"] = url
    return doc


def _feed_owner(request: Request, principal: Any, officer_id: str) -> None:
    """Officers manage their own feeds; supervisors and admins anyone's."""
    if officer_id != principal.principal_id:
        service(request).engine.authorize(principal, Action.MANAGE_FEEDS)


@router.post(
    "/feeds", status_code=201, tags=["calendar feeds"], summary="Create a feed"
)
def create_feed(request: Request, principal: Reader, body: FeedBody) -> dict[str, Any]:
    """Create a secret calendar feed of an officer's open deadlines (shown once)."""
    svc = service(request)
    officer = body.officer_id or principal.principal_id
    _feed_owner(request, principal, officer)
    feed, secret = creds.create_feed(
        svc.credentials,
        officer_id=officer,
        created_by=principal.principal_id,
        now=svc.engine.clock.now(),
    )
    base = svc.settings.public_url.rstrip("/")
    https = base.split("://", 1)[-1]
    return _feed(feed, url=f"webcal://{https}/feeds/{secret}.ics")


@router.get("/feeds", tags=["calendar feeds"], summary="Your feeds")
def list_feeds(
    request: Request,
    principal: Caller,
    officer_id: Annotated[str | None, Query(max_length=200)] = None,
) -> dict[str, Any]:
    """Feeds of an officer (yours by default), without their secrets."""
    officer = officer_id or principal.principal_id
    _feed_owner(request, principal, officer)
    found = service(request).credentials.feeds(officer)
    return {"feeds": [_feed(f) for f in found]}


@router.delete(
    "/feeds/{feed_id}",
    status_code=204,
    tags=["calendar feeds"],
    summary="Revoke a feed",
)
def revoke_feed(request: Request, principal: Caller, feed_id: str) -> Response:
    """Revoke a feed: its address stops working at once."""
    svc = service(request)
    found = svc.credentials.feed(feed_id)
    if found is None:
        raise FeedNotFound(feed_id)
    _feed_owner(request, principal, found[0].officer_id)
    svc.credentials.revoke_feed(feed_id, svc.engine.clock.now())
    return Response(status_code=204)


@feeds.get(
    "/feeds/{secret}.ics",
    summary="An officer's deadlines as iCalendar",
    response_class=Response,
    responses={200: {"content": {"text/calendar": {}}}},
)
def calendar(
    request: Request,
    secret: Annotated[str, Path(max_length=100)],
) -> Response:
    """One all-day event per open deadline of the officer's cases."""
    svc = service(request)
    feed = creds.authenticate_feed(svc.credentials, secret)
    engine = svc.engine
    cases = engine.find(officer_id=feed.officer_id)
    base = svc.settings.public_url.rstrip("/")
    items = [
        FeedEvent(**e)
        for e in feed_events(cases, link=f"{base}/api/v1/cases/{{case_id}}")
    ]
    body = feed_ics(
        items, name=f"RRM deadlines: {feed.officer_id}", stamp=engine.clock.now()
    )
    return Response(
        body,
        media_type="text/calendar; charset=utf-8",
        headers={"Cache-Control": "private, max-age=300"},
    )
