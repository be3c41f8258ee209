"""``rrm serve`` and ``rrm token``: run the case service, manage its API tokens."""

import gc
import json
import logging
import os
import secrets
import sys
from dataclasses import asdict, dataclass, field
from typing import Annotated, Any

import structlog
import typer
import uvicorn
from fastapi import FastAPI

from rrm.adapters.sql import migrate
from rrm.adapters.sql.credentials import SqlCredentialStore
from rrm.adapters.sql.engine import make_engine
from rrm.cli.common import DEFAULT_DB, DbOption, JsonOption, console, print_json
from rrm.clock import SystemClock
from rrm.errors import InvalidInput
from rrm.server import OidcSettings, ServerSettings, create_app
from rrm.service.access import AccessPolicy, Grant
from rrm.service.credentials import ApiToken, create_token, parse_duration
from rrm.wiring import bootstrap

__all__ = ["app_from_env", "run_server", "serve", "token_app"]

token_app = typer.Typer(no_args_is_help=True, help="API tokens of the case service.")

_SETTINGS_ENV = "RRM_SERVE_SETTINGS"
FIRST_PRINCIPAL = "admin"


@dataclass(frozen=True, slots=True, kw_only=True)
class _Options:
    """Everything a server process needs, passable to worker processes as JSON."""

    db: str
    public_url: str
    token_cache_seconds: float = 5.0
    grants: list[str] = field(default_factory=list)
    oidc_issuer: str = ""
    oidc_audience: str = ""
    oidc_jwks_url: str = ""
    oidc_roles_claim: str = "roles"
    oidc_agency_claim: str = "agency"
    oidc_principal_claim: str = "sub"
    oidc_role_map: list[str] = field(default_factory=list)
    oidc_client_id: str = ""
    oidc_client_secret: str = ""
    oidc_discovery_url: str = ""
    session_secret: str = ""


def parse_grant(text: str) -> Grant:
    """Return the grant ``role[:agency[:complainant[:respondent[:workflow]]]]``.

    Raises:
        InvalidInput: If the text has no role or too many parts.
    """
    parts = text.split(":")
    if not parts[0] or len(parts) > 5:  # noqa: PLR2004 - the five fields
        raise InvalidInput(
            "--grant", "give role[:agency[:complainant[:respondent[:workflow]]]]"
        )
    parts += [""] * (5 - len(parts))
    return Grant(
        role=parts[0],
        agency=parts[1],
        complainant=parts[2],
        respondent=parts[3],
        workflow=parts[4],
    )


def _role_map(items: list[str]) -> dict[str, tuple[str, ...]]:
    mapped: dict[str, tuple[str, ...]] = {}
    for item in items:
        provider, sep, ours = item.partition("=")
        roles = tuple(r for r in ours.split(",") if r)
        if not sep or not provider or not roles:
            raise InvalidInput("--oidc-role-map", "give provider_role=role[,role...]")
        mapped[provider] = mapped.get(provider, ()) + roles
    return mapped


def _settings(opts: _Options) -> ServerSettings:
    oidc = None
    if opts.oidc_issuer or opts.oidc_jwks_url or opts.oidc_audience:
        if not (opts.oidc_issuer and opts.oidc_jwks_url and opts.oidc_audience):
            raise InvalidInput(
                "--oidc-issuer",
                "an identity provider needs --oidc-issuer, --oidc-audience and "
                "--oidc-jwks-url together",
            )
        oidc = OidcSettings(
            issuer=opts.oidc_issuer,
            audience=opts.oidc_audience,
            jwks_url=opts.oidc_jwks_url,
            roles_claim=opts.oidc_roles_claim,
            agency_claim=opts.oidc_agency_claim,
            principal_claim=opts.oidc_principal_claim,
            role_map=_role_map(opts.oidc_role_map),
            client_id=opts.oidc_client_id,
            client_secret=opts.oidc_client_secret,
            discovery_url=opts.oidc_discovery_url,
        )
    elif opts.oidc_client_id:
        raise InvalidInput(
            "--oidc-client-id",
            "console sign-in needs the provider: --oidc-issuer, --oidc-audience "
            "and --oidc-jwks-url",
        )
    return ServerSettings(
        policy=AccessPolicy(grants=tuple(parse_grant(g) for g in opts.grants)),
        oidc=oidc,
        public_url=opts.public_url,
        session_secret=opts.session_secret,
    )


def build_app(opts: _Options) -> FastAPI:
    """Return the case service on the database the options name."""
    settings = _settings(opts)
    sql = make_engine(opts.db)
    engine = bootstrap(sql, authorizer=settings.policy)
    store = SqlCredentialStore(sql, token_cache_seconds=opts.token_cache_seconds)
    app = create_app(engine, store, settings)
    # The app's long-lived objects (workflows, calendars, routes) never become
    # garbage: keep them out of the collector's full passes, which otherwise
    # pause a request for 100 ms and more (measured with B6).
    gc.collect()
    gc.freeze()
    return app


