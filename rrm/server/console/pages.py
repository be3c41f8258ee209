"""The officer's pages: My work, the case list, and one case with its actions.

Routes translate form fields into the engine's commands and render what the
service returns; every rule of the procedure (who may record what, when a
deadline is due, what a lapse does) stays in the engine and the workflow
definitions. A refused action is shown with the engine's own reason, and the
engine wrote nothing.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response, StreamingResponse

from rrm import errors
from rrm.domain.access import Principal
from rrm.domain.case import Case, Officer
from rrm.domain.commands import (
    AssignOfficers,
    ExtendDeadline,
    FireEvent,
    PauseDeadline,
    ResumeDeadline,
)
from rrm.server.console.web import (
    ConsoleRoute,
    check_csrf,
    flash,
    gettext,
    officer,
    render,
    status_of,
)
from rrm.server.context import require_reader, service
from rrm.service.access import MANAGERS, Action
from rrm.service.engine import CaseEngine
from rrm.service.transfer import export_case
from rrm.service.work import work_queue
from rrm.views import case_json, deadline_json, entry_json, timeline_svg
from rrm.views.actions import available_json

__all__ = ["router"]

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

Signed = Annotated[Principal, Depends(officer)]
_PAGE = 50
_CSV_LIMIT = 10_000


def _engine(request: Request, principal: Principal) -> CaseEngine:
    engine = service(request).engine
    require_reader(engine, principal)
    request.state.console_principal = principal
    return engine


@router.get("/")
def home() -> Response:
    """The console starts at My work (or at sign-in)."""
    return RedirectResponse("/work", status_code=303)


# -- My work ------------------------------------------------------------------


@router.get("/work")
def my_work(
    request: Request,
    principal: Signed,
    within: Annotated[int, Query(ge=0, le=366)] = 5,
    unit: Literal["business", "calendar"] = "business",
) -> Response:
    """What is due for me, overdue, lapsed; dead letters for administrators."""
    _ = gettext(request)
    engine = _engine(request, principal)
    queue = work_queue(engine, principal, within=within, unit=unit)
    return render(
        request,
        "work.html",
        principal=principal,
        title=_("My work"),
        nav="work",
        queue=queue,
        within=within,
        unit=unit,
    )


# -- the case list ------------------------------------------------------------------

_SORTS = ("newest", "oldest", "reference")


def _cursor(case: Case, sort: str) -> str:
    key = case.external_ref if sort == "reference" else case.opened_at.isoformat()
    return json.dumps([key, case.case_id], separators=(",", ":"))


def _after(cursor: str | None, sort: str) -> tuple[datetime | str, str] | None:
    if not cursor:
        return None
    refused = errors.InvalidInput(
        "cursor", "is not a page of this list; start from the first page"
    )
    try:
        key, case_id = json.loads(cursor)
        moment = key if sort == "reference" else datetime.fromisoformat(key)
    except (ValueError, TypeError):
        raise refused from None
    if not isinstance(key, str) or not isinstance(case_id, str):
        raise refused
    return moment, case_id


_Text = Annotated[str | None, Query(max_length=200)]


@dataclass(frozen=True, slots=True)
class CaseFilters:
    """The case list's filters and order, as the page's form and links send them."""

    state: str | None
    workflow: str | None
    facility: str | None
    officer: str | None
    due_within: int | None
    due_unit: Literal["calendar", "business"]
    q: str | None
    sort: Literal["newest", "oldest", "reference"]

    def find(self) -> dict[str, Any]:
        """The keyword arguments of ``engine.find`` for these filters."""
        return {
            "state": self.state,
            "workflow": self.workflow,
            "facility_id": self.facility,
            "officer_id": self.officer,
            "due_within": self.due_within,
            "due_unit": self.due_unit,
            "text": self.q,
            "order": self.sort,
        }

    def query(self) -> dict[str, Any]:
        """The filters as query parameters of a link to the same list."""
        values = {
            "state": self.state,
            "workflow": self.workflow,
            "facility": self.facility,
            "officer": self.officer,
            "due_within": self.due_within,
            "due_unit": self.due_unit if self.due_within is not None else None,
            "q": self.q,
            "sort": self.sort,
        }
        return {k: v for k, v in values.items() if v is not None}


def case_filters(
    state: _Text = None,
    workflow: _Text = None,
    facility: _Text = None,
    officer: _Text = None,
    due_within: Annotated[str | None, Query(max_length=4)] = None,
    due_unit: Literal["calendar", "business"] = "business",
    q: _Text = None,
    sort: Literal["newest", "oldest", "reference"] = "newest",
) -> CaseFilters:
    """Read the case list's filters (an empty field is no filter)."""
    return CaseFilters(
        state=state or None,
        workflow=workflow or None,
        facility=facility or None,
        officer=officer or None,
        due_within=_days(due_within),
        due_unit=due_unit,
        q=q or None,
        sort=sort,
    )


