"""Across cases: deadlines, alerts, workflows, the audit and the facility registry."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response

from rrm.domain.alerts import AlertStatus
from rrm.server.context import Caller, Reader, service
from rrm.service.access import Action
from rrm.views import alert_json, chain_json, deadline_json, workflow_json
from rrm.workflow.diagram import mermaid

__all__ = ["router"]

router = APIRouter()


@router.get("/deadlines", tags=["deadlines"], summary="Deadlines due soon")
def due(
    request: Request,
    principal: Reader,
    within: Annotated[int, Query(ge=0, le=3660)] = 7,
    unit: Literal["calendar", "business"] = "calendar",
    officer_id: Annotated[str | None, Query(max_length=200)] = None,
) -> dict[str, Any]:
    """Open deadlines due within N days across cases (overdue ones included)."""
    engine = service(request).engine
    now = engine.clock.now()
    found = engine.due(within, unit=unit, officer_id=officer_id)
    return {"deadlines": [deadline_json(d, now) for d in found]}


@router.get("/deadlines/overdue", tags=["deadlines"], summary="Lapsed deadlines")
def overdue(
    request: Request,
    principal: Reader,
    officer_id: Annotated[str | None, Query(max_length=200)] = None,
) -> dict[str, Any]:
    """Open deadlines whose due instant has passed."""
    engine = service(request).engine
    now = engine.clock.now()
    return {
        "deadlines": [
            deadline_json(d, now) for d in engine.overdue(officer_id=officer_id)
        ]
    }


@router.get("/alerts", tags=["alerts"], summary="The alert outbox")
def alerts(
    request: Request,
    principal: Reader,
    status: Annotated[list[AlertStatus] | None, Query()] = None,
    case_id: Annotated[str | None, Query(max_length=200)] = None,
    recipient_id: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Alerts owed, sent, failed or dead-lettered, oldest first."""
    engine = service(request).engine
    statuses = tuple(s.value for s in status) if status else None
    found = engine.alerts(
        status=statuses, case_id=case_id, recipient_id=recipient_id, limit=limit
    )
    return {"alerts": [alert_json(a) for a in found]}


@router.post("/alerts/{alert_id}/retry", tags=["alerts"], summary="Retry an alert")
def retry(request: Request, principal: Caller, alert_id: str) -> dict[str, Any]:
    """Put a failed or dead-lettered alert back in the queue (administrators)."""
    engine = service(request).engine
    engine.authorize(principal, Action.RETRY_ALERT, "admin")
    return alert_json(engine.retry(alert_id))


@router.post(
    "/alerts/{alert_id}/acknowledge", tags=["alerts"], summary="Acknowledge an alert"
)
def acknowledge(request: Request, principal: Reader, alert_id: str) -> dict[str, Any]:
    """Record that you have seen an alert (its recipient, or a case supervisor)."""
    engine = service(request).engine
    acked = engine.acknowledge(
        alert_id, officer_id=principal.principal_id, principal=principal
    )
    return alert_json(acked)


@router.get("/workflows", tags=["workflows"], summary="Loaded workflows")
def workflows(request: Request, principal: Reader) -> dict[str, Any]:
    """Every loaded workflow version with its status."""
    loaded = service(request).engine.workflows
    return {
        "workflows": [
            {
                "id": spec.workflow_id,
                "version": spec.version,
                "title": spec.title,
                "status": spec.status,
            }
            for spec in sorted(
                loaded.specs.values(), key=lambda s: (s.workflow_id, s.version)
            )
        ]
    }


@router.get("/workflows/{workflow_id}", tags=["workflows"], summary="A workflow")
def workflow(
    request: Request,
    principal: Reader,
    workflow_id: str,
    version: Annotated[int | None, Query(ge=1, le=10_000)] = None,
) -> dict[str, Any]:
    """States, openings, transitions, deadlines, citations and evidence levels."""
    spec = service(request).engine.workflows.get(workflow_id, version)
    return workflow_json(spec)


@router.get(
    "/workflows/{workflow_id}/diagram",
    tags=["workflows"],
    summary="A workflow's diagram (Mermaid)",
    response_class=Response,
    responses={200: {"content": {"text/vnd.mermaid": {}}}},
)
def diagram(
    request: Request,
    principal: Reader,
    workflow_id: str,
    version: Annotated[int | None, Query(ge=1, le=10_000)] = None,
) -> Response:
    """The state diagram as Mermaid text."""
    spec = service(request).engine.workflows.get(workflow_id, version)
    return Response(mermaid(spec), media_type="text/vnd.mermaid")


@router.get("/audit/verify", tags=["audit"], summary="Verify history chains")
def verify(
    request: Request,
    principal: Caller,
    case: Annotated[str | None, Query(max_length=200)] = None,
) -> dict[str, Any]:
    """Check one case's chain, or every case's."""
    engine = service(request).engine
    engine.authorize(principal, Action.AUDIT)
    refs = (
        [case] if case is not None else [c.case_id for c in engine.find(intact=False)]
    )
    found = [engine.verify(ref) for ref in refs]
    reports = [chain_json(r, r.external_ref or r.case_id) for r in found]
    return {"ok": all(r["ok"] for r in reports), "cases": reports}


@router.get("/audit/anchors", tags=["audit"], summary="Anchors of every chain")
def anchors(request: Request, principal: Caller) -> dict[str, Any]:
    """The newest hash of every case, to keep where the database's writers cannot."""
    engine = service(request).engine
    engine.authorize(principal, Action.AUDIT)
    found = [engine.anchor(c.case_id) for c in engine.find(intact=False)]
    return {
        "anchors": [{"case_id": a.case_id, "seq": a.seq, "hash": a.hash} for a in found]
    }


@router.get("/facilities", tags=["facilities"], summary="The facility registry")
def facilities(request: Request, principal: Reader) -> dict[str, Any]:
    """Every facility with its cases and denial-of-rights determinations."""
    found = service(request).engine.facilities()
    return {"facilities": [_facility(f) for f in found]}


@router.get("/facilities/{facility_id}", tags=["facilities"], summary="One facility")
def facility(request: Request, principal: Reader, facility_id: str) -> dict[str, Any]:
    """One facility with its cases and determinations."""
    return _facility(service(request).engine.facility(facility_id))


def _facility(f: Any) -> dict[str, Any]:
    return {
        "facility_id": f.facility.facility_id,
        "name": f.facility.name,
        "owner": f.facility.owner,
        "country": f.facility.country.value,
        "city": f.facility.city,
        "region": f.facility.region,
        "sector": f.facility.sector,
        "cases": f.cases,
        "determinations": f.determinations,
        "owner_determinations": f.owner_determinations,
    }
