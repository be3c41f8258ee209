"""Who is calling: API tokens and OpenID Connect bearer JWTs become principals.

The only module that imports PyJWT. A JWT is accepted only if its signature
verifies against a key of the configured JWKS, and its issuer, audience and
expiry hold; roles come from the configured claim through the role map.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import jwt
import structlog

from rrm.domain.access import Principal
from rrm.errors import NotAuthenticated
from rrm.service.credentials import (
    CredentialStore,
    authenticate_token,
    cached_principal,
)

if TYPE_CHECKING:
    from datetime import datetime

    from rrm.server.settings import OidcSettings

__all__ = ["Authenticator", "principal_from_claims"]

log = structlog.get_logger("rrm.server.auth")

_JWKS_TIMEOUT_S = 5
_LEEWAY_S = 30


def _claim(claims: dict[str, Any], path: str) -> Any:
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


class Authenticator:
    """Turns an ``Authorization`` header into a principal, or refuses it."""

    def __init__(self, credentials: CredentialStore, oidc: OidcSettings | None) -> None:
        self._credentials = credentials
        self._oidc = oidc
        self._jwks = (
            jwt.PyJWKClient(oidc.jwks_url, cache_keys=True, timeout=_JWKS_TIMEOUT_S)
            if oidc is not None
            else None
        )

    def from_memory(self, header: str | None, *, now: datetime) -> Principal | None:
        """Return the principal of an API token held in memory, without I/O.

        ``None`` means the credential needs :meth:`authenticate` (a token not
        held, a JWT, or no credential at all).

        Raises:
            NotAuthenticated: A held token that is revoked, expired or wrong.
        """
        scheme, _, credential = (header or "").partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential.startswith("rrm_"):
            return None
        return cached_principal(self._credentials, credential, now=now)

    def authenticate(self, header: str | None, *, now: datetime) -> Principal:
        """Return the principal a ``Bearer`` credential proves.

        Raises:
            NotAuthenticated: No credential, or one that does not verify.
        """
        if not header:
            raise NotAuthenticated("no credential was sent")
        scheme, _, credential = header.partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise NotAuthenticated("use the Bearer scheme")
        if credential.startswith("rrm_"):
            return authenticate_token(self._credentials, credential, now=now)
        return self._from_jwt(credential, now=now)

    def _from_jwt(self, token: str, *, now: datetime) -> Principal:
        oidc, jwks = self._oidc, self._jwks
        if oidc is None or jwks is None:
            raise NotAuthenticated("the token is not valid")
        try:
            key = jwks.get_signing_key_from_jwt(token)
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=list(oidc.algorithms),
                audience=oidc.audience,
                issuer=oidc.issuer,
                leeway=_LEEWAY_S,
                options={
                    "require": ["exp", "iss", "aud", oidc.principal_claim],
                    # Times are checked below against the engine's clock.
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.PyJWKClientConnectionError:
            log.warning("jwks_unreachable")
            raise NotAuthenticated(
                "the identity provider's keys are unreachable"
            ) from None
        except (jwt.PyJWTError, ValueError) as exc:
            log.info("jwt_refused", error=type(exc).__name__)
            raise NotAuthenticated("the token is not valid") from None
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or now.timestamp() >= exp + _LEEWAY_S:
            raise NotAuthenticated("the token has expired")
        nbf = claims.get("nbf")
        if isinstance(nbf, int | float) and now.timestamp() < nbf - _LEEWAY_S:
            raise NotAuthenticated("the token is not valid yet")
        return principal_from_claims(claims, oidc)


def principal_from_claims(claims: dict[str, Any], oidc: OidcSettings) -> Principal:
    """Return the principal that verified claims of *oidc*'s provider name.

    Roles come from the configured claim through the role map; the agency from
    its claim. The claims must already be verified (signature, issuer, audience,
    expiry).

    Raises:
        NotAuthenticated: The claims name no principal.
    """
    subject = claims.get(oidc.principal_claim)
    if not isinstance(subject, str) or not subject:
        raise NotAuthenticated("the token names no principal")
    provider_roles = _strings(_claim(claims, oidc.roles_claim))
    if oidc.role_map:
        roles = {r for p in provider_roles for r in oidc.role_map.get(p, ())}
    else:
        roles = set(provider_roles)
    name = claims.get("name")
    return Principal(
        principal_id=subject,
        roles=frozenset(roles),
        agencies=frozenset(_strings(_claim(claims, oidc.agency_claim))),
        via=f"oidc:{oidc.issuer}",
        name=name if isinstance(name, str) else "",
    )