Filters = Annotated[CaseFilters, Depends(case_filters)]


@router.get("/cases")
def cases_page(
    request: Request,
    principal: Signed,
    filters: Filters,
    cursor: Annotated[str | None, Query(max_length=600)] = None,
) -> Response:
    """Cases filtered, searched, sorted and paginated."""
    _ = gettext(request)
    engine = _engine(request, principal)
    sort = filters.sort
    found = engine.find(**filters.find(), after=_after(cursor, sort), limit=_PAGE + 1)
    page = found[:_PAGE]
    now = engine.clock.now()
    rows = []
    for case in page:
        spec = engine.workflows.get(case.workflow_id, case.workflow_version)
        doc = case_json(case, spec, now)
        rows.append(doc)
    query = filters.query()
    states = sorted(
        {
            (s.name, s.label)
            for spec in engine.workflows.specs.values()
            for s in spec.states.values()
        }
    )
    return render(
        request,
        "cases.html",
        principal=principal,
        title=_("Cases"),
        nav="cases",
        rows=rows,
        query=query,
        next_cursor=_cursor(page[-1], sort) if len(found) > _PAGE and page else None,
        first_page=cursor is None,
        states=states,
        workflows=engine.workflows.ids(),
        sorts=_SORTS,
    )


def _days(text: str | None) -> int | None:
    """A number of days typed in a filter (empty: no filter)."""
    if text is None or not text.strip():
        return None
    value = text.strip()
    if not value.isdigit() or int(value) > 366:  # noqa: PLR2004 - a year
        raise errors.InvalidInput("due_within", "give a number of days, 0 to 366")
    return int(value)


def _cell(value: object) -> str:
    """A CSV cell a spreadsheet will not run as a formula."""
    text = "" if value is None else str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text


@router.get("/cases.csv")
def cases_csv(request: Request, principal: Signed, filters: Filters) -> Response:
    """The filtered case list as CSV (up to 10,000 cases)."""
    engine = _engine(request, principal)
    found = engine.find(**filters.find(), limit=_CSV_LIMIT)
    now = engine.clock.now()
    buffer = io.StringIO()
    out = csv.writer(buffer)
    out.writerow(
        [
            "case_id",
            "ref",
            "workflow",
            "workflow_version",
            "state",
            "complainant",
            "respondent",
            "facility_id",
            "facility",
            "next_deadline",
            "next_due_date",
            "next_due_timezone",
            "days_left",
            "nominal",
            "opened_at",
        ]
    )
    for case in found:
        spec = engine.workflows.get(case.workflow_id, case.workflow_version)
        doc = case_json(case, spec, now)
        first = doc["deadlines"][0] if doc["deadlines"] else {}
        out.writerow(
            _cell(v)
            for v in (
                doc["case_id"],
                doc["ref"],
                doc["workflow"],
                doc["workflow_version"],
                doc["state"],
                doc["complainant"],
                doc["respondent"],
                doc["facility"]["facility_id"],
                doc["facility"]["name"],
                first.get("key"),
                first.get("due_date"),
                first.get("timezone"),
                first.get("days_left"),
                first.get("nominal"),
                doc["opened_at"],
            )
        )
    return StreamingResponse(
        iter([buffer.getvalue()]),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="rrm-cases.csv"'},
    )


# -- one case ------------------------------------------------------------------


def _may(
    engine: CaseEngine, principal: Principal, action: Action, roles: Any, case: Case
) -> str | None:
    try:
        return engine.authorize(principal, action, roles, case=case)
    except errors.NotPermitted:
        return None


#: History entries a case page shows before "show all" (newest first).
HISTORY_SHOWN = 100


