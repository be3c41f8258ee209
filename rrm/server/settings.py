"""What the case service is configured with (built by ``rrm serve``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from rrm.service.access import AccessPolicy

__all__ = ["OidcSettings", "ServerSettings"]


@dataclass(frozen=True, slots=True, kw_only=True)
class OidcSettings:
    """How bearer JWTs from an OpenID Connect provider are validated.

    Attributes:
        issuer: The ``iss`` every token must carry.
        audience: The ``aud`` every token must carry.
        jwks_url: Where the provider publishes its signing keys.
        roles_claim: The claim holding the principal's roles (a dotted path,
            e.g. ``realm_access.roles``).
        role_map: Provider role → RRM roles; a provider role not in the map
            is ignored. Empty: provider roles are RRM roles as they are.
        agency_claim: The claim naming the principal's agency (or agencies).
        principal_claim: The claim that identifies the principal (``sub``).
        algorithms: Accepted signature algorithms.
        client_id: The console's client id at the provider; set it (with
            *client_secret* for a confidential client) to offer officers
            "Sign in with" the provider (authorization code with PKCE).
        client_secret: The console's client secret, if the provider gave one.
        discovery_url: The provider's OpenID configuration; by default
            ``<issuer>/.well-known/openid-configuration``.
        scopes: The scopes the console asks for.
    """

    issuer: str
    audience: str
    jwks_url: str
    roles_claim: str = "roles"
    role_map: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    agency_claim: str = "agency"
    principal_claim: str = "sub"
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    client_id: str = ""
    client_secret: str = field(default="", repr=False)
    discovery_url: str = ""
    scopes: tuple[str, ...] = ("openid", "profile", "email")

    @property
    def metadata_url(self) -> str:
        """Where the provider's OpenID configuration is read."""
        return self.discovery_url or (
            self.issuer.rstrip("/") + "/.well-known/openid-configuration"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerSettings:
    """The case service's settings.

    Attributes:
        policy: Who may do what (grants and the roles of management actions).
        oidc: The identity provider, or ``None`` for API tokens only.
        public_url: The service's address as officers reach it, for calendar
            feed links (``https://rrm.agency.example``).
        page_size: Default number of cases per page of a listing.
        session_secret: The key that signs console session cookies. Every
            server process must share it; empty: a key made at start (sessions
            then end when the service restarts).
    """

    policy: AccessPolicy = field(default_factory=AccessPolicy)
    oidc: OidcSettings | None = None
    public_url: str = "http://127.0.0.1:8000"
    page_size: int = 50
    session_secret: str = field(default="", repr=False)

    @property
    def console_oidc(self) -> OidcSettings | None:
        """The provider officers may sign in to the console with, if any."""
        if self.oidc is not None and self.oidc.client_id:
            return self.oidc
        return None

    @property
    def secure(self) -> bool:
        """True when officers reach the service over HTTPS (secure cookies)."""
        return self.public_url.startswith("https://")
