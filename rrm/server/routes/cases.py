"""Cases: list, open, read, record events, deadlines, officers, history, export."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Header, Query, Request, Response

from rrm import errors
from rrm.domain.access import Principal
from rrm.domain.case import Facility, Officer, Party, Petitioner
from rrm.domain.commands import (
    AssignOfficers,
    Claim,
    ExtendDeadline,
    FireEvent,
    OpenCase,
    PauseDeadline,
    ResumeDeadline,
)
from rrm.server.context import Caller, Reader, service
from rrm.server.models import (
    AssignBody,
    DeadlineChangeBody,
    ExtendBody,
    FireBody,
    OfficerBody,
    OpenCaseBody,
)
from rrm.server.problems import problem, responses
from rrm.service.access import Action, HostCheck
from rrm.service.transfer import export_case, import_cases
from rrm.views import case_json, deadline_json, entry_json, timeline_svg
from rrm.views.actions import available_json

__all__ = ["router"]

router = APIRouter(tags=["cases"])

_MAX_PAGE = 500
# A change: 409 on a conflict or a refused step, 412 under a stale If-Match.
_CHANGE = responses(409, 412)
IfMatch = Annotated[
    str | None,
    Header(
        description='The case version you read, as its ETag ("7"); 412 if it moved.'
    ),
]
IdempotencyKey = Annotated[
    str | None,
    Header(
        max_length=200,
        description="Repeating a request with the same key records it once.",
    ),
]


def _etag(version: int) -> str:
    return f'"{version}"'


def _expected(if_match: str | None) -> int | None:
    if if_match is None:
        return None
    text = if_match.strip().removeprefix("W/").strip('"')
    if not text.isdigit() or len(text) > 18:  # noqa: PLR2004 - fits 64 bits
        raise errors.InvalidInput("If-Match", 'give the ETag of the case, e.g. "7"')
    return int(text)


def _precondition(call: Any, if_match: str | None, request: Request) -> Any:
    """Run *call*; a version conflict under If-Match is 412, not 409."""
    try:
        return call()
    except errors.ConcurrencyConflict as exc:
        if if_match is None or isinstance(exc, errors.StaleCopy):
            raise
        return problem(
            412,
            "Precondition failed",
            exc.message,
            instance=request.url.path,
            kind="PreconditionFailed",
            extra={
                "error": "ConcurrencyConflict",
                "case_id": exc.case_id,
                "expected_version": exc.expected_version,
                "actual_version": exc.actual_version,
            },
        )


def _case_doc(request: Request, case: Any, response: Response) -> dict[str, Any]:
    engine = service(request).engine
    spec = engine.workflows.get(case.workflow_id, case.workflow_version)
    response.headers["ETag"] = _etag(case.version)
    return case_json(case, spec, engine.clock.now())


def _encode_cursor(at: datetime, case_id: str) -> str:
    raw = f"{at.isoformat()}|{case_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, _, case_id = raw.partition("|")
        moment = datetime.fromisoformat(at)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise errors.InvalidInput(
            "cursor", "is not a cursor this service gave"
        ) from None
    if not case_id or moment.tzinfo is None:
        raise errors.InvalidInput("cursor", "is not a cursor this service gave")
    return moment, case_id


@router.get("/cases", summary="List cases")
def list_cases(
    request: Request,
    principal: Reader,
    state: Annotated[str | None, Query(max_length=100)] = None,
    workflow: Annotated[str | None, Query(max_length=100)] = None,
    facility_id: Annotated[str | None, Query(max_length=200)] = None,
    officer_id: Annotated[str | None, Query(max_length=200)] = None,
    due_within: Annotated[int | None, Query(ge=0, le=3660)] = None,
    due_unit: Literal["calendar", "business"] = "calendar",
    q: Annotated[
        str | None,
        Query(max_length=200, description="Text in the reference or facility name"),
    ] = None,
    limit: Annotated[int | None, Query(ge=1, le=_MAX_PAGE)] = None,
    cursor: Annotated[str | None, Query(max_length=400)] = None,
) -> dict[str, Any]:
    """Cases newest first, filtered; ``next_cursor`` continues the listing."""
    svc = service(request)
    size = limit or svc.settings.page_size
    found = svc.engine.find(
        state=state,
        workflow=workflow,
        facility_id=facility_id,
        officer_id=officer_id,
        due_within=due_within,
        due_unit=due_unit,
        text=q,
        limit=size + 1,
        after=_decode_cursor(cursor) if cursor else None,
    )
    page = found[:size]
    now = svc.engine.clock.now()
    items = []
    for case in page:
        spec = svc.engine.workflows.get(case.workflow_id, case.workflow_version)
        doc = case_json(case, spec, now)
        doc.pop("possible_events", None)
        items.append(doc)
    more = len(found) > size
    last = page[-1] if page else None
    return {
        "items": items,
        "next_cursor": _encode_cursor(last.opened_at, last.case_id)
        if more and last is not None
        else None,
    }


def _officer(o: OfficerBody) -> Officer:
    return Officer(
        officer_id=o.officer_id,
        role=o.role,
        name=o.name,
        email=o.email,
        language=o.language,
        timezone=o.timezone,
    )


def _party(field: str, value: str) -> Party:
    try:
        return Party(value)
    except ValueError:
        raise errors.InvalidInput(field, "must be US, MX or CA") from None


@router.post("/cases", status_code=201, summary="Open a case", responses=responses(409))
def open_case(
    request: Request, response: Response, principal: Caller, body: OpenCaseBody
) -> dict[str, Any]:
    """Open a case as the signed-in principal, in a role it holds."""
    f = body.facility
    cmd = OpenCase(
        workflow=body.workflow,
        workflow_version=body.workflow_version,
        initiation=body.initiation,
        complainant=_party("complainant", body.complainant),
        respondent=_party("respondent", body.respondent),
        facility=Facility(
            facility_id=f.facility_id,
            name=f.name,
            owner=f.owner,
            country=_party("facility.country", f.country),
            city=f.city,
            region=f.region,
            sector=f.sector,
        ),
        claim=Claim(
            basis=body.claim.basis,
            sector_category=body.claim.sector_category,
            legal_provisions=tuple(body.claim.legal_provisions),
            nlrb_order=body.claim.nlrb_order,
            alleged_conduct_from=body.claim.alleged_conduct_from,
        ),
        petitioners=tuple(
            Petitioner(name=p.name, confidential=p.confidential, contact=p.contact)
            for p in body.petitioners
        ),
        officers=tuple(_officer(o) for o in body.officers),
        external_ref=body.external_ref,
        actor=principal.principal_id,
        role=body.role,
        reason=body.reason,
        payload=body.payload,
        at=body.at,
    )
    case = service(request).engine.open_case(cmd, principal=principal)
    response.headers["Location"] = f"{request.url.path}/{case.case_id}"
    return _case_doc(request, case, response)


@router.get("/cases/{case}", summary="Read a case")
def get_case(
    request: Request, response: Response, principal: Reader, case: str
) -> dict[str, Any]:
    """One case by id or reference; ``ETag`` is its version."""
    # One case shown: its rows are re-derived from its history first.
    found = service(request).engine.get(case, verified=True)
    return _case_doc(request, found, response)


@router.get("/cases/{case}/events/available", summary="Events you may record now")
def available_events(request: Request, principal: Reader, case: str) -> dict[str, Any]:
    """The events the signed-in principal may record now, with payload fields."""
    engine = service(request).engine
    found = engine.get(case)
    events = engine.available_events(found, principal=principal)
    return {
        "case_id": found.case_id,
        "state": found.state,
        "version": found.version,
        "events": available_json(events),
    }


@router.post("/cases/{case}/events", summary="Record an event", responses=_CHANGE)
def fire(
    request: Request,
    response: Response,
    principal: Caller,
    case: str,
    body: FireBody,
    if_match: IfMatch = None,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    """Record an event as the signed-in principal; the case after it."""
    engine = service(request).engine
    role = body.role
    if role is None:
        found = engine.get(case)
        case = found.case_id
        role = engine.role_for(
            found, body.event, principal=principal, idempotency_key=idempotency_key
        )
    cmd = FireEvent(
        case_id=case,
        event=body.event,
        actor=principal.principal_id,
        role=role,
        reason=body.reason,
        payload=body.payload,
        idempotency_key=idempotency_key,
        expected_version=_expected(if_match),
        at=body.at,
    )
    result = _precondition(
        lambda: engine.fire(cmd, principal=principal), if_match, request
    )
    if isinstance(result, Response):
        return result
    return _case_doc(request, result, response)


@router.get("/cases/{case}/history", summary="A case's history")
def history(request: Request, principal: Reader, case: str) -> dict[str, Any]:
    """Every history entry, oldest first, with its hashes and credential."""
    engine = service(request).engine
    found = engine.get(case, verified=True)
    return {
        "case_id": found.case_id,
        "entries": [entry_json(e) for e in engine.history(found.case_id)],
    }


@router.get("/cases/{case}/deadlines", summary="A case's deadlines")
def deadlines(request: Request, principal: Reader, case: str) -> dict[str, Any]:
    """Every deadline of the case (open and closed), with its explanation."""
    engine = service(request).engine
    found = engine.get(case)
    now = engine.clock.now()
    return {
        "case_id": found.case_id,
        "deadlines": [deadline_json(d, now) for d in found.deadlines],
    }


def _deadline_change(
    request: Request,
    response: Response,
    cmd: ExtendDeadline | PauseDeadline | ResumeDeadline,
    principal: Any,
    if_match: str | None,
) -> Any:
    engine = service(request).engine
    method = {
        ExtendDeadline: engine.extend,
        PauseDeadline: engine.pause,
        ResumeDeadline: engine.resume,
    }[type(cmd)]
    result = _precondition(
        lambda: method(cmd, principal=principal),  # type: ignore[operator]
        if_match,
        request,
    )
    if isinstance(result, Response):
        return result
    return _case_doc(request, result, response)


@router.post(
    "/cases/{case}/deadlines/{key}/extend",
    summary="Extend a deadline",
    responses=_CHANGE,
)
def extend(
    request: Request,
    response: Response,
    principal: Caller,
    case: str,
    key: str,
    body: ExtendBody,
    if_match: IfMatch = None,
) -> Any:
    """Extend an open deadline by agreement of the Parties (reason required)."""
    found = service(request).engine.get(case)
    cmd = ExtendDeadline(
        case_id=found.case_id,
        key=key,
        new_date=body.new_date,
        actor=principal.principal_id,
        role=body.role,
        reason=body.reason,
        expected_version=_expected(if_match),
    )
    return _deadline_change(request, response, cmd, principal, if_match)


def _toll(
    request: Request,
    response: Response,
    principal: Principal,
    case: str,
    key: str,
    body: DeadlineChangeBody,
    if_match: str | None,
    kind: type[PauseDeadline | ResumeDeadline],
) -> Any:
    cmd = kind(
        case_id=service(request).engine.get(case).case_id,
        key=key,
        actor=principal.principal_id,
        role=body.role,
        reason=body.reason,
        expected_version=_expected(if_match),
    )
    return _deadline_change(request, response, cmd, principal, if_match)


@router.post(
    "/cases/{case}/deadlines/{key}/pause",
    summary="Pause a deadline",
    responses=_CHANGE,
)
def pause(
    request: Request,
    response: Response,
    principal: Caller,
    case: str,
    key: str,
    body: DeadlineChangeBody,
    if_match: IfMatch = None,
) -> Any:
    """Toll (pause) an open deadline (reason required)."""
    return _toll(request, response, principal, case, key, body, if_match, PauseDeadline)


@router.post(
    "/cases/{case}/deadlines/{key}/resume",
    summary="Resume a deadline",
    responses=_CHANGE,
)
def resume(
    request: Request,
    response: Response,
    principal: Caller,
    case: str,
    key: str,
    body: DeadlineChangeBody,
    if_match: IfMatch = None,
) -> Any:
    """Resume a paused deadline; it moves later by the days it was paused."""
    return _toll(
        request, response, principal, case, key, body, if_match, ResumeDeadline
    )


@router.post("/cases/{case}/officers", summary="Assign officers", responses=_CHANGE)
def assign(
    request: Request,
    response: Response,
    principal: Caller,
    case: str,
    body: AssignBody,
    if_match: IfMatch = None,
) -> Any:
    """Assign officers to the case or remove them (a supervisor's act)."""
    engine = service(request).engine
    found = engine.get(case)
    cmd = AssignOfficers(
        case_id=found.case_id,
        actor=principal.principal_id,
        role=body.role,
        assign=tuple(_officer(o) for o in body.assign),
        remove=tuple(body.remove),
        reason=body.reason,
        expected_version=_expected(if_match),
    )
    result = _precondition(
        lambda: engine.assign(cmd, principal=principal), if_match, request
    )
    if isinstance(result, Response):
        return result
    return _case_doc(request, result, response)


@router.get(
    "/cases/{case}/timeline.svg",
    summary="A case's timeline picture",
    response_class=Response,
    responses={200: {"content": {"image/svg+xml": {}}}},
)
def timeline(request: Request, principal: Reader, case: str) -> Response:
    """Events against deadlines, as SVG."""
    engine = service(request).engine
    found = engine.get(case)
    svg = timeline_svg(found, engine.history(found.case_id), now=engine.clock.now())
    return Response(svg, media_type="image/svg+xml")


@router.get("/cases/{case}/export", summary="Export a case (rrm-case/1)")
def export(request: Request, principal: Reader, case: str) -> dict[str, Any]:
    """The case's whole record, confidential petitioners included (supervisors)."""
    engine = service(request).engine
    found = engine.get(case)
    # On the case: a supervisor exports only the cases it supervises (or a grant
    # covers), since the record names confidential petitioners.
    engine.authorize(principal, Action.AUDIT, case=found)
    return export_case(engine, found.case_id)


@router.post("/imports", summary="Import cases (rrm-case/1, rrm-history/1)")
def import_documents(
    request: Request,
    principal: Caller,
    documents: Annotated[list[dict[str, Any]], Body(min_length=1, max_length=1000)],
) -> dict[str, Any]:
    """Replay whole case histories; a document with an illegal step writes nothing."""
    engine = service(request).engine
    engine.authorize(principal, Action.IMPORT, "admin")
    # A replay records each step under the actor and role its document names,
    # with no principal of this service; the administrator's permission, just
    # checked, is what authorizes it, so it runs under the host's own check.
    report = import_cases(engine.with_authorizer(HostCheck()), documents)
    return {
        "cases": [
            {
                "external_ref": c.external_ref,
                "case_id": c.case_id,
                "outcome": c.outcome,
                "events_replayed": c.events_replayed,
                "events_skipped": c.events_skipped,
            }
            for c in report.cases
        ]
    }
