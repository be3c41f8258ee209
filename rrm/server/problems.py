"""Errors as RFC 9457 problem details: one status per ``rrm.errors`` type.

The detail is the same officer-readable message the CLI prints; never a stack
trace, never a value that could hold personal data beyond what the message says.
"""

from __future__ import annotations

import re
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from rrm import errors

__all__ = ["PROBLEM", "Problem", "install", "problem", "responses", "status_of"]

log = structlog.get_logger("rrm.server")

PROBLEM = "application/problem+json"

# Most specific first: the first class an error is an instance of decides.
_STATUS: tuple[tuple[type[errors.RRMError], int], ...] = (
    (errors.NotAuthenticated, 401),
    (errors.NotPermitted, 403),
    (errors.RoleNotAllowed, 403),
    (errors.CaseNotFound, 404),
    (errors.DeadlineNotFound, 404),
    (errors.AlertNotFound, 404),
    (errors.WorkflowNotFound, 404),
    (errors.ConcurrencyConflict, 409),
    (errors.CaseAlreadyExists, 409),
    (errors.TransitionNotAllowed, 409),
    (errors.GuardRejected, 422),
    (errors.InvalidInput, 422),
    (errors.InvalidWorkflow, 422),
    (errors.CaseDamaged, 500),
    (errors.DatabaseBusy, 503),
    (errors.SchemaOutOfDate, 503),
    (errors.StorageError, 503),
)

# Structured attributes worth giving a client program (identifiers, versions).
_FIELDS = (
    "case_id",
    "state",
    "event",
    "role",
    "allowed",
    "guard",
    "field",
    "key",
    "alert_id",
    "expected_version",
    "actual_version",
    "external_ref",
    "action",
)


def status_of(exc: errors.RRMError) -> int:
    """Return the HTTP status of an RRM error."""
    for kind, status in _STATUS:
        if isinstance(exc, kind):
            return status
    if isinstance(exc, LookupError):
        return 404
    if isinstance(exc, PermissionError):
        return 403
    if isinstance(exc, ValueError):
        return 422
    return 400


def _slug(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    instance: str = "",
    kind: str = "",
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """Return a problem-details response."""
    body: dict[str, Any] = {
        "type": f"urn:rrm:problem:{_slug(kind)}" if kind else "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    if extra:
        body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _rrm_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.RRMError)  # noqa: S101 - registered for RRMError
    status = status_of(exc)
    extra: dict[str, Any] = {"error": type(exc).__name__}
    if exc.hint:
        extra["hint"] = exc.hint
    for name in _FIELDS:
        value = getattr(exc, name, None)
        if isinstance(value, str | int) or (
            isinstance(value, tuple) and all(isinstance(v, str) for v in value)
        ):
            extra[name] = list(value) if isinstance(value, tuple) else value
    headers: dict[str, str] = {}
    if status == 401:  # noqa: PLR2004
        headers["WWW-Authenticate"] = 'Bearer realm="rrm"'
    if status == 503:  # noqa: PLR2004
        headers["Retry-After"] = "1"
    if status >= 500:  # noqa: PLR2004
        log.warning("request_failed", error=type(exc).__name__, status=status)
    return problem(
        status,
        _TITLES.get(status, "Request refused"),
        exc.message,
        instance=request.url.path,
        kind=type(exc).__name__,
        extra=extra,
        headers=headers,
    )


_TITLES = {
    401: "Not signed in",
    403: "Not permitted",
    404: "Not found",
    409: "Conflict",
    412: "Precondition failed",
    422: "Invalid input",
    500: "Stored data damaged",
    503: "Service unavailable",
}


def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)  # noqa: S101
    problems = []
    for item in exc.errors():
        where = ".".join(str(p) for p in item.get("loc", ()) if p != "body")
        problems.append({"field": where, "reason": str(item.get("msg", "invalid"))})
    first = problems[0] if problems else {"field": "", "reason": "invalid"}
    return problem(
        422,
        "Invalid input",
        f"{first['field']}: {first['reason']}",
        instance=request.url.path,
        kind="InvalidInput",
        extra={"error": "InvalidInput", "errors": problems},
    )


