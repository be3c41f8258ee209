"""Signing in and out of the console, and choosing its language.

Two ways in: the configured OpenID Connect provider (authorization code with
PKCE, by Authlib; the only module that imports it), or an API token for a first
start without a provider. Either opens a new server-side console session: the
cookie a browser held before signing in never becomes signed in (no session
fixation), and the page it returns to is always on this site (no open redirect).
"""

from __future__ import annotations

from typing import Annotated, Any

import structlog
from authlib.integrations.base_client import OAuthError
from authlib.integrations.starlette_client import OAuth
from fastapi import APIRouter, Depends, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from rrm import errors
from rrm.domain.access import Principal
from rrm.server.auth import principal_from_claims
from rrm.server.console.i18n import LANGUAGES
from rrm.server.console.web import (
    SESSION_LIFETIME,
    ConsoleRoute,
    check_csrf,
    gettext,
    render,
    safe_next,
    set_language,
)
from rrm.server.context import service
from rrm.server.settings import OidcSettings
from rrm.service.credentials import (
    authenticate_token,
    end_session,
    open_session,
)

__all__ = ["router"]

log = structlog.get_logger("rrm.server.console")

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

_PROVIDER = "idp"


def _oauth(request: Request) -> Any:
    """Return the Authlib client of the configured provider (made once per app)."""
    state = request.app.state
    client = getattr(state, "console_oauth", None)
    if client is None:
        oidc = service(request).settings.console_oidc
        if oidc is None:
            raise errors.InvalidInput(
                "sign-in", "no identity provider is configured; use an API token"
            )
        client = _client(oidc)
        state.console_oauth = client
    return client


def _client(oidc: OidcSettings) -> Any:
    oauth = OAuth()
    oauth.register(
        _PROVIDER,
        client_id=oidc.client_id,
        client_secret=oidc.client_secret or None,
        server_metadata_url=oidc.metadata_url,
        client_kwargs={
            "scope": " ".join(oidc.scopes),
            "code_challenge_method": "S256",
            "token_endpoint_auth_method": "client_secret_post"
            if oidc.client_secret
            else "none",
        },
    )
    return oauth.create_client(_PROVIDER)


def _signed_in(
    request: Request, principal: Principal, *, token_id: str | None, target: str
) -> str:
    """Open a new console session for *principal*; return the page to go to."""
    svc = service(request)
    target = safe_next(target)
    old = request.session.get("sid")
    if isinstance(old, str):
        end_session(svc.credentials, old, now=svc.engine.clock.now())
    _session, text = open_session(
        svc.credentials,
        principal,
        lifetime=SESSION_LIFETIME,
        now=svc.engine.clock.now(),
        token_id=token_id,
    )
    # A new cookie: nothing of the signed-out browser session carries over.
    request.session.clear()
    request.session["sid"] = text
    log.info("console_signed_in", principal_id=principal.principal_id)
    return target


@router.get("/sign-in")
def sign_in_page(request: Request, next: str | None = None) -> Response:  # noqa: A002
    """The sign-in page: the identity provider, or an API token."""
    _ = gettext(request)
    return render(
        request,
        "signin.html",
        principal=None,
        title=_("Sign in"),
        next=safe_next(next),
    )


@router.post("/sign-in", dependencies=[Depends(check_csrf)])
async def sign_in_with_token(
    request: Request,
    token: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = "",  # noqa: A002
) -> Response:
    """Sign in with an API token (``rrm token create``)."""
    _ = gettext(request)
    svc = service(request)
    try:
        principal = await run_in_threadpool(
            authenticate_token,
            svc.credentials,
            token.strip(),
            now=svc.engine.clock.now(),
        )
    except errors.NotAuthenticated:
        log.info("console_sign_in_refused")
        return render(
            request,
            "signin.html",
            principal=None,
            title=_("Sign in"),
            status_code=401,
            error=_("This token is not valid. Check it, or ask an administrator."),
            next=safe_next(next),
        )
    token_id = principal.via.removeprefix("token:")
    target = await run_in_threadpool(
        _signed_in, request, principal, token_id=token_id, target=next
    )
    return RedirectResponse(target, status_code=303)


@router.get("/sign-in/oidc")
async def sign_in_with_provider(request: Request, next: str | None = None) -> Any:  # noqa: A002
    """Send the browser to the identity provider (authorization code + PKCE)."""
    client = _oauth(request)
    request.session["next"] = safe_next(next)
    public = service(request).settings.public_url.rstrip("/")
    return await client.authorize_redirect(request, f"{public}/sign-in/oidc/callback")


@router.get("/sign-in/oidc/callback")
async def provider_callback(request: Request) -> Response:
    """Where the provider sends the browser back with a code."""
    _ = gettext(request)
    client = _oauth(request)
    oidc = service(request).settings.console_oidc
    assert oidc is not None  # noqa: S101 - _oauth refused otherwise
    try:
        token = await client.authorize_access_token(request)
        claims = dict(token.get("userinfo") or {})
        principal = principal_from_claims(claims, oidc)
    except (OAuthError, errors.NotAuthenticated) as exc:
        log.info("console_oidc_refused", error=type(exc).__name__)
        return render(
            request,
            "signin.html",
            principal=None,
            title=_("Sign in"),
            status_code=401,
            error=_("The identity provider did not sign you in. Try again."),
        )
    target = await run_in_threadpool(
        _signed_in,
        request,
        principal,
        token_id=None,
        target=request.session.get("next") or "",
    )
    return RedirectResponse(target, status_code=303)


@router.post("/sign-out", dependencies=[Depends(check_csrf)])
def sign_out(request: Request) -> Response:
    """End the console session on the server, and forget the cookie."""
    svc = service(request)
    text = request.session.get("sid")
    if isinstance(text, str):
        end_session(svc.credentials, text, now=svc.engine.clock.now())
    request.session.clear()
    return RedirectResponse("/sign-in", status_code=303)


@router.post("/language", dependencies=[Depends(check_csrf)])
async def choose_language(
    request: Request,
    lang: Annotated[str, Form(max_length=5)],
    back: Annotated[str, Form(max_length=2000)] = "/work",
) -> Response:
    """Remember the officer's language and show the same page in it."""
    response = RedirectResponse(safe_next(back), status_code=303)
    if lang in LANGUAGES:
        set_language(response, lang, secure=service(request).settings.secure)
    return response