def run_server(app: FastAPI, *, host: str, port: int) -> None:
    """Serve *app* in this process until stopped."""
    uvicorn.run(app, host=host, port=port, log_level="warning")


def app_from_env() -> FastAPI:
    """Build the app in a worker process of ``rrm serve --workers N``."""
    if not structlog.is_configured():
        # Like the parent process: warnings only, unless RRM_VERBOSE is set.
        level = logging.INFO if os.environ.get("RRM_VERBOSE") else logging.WARNING
        structlog.configure(
            logger_factory=structlog.PrintLoggerFactory(sys.stderr),
            wrapper_class=structlog.make_filtering_bound_logger(level),
        )
    return build_app(_Options(**json.loads(os.environ[_SETTINGS_ENV])))


def _first_token(db: str) -> str | None:
    """Create the database if empty, and a first admin token if none exists."""
    sql = make_engine(db)
    try:
        if migrate.current(sql) is None:
            migrate.upgrade(sql)  # a new database: creating it is not migrating
        migrate.check(sql)
        store = SqlCredentialStore(sql)
        if store.tokens():
            return None
        _, text = create_token(
            store,
            principal=FIRST_PRINCIPAL,
            roles=("admin", "supervisor"),
            label="first start",
            created_by="rrm serve",
            now=SystemClock().now(),
        )
        return text
    finally:
        sql.dispose()


def serve(
    *,
    db: DbOption = DEFAULT_DB,
    host: Annotated[
        str, typer.Option(envvar="RRM_HOST", help="Address to listen on.")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(envvar="RRM_PORT", min=1, max=65535, help="TCP port.")
    ] = 8000,
    workers: Annotated[
        int,
        typer.Option(
            envvar="RRM_WORKERS", min=1, max=64, help="Server processes (PostgreSQL)."
        ),
    ] = 1,
    public_url: Annotated[
        str,
        typer.Option(
            envvar="RRM_PUBLIC_URL",
            help="The address officers reach the service at (for feed links).",
            show_default=False,
        ),
    ] = "",
    grant: Annotated[
        list[str] | None,
        typer.Option(
            "--grant",
            envvar="RRM_GRANTS",
            help="Agency-wide permission role[:agency[:complainant[:respondent"
            "[:workflow]]]], e.g. ustr:USTR:US; repeatable.",
            show_default=False,
        ),
    ] = None,
    oidc_issuer: Annotated[
        str, typer.Option(envvar="RRM_OIDC_ISSUER", help="OIDC issuer (iss).")
    ] = "",
    oidc_audience: Annotated[
        str, typer.Option(envvar="RRM_OIDC_AUDIENCE", help="OIDC audience (aud).")
    ] = "",
    oidc_jwks_url: Annotated[
        str, typer.Option(envvar="RRM_OIDC_JWKS_URL", help="The provider's JWKS.")
    ] = "",
    oidc_roles_claim: Annotated[
        str, typer.Option(envvar="RRM_OIDC_ROLES_CLAIM", help="Claim with roles.")
    ] = "roles",
    oidc_agency_claim: Annotated[
        str, typer.Option(envvar="RRM_OIDC_AGENCY_CLAIM", help="Claim with agency.")
    ] = "agency",
    oidc_principal_claim: Annotated[
        str, typer.Option(envvar="RRM_OIDC_PRINCIPAL_CLAIM", help="Principal claim.")
    ] = "sub",
    token_cache_seconds: Annotated[
        float,
        typer.Option(
            envvar="RRM_TOKEN_CACHE_SECONDS",
            min=0,
            max=300,
            help="Keep a checked API token this long per process; a token revoked "
            "elsewhere is refused within this time (0: check every request).",
        ),
    ] = 5.0,
    oidc_role_map: Annotated[
        list[str] | None,
        typer.Option(
            "--oidc-role-map",
            envvar="RRM_OIDC_ROLE_MAP",
            help="provider_role=role[,role]; repeatable. Without any, provider "
            "roles are RRM roles as they are.",
            show_default=False,
        ),
    ] = None,
    oidc_client_id: Annotated[
        str,
        typer.Option(
            envvar="RRM_OIDC_CLIENT_ID",
            help="The console's client id at the provider: officers sign in to "
            "the console with it (authorization code with PKCE).",
        ),
    ] = "",
    oidc_client_secret: Annotated[
        str,
        typer.Option(
            envvar="RRM_OIDC_CLIENT_SECRET",
            help="The console's client secret, if the provider gave one.",
            show_default=False,
        ),
    ] = "",
    oidc_discovery_url: Annotated[
        str,
        typer.Option(
            envvar="RRM_OIDC_DISCOVERY_URL",
            help="The provider's OpenID configuration (default: "
            "<issuer>/.well-known/openid-configuration).",
        ),
    ] = "",
    session_secret: Annotated[
        str,
        typer.Option(
            envvar="RRM_SESSION_SECRET",
            help="Key that signs console session cookies; set it to keep "
            "officers signed in across restarts (default: a new key per start).",
            show_default=False,
        ),
    ] = "",
) -> None:
    """Run the case service (HTTP API) until stopped.

    A new database is created; on the first start, a token for the principal
    'admin' (roles admin and supervisor) is printed once.
    """
    opts = _Options(
        db=db,
        public_url=public_url or f"http://{host}:{port}",
        token_cache_seconds=token_cache_seconds,
        grants=list(grant or []),
        oidc_issuer=oidc_issuer,
        oidc_audience=oidc_audience,
        oidc_jwks_url=oidc_jwks_url,
        oidc_roles_claim=oidc_roles_claim,
        oidc_agency_claim=oidc_agency_claim,
        oidc_principal_claim=oidc_principal_claim,
        oidc_role_map=list(oidc_role_map or []),
        oidc_client_id=oidc_client_id,
        oidc_client_secret=oidc_client_secret,
        oidc_discovery_url=oidc_discovery_url,
        # One key for every worker process, so any of them reads the cookie.
        session_secret=session_secret or secrets.token_urlsafe(32),
    )
    _settings(opts)  # refuse bad settings before listening
    first = _first_token(db)
    console.print(
        f"rrm serve: console http://{host}:{port}/ · API http://{host}:{port}"
        "/api/v1/docs",
        highlight=False,
    )
    if first is not None:
        console.print(
            "First start: an API token for 'admin' (roles admin, supervisor). "
            "It is shown only now; keep it safe:",
            highlight=False,
        )
        print(first, flush=True)
    if workers == 1:
        run_server(build_app(opts), host=host, port=port)
        return
    os.environ[_SETTINGS_ENV] = json.dumps(asdict(opts))
    uvicorn.run(
        "rrm.cli.serve:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
    )


