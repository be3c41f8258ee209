"""The FastAPI application of the case service."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rrm._version import __version__
from rrm.server import console, problems
from rrm.server.auth import Authenticator
from rrm.server.bodies import BodyLimits
from rrm.server.context import Service
from rrm.server.routes import admin, cases, hooks, ops
from rrm.server.settings import ServerSettings

if TYPE_CHECKING:
    from collections.abc import Iterable

    from rrm.service.credentials import CredentialStore
    from rrm.service.engine import CaseEngine

__all__ = ["API_PREFIX", "create_app"]

API_PREFIX = "/api/v1"

_DESCRIPTION = """\
The case service of **usmca-rrm**: facility cases of the USMCA Rapid Response Labor
Mechanism, their deadlines and their audited history, over HTTP.

Every request is authenticated (`Authorization: Bearer <token>`: an API token from
`rrm token create`, or a JWT of the configured OpenID Connect provider). The actor
of every change is the authenticated principal; a role is honoured only if the
principal holds it for that case. Errors are RFC 9457 problem details.
"""


def create_app(
    engine: CaseEngine,
    credentials: CredentialStore,
    settings: ServerSettings | None = None,
) -> FastAPI:
    """Build the case service on an engine and a credential store.

    The engine should enforce the service's access policy
    (``rrm.bootstrap(..., authorizer=settings.policy)``).
    """
    settings = settings or ServerSettings()
    app = FastAPI(
        title="usmca-rrm case service",
        version=__version__,
        description=_DESCRIPTION,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        swagger_ui_oauth2_redirect_url=f"{API_PREFIX}/docs/oauth2-redirect",
        redoc_url=None,
    )
    app.state.rrm = Service(
        engine=engine,
        credentials=credentials,
        authenticator=Authenticator(credentials, settings.oidc),
        settings=settings,
    )
    problems.install(app)
    # Every API body bounded once, here (size, nesting, keys given twice); inside
    # the metrics, which count its refusals too.
    app.add_middleware(BodyLimits, prefix=API_PREFIX)
    registry = CollectorRegistry()
    app.state.metrics = registry
    templates = _install_metrics(app, registry)
    # The problems every signed-in route may answer with; routes add 409 and 412.
    signed_in = problems.responses(401, 403, 404, 422, 503)
    app.include_router(cases.router, prefix=API_PREFIX, responses=signed_in)
    app.include_router(admin.router, prefix=API_PREFIX, responses=signed_in)
    app.include_router(hooks.router, prefix=API_PREFIX, responses=signed_in)
    app.include_router(hooks.feeds, responses=problems.responses(401, 422, 503))
    app.include_router(ops.router)
    console.install(app, settings)
    # Each endpoint's path template, once, here: building FastAPI's lazy route
    # contexts inside the first request raced with the request's own and crashed it.
    templates.update(_templates(app))
    return app


def _templates(app: FastAPI) -> dict[Any, str]:
    """Return each endpoint's full path template, router prefixes included.

    The matched route in the request scope knows only its path within its
    router (``/cases/{case}``) since FastAPI includes routers lazily.
    """
    try:
        from fastapi.routing import iter_route_contexts  # noqa: PLC0415
    except ImportError:  # pragma: no cover - FastAPI before lazy router inclusion
        routes: Iterable[Any] = app.routes
    else:
        routes = iter_route_contexts(app.routes)
    return {
        r.endpoint: r.path for r in routes if getattr(r, "endpoint", None) is not None
    }


def _install_metrics(app: FastAPI, registry: CollectorRegistry) -> dict[Any, str]:
    """Count and time every request; return the route templates to fill in."""
    requests = Counter(
        "rrm_http_requests",
        "HTTP requests answered, by route and status.",
        ["method", "route", "status"],
        registry=registry,
    )
    latency = Histogram(
        "rrm_http_request_seconds",
        "Server time per request, by route.",
        ["method", "route"],
        registry=registry,
        buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
    )

    templates: dict[Any, str] = {}
    app.add_middleware(
        _Metrics, requests=requests, latency=latency, templates=templates
    )
    return templates


class _Metrics:
    """Counts and times every request (a plain ASGI middleware: no extra task)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        requests: Counter,
        latency: Histogram,
        templates: dict[Any, str],
    ) -> None:
        self.app = app
        self._requests = requests
        self._latency = latency
        self._templates = templates

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            # The route's template, never the path: paths hold case references.
            name = self._templates.get(scope.get("endpoint"), "(unmatched)")
            method = scope["method"]
            self._requests.labels(method, name, str(status)).inc()
            self._latency.labels(method, name).observe(time.monotonic() - started)
