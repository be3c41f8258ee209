"""The officer's other pages: open a case, import, workflows, alerts and the audit.

Like :mod:`rrm.server.console.pages`, routes translate form fields into the
engine's commands and render what the engine and the views return: the engine
decides who may open, import, retry, acknowledge or audit, and a refused action
is shown with its own reason, nothing written.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, File, Path, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from rrm import errors
from rrm.domain.access import Principal
from rrm.domain.alerts import AlertStatus
from rrm.domain.case import Facility, Officer, Party, Petitioner
from rrm.domain.commands import Claim, OpenCase
from rrm.server.console.pages import Signed, _engine, _form
from rrm.server.console.web import (
    ConsoleRoute,
    check_csrf,
    flash,
    gettext,
    render,
    status_of,
)
from rrm.service import inputs
from rrm.service.access import Action, HostCheck
from rrm.service.engine import CaseEngine
from rrm.service.transfer import import_cases
from rrm.service.validation import CLAIM_BASES
from rrm.views import alert_json, chain_json, workflow_json
from rrm.workflow.diagram import mermaid
from rrm.workflow.guards import PRIORITY_SECTORS

__all__ = ["router"]

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

_MAX_FILE = 5 * 1024 * 1024
_MAX_FILES = 200
_ALERTS = 200
_AUDIT_ALL = 1000


def _allowed(
    engine: CaseEngine, principal: Principal, action: Action, roles: str
) -> bool:
    try:
        engine.authorize(principal, action, roles)
    except errors.NotPermitted:
        return False
    return True


def _refusal(exc: errors.RRMError) -> errors.RRMError:
    """Let storage failures through: they are the service's, not the officer's."""
    if isinstance(exc, errors.StorageError):
        raise exc
    return exc


# -- open a case ------------------------------------------------------------------


def _open_view(
    request: Request,
    engine: CaseEngine,
    principal: Principal,
    form: dict[str, Any],
    *,
    error: errors.RRMError | None = None,
) -> Response:
    _ = gettext(request)
    specs = engine.workflows.latest()
    names = {Party.US: _("United States"), Party.MX: _("Mexico"), Party.CA: _("Canada")}
    return render(
        request,
        "open.html",
        principal=principal,
        title=_("Open a case"),
        nav="open",
        status_code=status_of(error) if error is not None else 200,
        workflows=[workflow_json(s) for s in specs],
        roles=sorted(principal.roles),
        officer_roles=sorted({r for s in specs for r in s.roles}),
        parties=[(p.value, names[p]) for p in Party],
        bases=sorted(CLAIM_BASES),
        sectors=sorted(PRIORITY_SECTORS),
        form=form,
        error=error,
    )


@router.get("/cases/new")
def open_page(request: Request, principal: Signed) -> Response:
    """The form that opens a case."""
    engine = _engine(request, principal)
    first = min(principal.roles, default="")
    defaults = {"role": first, "officers[0].officer_id": principal.principal_id}
    defaults["officers[0].role"] = first
    return _open_view(request, engine, principal, defaults)


def _party(field: str, value: str) -> Party:
    try:
        return Party(value)
    except ValueError:
        raise errors.InvalidInput(field, "must be US, MX or CA") from None


def _day(field: str, text: str) -> date | None:
    if not text.strip():
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise errors.InvalidInput(field, "must be a date (YYYY-MM-DD)") from None


def _claim(form: dict[str, Any]) -> Claim:
    provisions = str(form.get("claim.legal_provisions", "")).splitlines()
    return Claim(
        basis=str(form.get("claim.basis", "")),
        sector_category=str(form.get("claim.sector_category", "")).strip(),
        legal_provisions=tuple(p.strip() for p in provisions if p.strip()),
        nlrb_order=str(form.get("claim.nlrb_order", "")).strip(),
        alleged_conduct_from=_day(
            "claim.alleged_conduct_from",
            str(form.get("claim.alleged_conduct_from", "")),
        ),
    )


def _people(
    form: dict[str, Any],
) -> tuple[tuple[Petitioner, ...], tuple[Officer, ...]]:
    name = str(form.get("petitioners[0].name", "")).strip()
    petitioners = (
        Petitioner(
            name=name,
            confidential=bool(form.get("petitioners[0].confidential")),
            contact=str(form.get("petitioners[0].contact", "")).strip(),
        ),
    )
    officer_id = str(form.get("officers[0].officer_id", "")).strip()
    officers = (
        Officer(
            officer_id=officer_id,
            role=str(form.get("officers[0].role", "")).strip(),
            name=str(form.get("officers[0].name", "")).strip(),
            email=str(form.get("officers[0].email", "")).strip(),
        ),
    )
    return (petitioners if name else ()), (officers if officer_id else ())


def _open_command(form: dict[str, Any], principal: Principal) -> OpenCase:
    """The ``OpenCase`` the form asks for, as ``POST /api/v1/cases`` builds it."""

    def text(name: str) -> str:
        return str(form.get(name, "")).strip()

    petitioners, officers = _people(form)
    return OpenCase(
        workflow=text("workflow"),
        initiation=text("initiation"),
        complainant=text("complainant"),
        respondent=text("respondent"),
        facility=Facility(
            facility_id=text("facility.facility_id"),
            name=text("facility.name"),
            owner=text("facility.owner"),
            country=_party("facility.country", text("facility.country")),
            city=text("facility.city"),
            region=text("facility.region"),
            sector=text("facility.sector"),
        ),
        claim=_claim(form),
        petitioners=petitioners,
        officers=officers,
        external_ref=text("external_ref"),
        actor=principal.principal_id,
        role=text("role"),
        reason=str(form.get("reason", "")),
    )


@router.post("/cases/new", dependencies=[Depends(check_csrf)])
async def open_case(request: Request, principal: Signed) -> Response:
    """Open the case the form describes; on a refusal show the form again."""
    _ = gettext(request)
    engine = _engine(request, principal)
    form = await _form(request)

    def act() -> Response:
        try:
            case = engine.open_case(_open_command(form, principal), principal=principal)
        except errors.RRMError as exc:
            return _open_view(request, engine, principal, form, error=_refusal(exc))
        flash(request, _("Case {ref} was opened.").format(ref=case.external_ref))
        return RedirectResponse(f"/cases/{case.case_id}", status_code=303)

    return await run_in_threadpool(act)


# -- import ------------------------------------------------------------------


def _import_view(
    request: Request,
    principal: Principal,
    *,
    results: list[dict[str, Any]] | None = None,
    error: errors.RRMError | None = None,
) -> Response:
    _ = gettext(request)
    fragment = request.headers.get("hx-request") == "true"
    if isinstance(error, errors.NotPermitted) and not fragment:
        raise error  # the refusal page, without the upload form
    status = status_of(error) if error is not None else 200
    return render(
        request,
        "_import_results.html" if fragment else "import.html",
        principal=principal,
        title=_("Import cases"),
        nav="import",
        # htmx swaps only a 2xx answer: a refusal must still reach the page.
        status_code=200 if fragment else status,
        results=results,
        error=error,
        max_files=_MAX_FILES,
    )


@router.get("/import")
def import_page(request: Request, principal: Signed) -> Response:
    """The upload form of case files (administrators)."""
    engine = _engine(request, principal)
    engine.authorize(principal, Action.IMPORT, "admin")
    return _import_view(request, principal)


def _import_one(
    engine: CaseEngine, name: str, data: bytes, _: Callable[[str], str]
) -> dict[str, Any]:
    """Import one file; a file that is not a case document is reported, not raised."""
    row: dict[str, Any] = {"file": name}
    if len(data) > _MAX_FILE:
        row["error"] = _("The file is larger than 5 MB.")
        return row
    try:
        # Nesting bounded and keys given twice refused, as for every import.
        document = inputs.loads(data, field=name, what="the file")
    except inputs.NotJSON:
        row["error"] = _("The file is not JSON.")
        return row
    except errors.InvalidInput as exc:
        row["error"] = exc.message
        return row
    if not isinstance(document, dict):
        row["error"] = _("The file is not one case document (a JSON object).")
        return row
    try:
        report = import_cases(engine, [document], sources=[name])
    except errors.RRMError as exc:
        row["error"] = _refusal(exc).message
        return row
    done = report.cases[0]
    row.update(
        ref=done.external_ref,
        case_id=done.case_id,
        outcome=done.outcome,
        replayed=done.events_replayed,
        skipped=done.events_skipped,
    )
    return row


@router.post("/import", dependencies=[Depends(check_csrf)])
async def import_files(
    request: Request,
    principal: Signed,
    files: Annotated[list[UploadFile] | None, File()] = None,
) -> Response:
    """Import each uploaded file on its own; one bad file does not stop the others."""
    engine = _engine(request, principal)
    chosen = [f for f in files or [] if f.filename]
    try:
        engine.authorize(principal, Action.IMPORT, "admin")
        if not chosen:
            raise errors.InvalidInput("files", "choose one or more case files")
        if len(chosen) > _MAX_FILES:
            raise errors.InvalidInput(
                "files", f"at most {_MAX_FILES} files at once; split the upload"
            )
    except errors.RRMError as exc:
        return _import_view(request, principal, error=exc)
    # Each replay records steps under the actors its document names, with no
    # principal of this service: the administrator's permission, just checked,
    # authorizes it, so it runs under the host's own check (as the API does).
    host = engine.with_authorizer(HostCheck())
    words = gettext(request)
    results = []
    for upload in chosen:  # one file in memory at a time
        data = await upload.read(_MAX_FILE + 1)
        name = str(upload.filename)
        results.append(await run_in_threadpool(_import_one, host, name, data, words))
    return _import_view(request, principal, results=results)


# -- workflows ------------------------------------------------------------------


@router.get("/workflows")
def workflows_page(request: Request, principal: Signed) -> Response:
    """Every loaded workflow version."""
    _ = gettext(request)
    engine = _engine(request, principal)
    loaded = engine.workflows
    current = {(s.workflow_id, s.version) for s in loaded.latest()}
    rows = [
        {
            "workflow": s.workflow_id,
            "version": s.version,
            "title": s.title,
            "annex": s.annex,
            "status": s.status,
            "sha256": s.sha256,
            "current": (s.workflow_id, s.version) in current,
        }
        for s in sorted(loaded.specs.values(), key=lambda s: (s.workflow_id, s.version))
    ]
    return render(
        request,
        "workflows.html",
        principal=principal,
        title=_("Workflows"),
        nav="workflows",
        rows=rows,
    )


@router.get("/workflows/{workflow_id}")
def workflow_latest(request: Request, principal: Signed, workflow_id: str) -> Response:
    """The version new cases of a workflow use."""
    spec = _engine(request, principal).workflows.get(workflow_id)
    return RedirectResponse(
        f"/workflows/{spec.workflow_id}/{spec.version}", status_code=303
    )


@router.get("/workflows/{workflow_id}/{version}")
def workflow_page(
    request: Request,
    principal: Signed,
    workflow_id: str,
    version: Annotated[int, Path(ge=1, le=10_000)],
) -> Response:
    """One workflow version: states, openings, transitions, deadlines, diagram."""
    _ = gettext(request)
    spec = _engine(request, principal).workflows.get(workflow_id, version)
    doc = workflow_json(spec)
    return render(
        request,
        "workflow.html",
        principal=principal,
        title=_("Workflow {id} v{version}").format(
            id=spec.workflow_id, version=version
        ),
        nav="workflows",
        wf=doc,
        labels={s["name"]: s["label"] for s in doc["states"]},
        diagram=mermaid(spec),
    )


# -- alerts ------------------------------------------------------------------


def _alert_query(status: str | None, case: str | None) -> str:
    found = {k: v for k, v in (("status", status), ("case", case)) if v}
    return f"/alerts?{urlencode(found)}" if found else "/alerts"


def _alerts_view(
    request: Request,
    engine: CaseEngine,
    principal: Principal,
    *,
    status: str | None,
    case: str | None,
    error: errors.RRMError | None = None,
) -> Response:
    _ = gettext(request)
    code = status_of(error) if error is not None else 200
    filter_error: dict[str, str] | None = None
    try:
        case_id = engine.get(case).case_id if case else None
        found = engine.alerts(
            status=(status,) if status else None, case_id=case_id, limit=_ALERTS
        )
    except (errors.CaseNotFound, errors.InvalidInput) as exc:
        field = exc.field if isinstance(exc, errors.InvalidInput) else "case"
        filter_error = {"field": "status" if field == "status" else "case"}
        filter_error["message"] = exc.message
        code = status_of(exc) if error is None else code
        found = []
    # A digest belongs to no case (its case id is empty).
    refs = {c: engine.get(c).external_ref for c in {a.case_id for a in found} if c}
    rows = [
        {**alert_json(a), "timezone": a.timezone or "UTC", "ref": refs.get(a.case_id)}
        for a in found
    ]
    return render(
        request,
        "alerts.html",
        principal=principal,
        title=_("Alerts"),
        nav="alerts",
        status_code=code,
        rows=rows,
        statuses=[s.value for s in AlertStatus],
        query={"status": status or "", "case": case or ""},
        back=_alert_query(status, case),
        limit=_ALERTS,
        may_retry=_allowed(engine, principal, Action.RETRY_ALERT, "admin"),
        filter_error=filter_error,
        error=error,
    )


_Filter = Annotated[str | None, Query(max_length=200)]


@router.get("/alerts")
def alerts_page(
    request: Request, principal: Signed, status: _Filter = None, case: _Filter = None
) -> Response:
    """The alert outbox, filtered by status and case (at most 200 alerts)."""
    engine = _engine(request, principal)
    return _alerts_view(
        request, engine, principal, status=status or None, case=case or None
    )


async def _alert_change(
    request: Request, principal: Principal, act: Any, done: str
) -> Response:
    engine = _engine(request, principal)
    form = await _form(request)
    status = str(form.get("status", ""))[:200] or None
    case = str(form.get("case", ""))[:200] or None

    def run() -> Response:
        try:
            act(engine)
        except errors.RRMError as exc:
            return _alerts_view(
                request,
                engine,
                principal,
                status=status,
                case=case,
                error=_refusal(exc),
            )
        flash(request, done)
        return RedirectResponse(_alert_query(status, case), status_code=303)

    return await run_in_threadpool(run)


@router.post("/alerts/{alert_id:path}/retry", dependencies=[Depends(check_csrf)])
async def retry_alert(request: Request, principal: Signed, alert_id: str) -> Response:
    """Queue a failed or dead-lettered alert again (administrators)."""
    _ = gettext(request)

    def act(engine: CaseEngine) -> None:
        engine.authorize(principal, Action.RETRY_ALERT, "admin")
        engine.retry(alert_id)

    return await _alert_change(
        request, principal, act, _("The alert was queued again.")
    )


@router.post("/alerts/{alert_id:path}/acknowledge", dependencies=[Depends(check_csrf)])
async def acknowledge_alert(
    request: Request, principal: Signed, alert_id: str
) -> Response:
    """Record that the signed-in officer has seen an alert."""
    _ = gettext(request)

    def act(engine: CaseEngine) -> None:
        engine.acknowledge(
            alert_id, officer_id=principal.principal_id, principal=principal
        )

    return await _alert_change(
        request, principal, act, _("The alert was acknowledged.")
    )


# -- audit ------------------------------------------------------------------


def _audit_view(
    request: Request,
    engine: CaseEngine,
    principal: Principal,
    *,
    form: dict[str, Any] | None = None,
    error: errors.RRMError | None = None,
    **found: Any,
) -> Response:
    _ = gettext(request)
    return render(
        request,
        "audit.html",
        principal=principal,
        title=_("Audit"),
        nav="audit",
        status_code=status_of(error) if error is not None else 200,
        may_verify_all=_allowed(engine, principal, Action.AUDIT, "admin"),
        limit=_AUDIT_ALL,
        form=form or {},
        error=error,
        **found,
    )


@router.get("/audit")
def audit_page(request: Request, principal: Signed) -> Response:
    """Verify history chains and take anchors (supervisors and administrators)."""
    engine = _engine(request, principal)
    engine.authorize(principal, Action.AUDIT)
    return _audit_view(request, engine, principal)


async def _audit_one(request: Request, principal: Principal, action: str) -> Response:
    engine = _engine(request, principal)
    form = {**await _form(request), "action": action}

    def run() -> Response:
        engine.authorize(principal, Action.AUDIT)
        try:
            case = engine.get(str(form.get("case", "")).strip(), intact=False)
            if action == "anchor":
                anchor = engine.anchor(case.case_id)
                taken = {"case_id": anchor.case_id, "seq": anchor.seq}
                taken |= {"hash": anchor.hash, "ref": case.external_ref}
                taken["taken_at"] = engine.clock.now().isoformat()
                return _audit_view(request, engine, principal, form=form, anchor=taken)
            report = chain_json(
                engine.verify(case.case_id, record=True), case.external_ref
            )
        except (errors.CaseNotFound, errors.InvalidInput) as exc:
            return _audit_view(request, engine, principal, form=form, error=exc)
        return _audit_view(request, engine, principal, form=form, reports=[report])

    return await run_in_threadpool(run)


@router.post("/audit/verify", dependencies=[Depends(check_csrf)])
async def audit_verify(request: Request, principal: Signed) -> Response:
    """Verify one case's history chain."""
    return await _audit_one(request, principal, "verify")


@router.post("/audit/anchor", dependencies=[Depends(check_csrf)])
async def audit_anchor(request: Request, principal: Signed) -> Response:
    """Take the anchor of one case's newest history entry, to keep elsewhere."""
    return await _audit_one(request, principal, "anchor")


@router.post("/audit/verify-all", dependencies=[Depends(check_csrf)])
async def audit_verify_all(request: Request, principal: Signed) -> Response:
    """Verify the chains of the 1,000 most recent cases (administrators)."""
    engine = _engine(request, principal)

    def run() -> Response:
        engine.authorize(principal, Action.AUDIT, "admin")
        cases = engine.find(limit=_AUDIT_ALL, intact=False)
        reports = [
            chain_json(engine.verify(c.case_id, record=True), c.external_ref)
            for c in cases
        ]
        reports.sort(key=lambda r: (r["ok"], r["ref"]))
        return _audit_view(
            request,
            engine,
            principal,
            reports=reports,
            everything=True,
            capped=len(cases) >= _AUDIT_ALL,
        )

    return await run_in_threadpool(run)