def _case_view(
    request: Request,
    engine: CaseEngine,
    principal: Principal,
    case_ref: str,
    *,
    status_code: int = 200,
    error: errors.RRMError | None = None,
    form: dict[str, Any] | None = None,
    all_history: bool = False,
) -> Response:
    _ = gettext(request)
    record = engine.record(case_ref)
    case, history, chain = record.case, record.history, record.chain
    spec = engine.workflows.get(case.workflow_id, case.workflow_version)
    now = engine.clock.now()
    doc = case_json(case, spec, now)
    shown = history if all_history else history[-HISTORY_SHOWN:]
    try:
        facility = engine.facility(case.facility.facility_id)
    except errors.FacilityNotFound:
        facility = None
    closed = [
        deadline_json(d, now)
        for d in sorted(case.deadlines, key=lambda d: d.due_at)
        if d.key not in case.open_deadlines
        or case.open_deadlines[d.key].deadline_id != d.deadline_id
    ]
    return render(
        request,
        "case.html",
        principal=principal,
        title=_("Case {ref}").format(ref=case.external_ref),
        nav="cases",
        status_code=status_code,
        case=doc,
        closed=closed,
        entries=[entry_json(e) for e in reversed(shown)],
        hidden_entries=len(history) - len(shown),
        chain=chain,
        facility=facility,
        actions=available_json(engine.available_events(case, principal=principal)),
        others=[p for p in doc["possible_events"] if "system" not in p["roles"]],
        may_extend=_may(engine, principal, Action.EXTEND, "supervisor", case),
        may_toll=_may(engine, principal, Action.PAUSE, "supervisor", case),
        may_assign=_may(engine, principal, Action.ASSIGN, MANAGERS, case),
        may_export=_may(engine, principal, Action.AUDIT, MANAGERS, case),
        error=error,
        form=form or {},
    )


@router.get("/cases/{case}")
def case_page(
    request: Request,
    principal: Signed,
    case: str,
    history: Literal["recent", "all"] = "recent",
) -> Response:
    """One case: parties, facility, deadlines, actions, history."""
    engine = _engine(request, principal)
    return _case_view(request, engine, principal, case, all_history=history == "all")


@router.get("/cases/{case}/timeline.svg")
def case_timeline(request: Request, principal: Signed, case: str) -> Response:
    """The case's timeline picture."""
    engine = _engine(request, principal)
    found = engine.get(case)
    svg = timeline_svg(found, engine.history(found.case_id), now=engine.clock.now())
    return Response(svg, media_type="image/svg+xml")


@router.get("/cases/{case}/export")
def case_export(request: Request, principal: Signed, case: str) -> Response:
    """The case's whole record (rrm-case/1), for supervisors and administrators."""
    engine = _engine(request, principal)
    found = engine.get(case)
    engine.authorize(principal, Action.AUDIT, case=found)
    body = json.dumps(export_case(engine, found.case_id), indent=2, ensure_ascii=False)
    return Response(
        body,
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="{found.case_id}.json"'},
    )


def _version(form: Any) -> int | None:
    text = str(form.get("version") or "")
    return int(text) if text.isdigit() and len(text) < 18 else None  # noqa: PLR2004


def _payload(form: Any, fields: list[dict[str, Any]]) -> dict[str, Any]:
    """Turn the form's payload fields into the event's payload, by declared type."""
    payload: dict[str, Any] = {}
    for f in fields:
        raw = form.get(f"p.{f['name']}")
        if f["type"] == "bool":
            if raw is not None:
                payload[f["name"]] = raw in ("on", "true", "1")
            continue
        text = str(raw).strip() if raw is not None else ""
        if not text:
            continue
        if f["type"] == "int":
            try:
                payload[f["name"]] = int(text)
            except ValueError:
                raise errors.InvalidInput(
                    f"payload.{f['name']}", "must be a whole number"
                ) from None
        elif f["type"] == "date":
            try:
                payload[f["name"]] = date.fromisoformat(text).isoformat()
            except ValueError:
                raise errors.InvalidInput(
                    f"payload.{f['name']}", "must be a date (YYYY-MM-DD)"
                ) from None
        else:
            payload[f["name"]] = text
    return payload


async def _form(request: Request) -> dict[str, Any]:
    data = await request.form()
    return {k: v for k, v in data.items() if isinstance(v, str)}


def _changed(
    request: Request,
    engine: CaseEngine,
    principal: Principal,
    case_ref: str,
    form: dict[str, Any],
    act: Any,
    done: str,
) -> Response:
    """Run one change; redirect to the case on success, show the refusal otherwise."""
    found = engine.get(case_ref)
    try:
        after = act(found)
    except (errors.CaseNotFound, errors.StorageError):
        raise
    except errors.RRMError as exc:
        return _case_view(
            request,
            engine,
            principal,
            found.case_id,
            status_code=status_of(exc),
            error=exc,
            form=form,
        )
    flash(request, done)
    return RedirectResponse(f"/cases/{after.case_id}", status_code=303)