def _token_json(t: ApiToken) -> dict[str, Any]:
    return {
        "token_id": t.token_id,
        "principal": t.principal,
        "roles": list(t.roles),
        "agencies": list(t.agencies),
        "label": t.label,
        "created_at": t.created_at.isoformat(),
        "created_by": t.created_by,
        "expires_at": t.expires_at.isoformat() if t.expires_at else None,
        "revoked_at": t.revoked_at.isoformat() if t.revoked_at else None,
    }


def _store(db: str) -> tuple[Any, SqlCredentialStore]:
    sql = make_engine(db)
    migrate.check(sql)
    return sql, SqlCredentialStore(sql)


@token_app.command("create")
def token_create(
    *,
    principal: Annotated[
        str, typer.Option(help="Who the token proves (an opaque officer id).")
    ],
    role: Annotated[
        list[str], typer.Option("--role", help="A role it holds; repeatable.")
    ],
    agency: Annotated[
        list[str] | None,
        typer.Option("--agency", help="An agency it belongs to; repeatable."),
    ] = None,
    expires: Annotated[
        str | None,
        typer.Option(help="Lifetime: 90d, 12h or 30m (default: no expiry)."),
    ] = None,
    label: Annotated[str, typer.Option(help="What the token is for.")] = "",
    db: DbOption = DEFAULT_DB,
    as_json: JsonOption = False,
) -> None:
    """Issue an API token; its text is printed once and stored only as a hash."""
    sql, store = _store(db)
    try:
        token, text = create_token(
            store,
            principal=principal,
            roles=role,
            agencies=agency or (),
            label=label,
            expires_in=parse_duration(expires) if expires else None,
            created_by="rrm token create",
            now=SystemClock().now(),
        )
    finally:
        sql.dispose()
    if as_json:
        print_json({**_token_json(token), "token": text})
        return
    console.print(
        f"token {token.token_id} for {token.principal} "
        f"(roles {', '.join(token.roles)}); shown only now:",
        highlight=False,
    )
    print(text)


@token_app.command("list")
def token_list(
    principal: Annotated[
        str | None, typer.Option(help="Only this principal's tokens.")
    ] = None,
    db: DbOption = DEFAULT_DB,
    as_json: JsonOption = False,
) -> None:
    """List tokens (never their secrets)."""
    sql, store = _store(db)
    try:
        found = store.tokens(principal)
    finally:
        sql.dispose()
    if as_json:
        print_json([_token_json(t) for t in found])
        return
    now = SystemClock().now()
    for t in found:
        state = (
            "active" if t.active(now) else ("revoked" if t.revoked_at else "expired")
        )
        console.print(
            f"{t.token_id}  {t.principal:<16} {','.join(t.roles):<24} {state:<8} "
            f"{t.label}",
            highlight=False,
            markup=False,
        )


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[str, typer.Argument(help="The token's id (from the list).")],
    db: DbOption = DEFAULT_DB,
) -> None:
    """Revoke a token: requests carrying it are refused from now on."""
    sql, store = _store(db)
    try:
        done = store.revoke_token(token_id, SystemClock().now())
    finally:
        sql.dispose()
    if not done:
        raise InvalidInput("token_id", f"no active token {token_id!r}")
    console.print(f"token {token_id} revoked", highlight=False)
