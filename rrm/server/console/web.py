"""The console's plumbing: templates, the signed-in officer, CSRF, and safe headers.

Every page is rendered by Jinja2 with autoescaping, in the officer's language.
The session cookie is signed (Starlette's ``SessionMiddleware``, itsdangerous)
and holds the console session's id and secret, the CSRF token and, during an
OpenID Connect sign-in, its state; the session itself is stored server-side
(``rrm_console_session``), so signing out ends every copy of the cookie.

Every state-changing request must carry the session's CSRF token (a form field,
or the ``X-CSRF-Token`` header that htmx sends), and come from this origin when
the browser says where it came from.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable, Coroutine
from datetime import timedelta
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import structlog
from fastapi import Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rrm import errors
from rrm._version import __version__
from rrm.domain.access import Principal
from rrm.server import problems
from rrm.server.console.i18n import LANGUAGES, Formatter, negotiate, translations
from rrm.server.context import Service, service
from rrm.service.access import MANAGERS
from rrm.service.credentials import session_principal

__all__ = [
    "CSP",
    "LANG_COOKIE",
    "ConsoleRoute",
    "SecurityHeaders",
    "check_csrf",
    "csrf_token",
    "flash",
    "officer",
    "render",
    "safe_next",
]

log = structlog.get_logger("rrm.server.console")

#: How long a console session lasts after sign-in.
SESSION_LIFETIME = timedelta(hours=8)
#: The cookie remembering the officer's language (not a secret; one year).
LANG_COOKIE = "rrm_lang"
_LANG_MAX_AGE = 365 * 24 * 3600

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)


def here() -> Path:
    """The console's folder (templates, static files, catalogues)."""
    return Path(str(resources.files("rrm.server.console")))


_HERE = here()