def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101
    headers = dict(exc.headers or {})
    if exc.status_code == 405:  # noqa: PLR2004
        headers["Allow"] = _allowed(request)
    return problem(
        exc.status_code,
        _TITLES.get(exc.status_code, "Request refused"),
        str(exc.detail),
        instance=request.url.path,
        headers=headers,
    )


def _allowed(request: Request) -> str:
    """Return every method of the requested path, for a 405's ``Allow``.

    Starlette names only the methods of the first route whose path matched; a
    path such as ``/api/v1/webhooks`` has one route per method.
    """
    methods: set[str] = set()
    for route in request.app.router.routes:
        found, _ = route.matches(request.scope)
        if found is not Match.NONE:
            methods.update(getattr(route, "methods", None) or ())
    return ", ".join(sorted(methods))


def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("request_crashed", error=type(exc).__name__, path=request.url.path)
    return problem(
        500,
        "Internal error",
        "The service failed unexpectedly and logged the error. Read the case "
        "again before you repeat a change; a change is written whole or not at all.",
        instance=request.url.path,
    )


class ProblemField(BaseModel):
    """One invalid part of a request."""

    field: str = Field(description="A dotted path into the body, or a parameter.")
    reason: str


class Problem(BaseModel):
    """An RFC 9457 problem detail: how every error of the service is answered.

    Besides these members, a problem carries the identifiers its error names
    (``case_id``, ``state``, ``event``, ``role``, ``expected_version``, ...).
    """

    model_config = ConfigDict(extra="allow")

    type: str = Field(examples=["urn:rrm:problem:case-not-found"])
    title: str
    status: int = Field(ge=400, le=599)
    detail: str = Field(description="The officer-readable message, as the CLI says it.")
    instance: str = Field(default="", description="The request's path.")
    error: str = Field(default="", description="The rrm.errors type, if one.")
    hint: str = Field(default="", description="What to do about it, if known.")
    errors: list[ProblemField] = Field(
        default_factory=list, description="Every invalid part (422)."
    )


_MEANING = {
    400: "The body is not JSON text (UTF-8).",
    401: "No credential, or one that does not verify.",
    403: "The principal may not do this: it does not hold the role, or not on "
    "this case.",
    404: "No such case, deadline, alert, workflow, facility or subscription.",
    409: "A conflict: the case moved on meanwhile, the event is not allowed in "
    "its state, or the case exists already.",
    412: "The case has moved past the version If-Match names.",
    422: "Invalid input; ``errors`` names the parts.",
    503: "The database is busy or unavailable; retry after Retry-After seconds.",
}
_HEADERS = {
    401: {"WWW-Authenticate": {"schema": {"type": "string"}}},
    503: {"Retry-After": {"schema": {"type": "integer"}}},
}


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """Return the OpenAPI problem responses for a route's ``responses=``.

    Args:
        statuses: The error statuses the route may answer with.
    """
    return {status: _response(status) for status in statuses}


def _response(status: int) -> dict[str, Any]:
    declared: dict[str, Any] = {
        "description": _MEANING[status],
        "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    if status in _HEADERS:
        declared["headers"] = _HEADERS[status]
    return declared


def _document(app: FastAPI) -> None:
    """Add the Problem schema, which the routes' responses refer to, to the doc."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        fresh = app.openapi_schema is None
        doc = build()
        if fresh:
            schema = Problem.model_json_schema(
                ref_template="#/components/schemas/{model}"
            )
            found = doc.setdefault("components", {}).setdefault("schemas", {})
            found.update(schema.pop("$defs", {}))
            found["Problem"] = schema
            # FastAPI answers a body it cannot decode with 400, on every route
            # that takes one.
            for path in doc.get("paths", {}).values():
                for operation in path.values():
                    if "requestBody" in operation:
                        operation["responses"]["400"] = _response(400)
        return doc

    # FastAPI's documented way to extend the generated document.
    app.openapi = openapi  # type: ignore[method-assign]


def install(app: FastAPI) -> None:
    """Register the problem-details handlers on *app*, and their OpenAPI schema."""
    app.add_exception_handler(errors.RRMError, _rrm_error)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
    _document(app)
