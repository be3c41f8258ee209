"""The officer console: server-rendered pages at ``/`` of ``rrm serve``.

Jinja2 pages with htmx (vendored, pinned: ``static/VENDORED.json``), signed-in
through the configured OpenID Connect provider or with an API token. Pages call
the same engine and views as the JSON API; no rule of the procedure lives here.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from starlette.middleware.sessions import SessionMiddleware
from starlette.staticfiles import StaticFiles

from rrm.server.console import manage, pages, signin
from rrm.server.console.web import SESSION_LIFETIME, SecurityHeaders, here

if TYPE_CHECKING:
    from fastapi import FastAPI

    from rrm.server.settings import ServerSettings

__all__ = ["SESSION_COOKIE", "install"]

#: The signed cookie that carries a browser's console session.
SESSION_COOKIE = "rrm_session"


def install(app: FastAPI, settings: ServerSettings) -> None:
    """Add the console's pages, static files and middleware to *app*."""
    app.include_router(signin.router)
    # Before the case pages: /cases/new is not the case "new".
    app.include_router(manage.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=here() / "static"), name="static")
    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.session_secret or secrets.token_urlsafe(32),
        session_cookie=SESSION_COOKIE,
        max_age=int(SESSION_LIFETIME.total_seconds()),
        same_site="lax",
        https_only=settings.secure,
    )
    app.add_middleware(SecurityHeaders, secure=settings.secure)