@cache
def _environment(lang: str) -> Environment:
    env = Environment(
        loader=FileSystemLoader(_HERE / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
        # Templates ship inside the package: no need to stat them on each page.
        auto_reload=False,
    )
    env.install_gettext_translations(translations(lang), newstyle=True)  # type: ignore[attr-defined]
    fmt = Formatter(lang)
    env.globals.update(
        fmt=fmt,
        lang=lang,
        languages=LANGUAGES,
        version=__version__,
    )
    return env


def language(request: Request) -> str:
    """Return the officer's language for this request."""
    return negotiate(
        request.cookies.get(LANG_COOKIE), request.headers.get("accept-language")
    )


def gettext(request: Request) -> Callable[[str], str]:
    """Return the ``_`` of the officer's language, for messages built in routes."""
    return translations(language(request)).gettext


# -- who is signed in ------------------------------------------------------------------


class SignInRequired(Exception):
    """The page needs a signed-in officer; the browser is sent to sign in."""


async def officer(request: Request) -> Principal:
    """Return the signed-in officer (a dependency of every page)."""
    text = request.session.get("sid")
    if not isinstance(text, str):
        raise SignInRequired
    svc = service(request)
    try:
        principal = await run_in_threadpool(
            session_principal, svc.credentials, text, now=svc.engine.clock.now()
        )
    except errors.NotAuthenticated:
        request.session.pop("sid", None)
        raise SignInRequired from None
    request.state.principal_id = principal.principal_id
    return principal


# -- CSRF ------------------------------------------------------------------


def csrf_token(request: Request) -> str:
    """Return this browser session's CSRF token, creating it on first use."""
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


class CsrfRefused(Exception):
    """A state-changing request without this session's CSRF token."""


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        referer = request.headers.get("referer")
        if referer is None:
            return origin is None
        parts = urlsplit(referer)
        origin = f"{parts.scheme}://{parts.netloc}"
    # Behind a TLS-terminating proxy the request reaches us as http://host:port;
    # the browser's origin is the public address the service is configured with.
    public = urlsplit(service(request).settings.public_url)
    own = {
        f"{request.url.scheme}://{request.url.netloc}",
        f"{public.scheme}://{public.netloc}",
    }
    return origin in own


async def check_csrf(request: Request) -> None:
    """Refuse a state-changing request without this session's CSRF token."""
    expected = request.session.get("csrf")
    sent = request.headers.get("x-csrf-token")
    if sent is None:
        form = await request.form()
        value = form.get("csrf_token")
        sent = value if isinstance(value, str) else None
    if (
        not isinstance(expected, str)
        or not sent
        or not hmac.compare_digest(expected.encode(), sent.encode())
        or not _same_origin(request)
    ):
        log.warning("csrf_refused", path=request.url.path)
        raise CsrfRefused


# -- pages ------------------------------------------------------------------


def flash(request: Request, message: str, kind: str = "success") -> None:
    """Keep a message for the next page this browser shows (after a redirect)."""
    request.session["flash"] = {"message": message, "kind": kind}


def safe_next(target: str | None, default: str = "/work") -> str:
    r"""Return *target* if it is a path on this site, else *default*.

    Refuses absolute and scheme-relative addresses (``https://evil``,
    ``//evil``, ``/\\evil``) so that sign-in never redirects off the site.
    """
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return default
    if any(c in target for c in "\\\r\n\t") or urlsplit(target).netloc:
        return default
    return target


def render(
    request: Request,
    template: str,
    *,
    principal: Principal | None,
    title: str,
    nav: str = "",
    status_code: int = 200,
    **values: Any,
) -> HTMLResponse:
    """Render a page in the officer's language."""
    lang = language(request)
    env = _environment(lang)
    svc: Service = service(request)
    roles = principal.roles if principal is not None else frozenset()
    context = {
        "request": request,
        "principal": principal,
        "is_manager": bool(roles & set(MANAGERS)),
        "is_admin": "admin" in roles,
        "title": title,
        "nav": nav,
        "csrf": csrf_token(request),
        "flash": request.session.pop("flash", None),
        "oidc": svc.settings.console_oidc is not None,
        "path": request.url.path,
        "full_path": request.url.path
        + (f"?{request.url.query}" if request.url.query else ""),
        **values,
    }
    html = env.get_template(template).render(context)
    return HTMLResponse(html, status_code=status_code)


def set_language(response: Response, lang: str, *, secure: bool) -> None:
    """Remember the officer's language in a cookie."""
    response.set_cookie(
        LANG_COOKIE,
        lang,
        max_age=_LANG_MAX_AGE,
        httponly=True,
        samesite="lax",
        secure=secure,
    )


def status_of(exc: errors.RRMError) -> int:
    """Return the HTTP status a page answers an engine error with (as the API)."""
    return problems.status_of(exc)


class ConsoleRoute(APIRoute):
    """A console route: sign-in redirects, CSRF refusals and errors as pages."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """Wrap the handler so a page never answers with JSON or a traceback."""
        handler = super().get_route_handler()

        async def page(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInRequired:
                if request.method != "GET":
                    return RedirectResponse("/sign-in", status_code=303)
                here = request.url.path + (
                    f"?{request.url.query}" if request.url.query else ""
                )
                return RedirectResponse(
                    f"/sign-in?next={quote(here, safe='')}", status_code=303
                )
            except RequestValidationError as exc:
                _ = gettext(request)
                fields = ", ".join(
                    str(e.get("loc", ("", ""))[-1]) for e in exc.errors()[:3]
                )
                return render(
                    request,
                    "error.html",
                    principal=getattr(request.state, "console_principal", None),
                    title=_("Not possible"),
                    status_code=422,
                    message=_("These values are not valid: {fields}.").format(
                        fields=fields
                    ),
                )
            except CsrfRefused:
                _ = gettext(request)
                return render(
                    request,
                    "error.html",
                    principal=None,
                    title=_("Request refused"),
                    status_code=403,
                    message=_(
                        "This form has expired or did not come from this site. "
                        "Go back, reload the page and try again."
                    ),
                )
            except errors.RRMError as exc:
                _ = gettext(request)
                status = status_of(exc)
                log.info(
                    "console_refused",
                    path=request.url.path,
                    error=type(exc).__name__,
                    status=status,
                )
                return render(
                    request,
                    "error.html",
                    principal=getattr(request.state, "console_principal", None),
                    title=_("Not possible"),
                    status_code=status,
                    message=exc.message,
                    hint=exc.hint,
                )

        return page


class SecurityHeaders:
    """Adds the console's security headers to every response that lacks them."""

    def __init__(self, app: ASGIApp, *, secure: bool) -> None:
        self.app = app
        self._headers = [
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"same-origin"),
            (b"x-frame-options", b"DENY"),
            (b"cross-origin-opener-policy", b"same-origin"),
        ]
        self._page = [
            (b"content-security-policy", CSP.encode()),
            (b"cache-control", b"no-store"),
        ]
        if secure:
            self._headers.append((b"strict-transport-security", b"max-age=31536000"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; add the headers to its response."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        api = str(scope.get("path", "")).startswith("/api/")

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                extra = list(self._headers)
                content_type = next(
                    (v for k, v in headers if k.lower() == b"content-type"), b""
                )
                # The console's pages; the API's own HTML (its interactive docs)
                # loads Swagger UI's scripts and keeps FastAPI's defaults.
                if content_type.startswith(b"text/html") and not api:
                    extra += self._page
                headers += [(k, v) for k, v in extra if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, sending)
