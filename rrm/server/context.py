"""What every route needs: the engine, the credentials, and the caller."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from rrm.domain.access import Principal
from rrm.errors import NotPermitted
from rrm.server.auth import Authenticator
from rrm.server.settings import ServerSettings
from rrm.service.access import Action
from rrm.service.credentials import CredentialStore
from rrm.service.engine import CaseEngine

__all__ = ["Caller", "Reader", "Service", "require_reader", "service"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Service:
    """The case service's parts, shared by every request."""

    engine: CaseEngine
    credentials: CredentialStore
    authenticator: Authenticator
    settings: ServerSettings


def service(request: Request) -> Service:
    """Return the service the app was built with."""
    found: Service = request.app.state.rrm
    return found


# Declares the scheme in the OpenAPI document; the Authenticator reads the header
# itself, so a missing or malformed credential is its 401, not FastAPI's.
_bearer = HTTPBearer(
    scheme_name="bearer",
    description="An API token (`rrm token create`) or a JWT of the configured "
    "OpenID Connect provider.",
    auto_error=False,
)


async def _principal(
    request: Request,
    _bearer_credentials: Annotated[
        HTTPAuthorizationCredentials | None, Security(_bearer)
    ],
) -> Principal:
    svc = service(request)
    header = request.headers.get("authorization")
    now = svc.engine.clock.now()
    # On the event loop when the token is in memory (no I/O); otherwise in the
    # thread pool: a database read or a JWKS fetch must not stall the loop.
    principal = svc.authenticator.from_memory(header, now=now)
    if principal is None:
        principal = await run_in_threadpool(
            svc.authenticator.authenticate, header, now=now
        )
    request.state.principal_id = principal.principal_id
    return principal


def require_reader(engine: CaseEngine, principal: Principal) -> None:
    """Refuse a principal that may not read cases (the API's and the console's rule).

    Raises:
        NotPermitted: The principal holds no role.
    """
    if not engine.authorizer.may_read(principal):
        raise NotPermitted(
            principal.principal_id, Action.READ.value, "", "", "you hold no role"
        )


async def _reader(
    principal: Annotated[Principal, Depends(_principal)], request: Request
) -> Principal:
    require_reader(service(request).engine, principal)
    return principal


#: The authenticated principal (401 without a valid credential).
Caller = Annotated[Principal, Depends(_principal)]
#: A principal allowed to read cases (403 for a principal with no role).
Reader = Annotated[Principal, Depends(_reader)]