@router.post("/cases/{case}/events", dependencies=[Depends(check_csrf)])
async def record_event(request: Request, principal: Signed, case: str) -> Response:
    """Record an event from the case page's form."""
    _ = gettext(request)
    engine = _engine(request, principal)
    form = await _form(request)
    event = str(form.get("event", ""))[:200]

    def act(found: Case) -> Case:
        spec = engine.workflows.get(found.workflow_id, found.workflow_version)
        fields = [
            {"name": p.name, "type": p.type}
            for t in (*spec.transitions, *spec.facts.values())
            if t.event == event
            for p in t.payload
        ]
        role = str(form.get("role") or "") or engine.role_for(
            found, event, principal=principal, idempotency_key=None
        )
        return engine.fire(
            FireEvent(
                case_id=found.case_id,
                event=event,
                actor=principal.principal_id,
                role=role,
                reason=str(form.get("reason", "")),
                payload=_payload(form, fields),
                expected_version=_version(form),
                idempotency_key=str(form.get("idempotency_key") or "") or None,
            ),
            principal=principal,
        )

    return await run_in_threadpool(
        _changed,
        request,
        engine,
        principal,
        case,
        {**form, "action": f"event:{event}"},
        act,
        _("The event was recorded."),
    )


def _new_date(form: dict[str, Any]) -> date:
    try:
        return date.fromisoformat(str(form.get("new_date", "")))
    except ValueError:
        raise errors.InvalidInput(
            "new_date", "give the new due date (YYYY-MM-DD)"
        ) from None


@router.post(
    "/cases/{case}/deadlines/{key}/{change}", dependencies=[Depends(check_csrf)]
)
async def change_deadline(
    request: Request,
    principal: Signed,
    case: str,
    key: str,
    change: Literal["extend", "pause", "resume"],
) -> Response:
    """Extend, pause (toll) or resume a deadline, with a reason."""
    _ = gettext(request)
    engine = _engine(request, principal)
    form = await _form(request)
    reason = str(form.get("reason", ""))

    def act(found: Case) -> Case:
        actor = principal.principal_id
        version = _version(form)
        if change == "extend":
            return engine.extend(
                ExtendDeadline(
                    case_id=found.case_id,
                    key=key,
                    new_date=_new_date(form),
                    reason=reason,
                    expected_version=version,
                    actor=actor,
                    role="supervisor",
                ),
                principal=principal,
            )
        kind = PauseDeadline if change == "pause" else ResumeDeadline
        cmd = kind(
            case_id=found.case_id,
            key=key,
            reason=reason,
            expected_version=version,
            actor=actor,
            role="supervisor",
        )
        if isinstance(cmd, PauseDeadline):
            return engine.pause(cmd, principal=principal)
        return engine.resume(cmd, principal=principal)

    done = {
        "extend": _("The deadline was extended."),
        "pause": _("The deadline was paused."),
        "resume": _("The deadline was resumed."),
    }[change]
    return await run_in_threadpool(
        _changed,
        request,
        engine,
        principal,
        case,
        {**form, "action": f"{change}:{key}"},
        act,
        done,
    )


@router.post("/cases/{case}/officers", dependencies=[Depends(check_csrf)])
async def assign_officers(request: Request, principal: Signed, case: str) -> Response:
    """Assign an officer to the case, or remove one, with a reason."""
    _ = gettext(request)
    engine = _engine(request, principal)
    form = await _form(request)

    def act(found: Case) -> Case:
        role = engine.authorize(principal, Action.ASSIGN, MANAGERS, case=found)
        if not str(form.get("reason", "")).strip():
            raise errors.InvalidInput("reason", "give the reason for the change")
        remove = str(form.get("remove") or "")
        assign: tuple[Officer, ...] = ()
        if not remove:
            assign = (
                Officer(
                    officer_id=str(form.get("officer_id", "")),
                    role=str(form.get("officer_role", "")),
                    name=str(form.get("name", "")),
                    email=str(form.get("email", "")),
                    language=str(form.get("language") or "en"),
                    timezone=str(form.get("timezone") or "UTC"),
                ),
            )
        return engine.assign(
            AssignOfficers(
                case_id=found.case_id,
                actor=principal.principal_id,
                role=role,
                assign=assign,
                remove=(remove,) if remove else (),
                reason=str(form.get("reason", "")),
                expected_version=_version(form),
            ),
            principal=principal,
        )

    return await run_in_threadpool(
        _changed,
        request,
        engine,
        principal,
        case,
        {**form, "action": "assign"},
        act,
        _("The officers were changed."),
    )
