"""API tokens and calendar-feed secrets: issued once, stored as hashes, revocable.

A token reads ``rrm_<token id>_<secret>``. Only the SHA-256 of the secret is
stored (the secret is 256 random bits, so a slow hash buys nothing); the token id
names the token in listings, logs and the history's ``via`` without revealing it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from rrm.domain.access import Principal
from rrm.errors import InvalidInput, NotAuthenticated
from rrm.service import validation as v

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

__all__ = [
    "ApiToken",
    "CalendarFeed",
    "ConsoleSession",
    "CredentialStore",
    "authenticate_feed",
    "authenticate_token",
    "cached_principal",
    "create_feed",
    "create_token",
    "end_session",
    "open_session",
    "parse_duration",
    "session_principal",
]

_TOKEN = re.compile(r"rrm_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")
_SESSION = re.compile(r"([0-9a-f]{16})\.([A-Za-z0-9_-]{43})")
_FEED = re.compile(r"([0-9a-f]{16})\.([A-Za-z0-9_-]{43})")
_DURATION = re.compile(r"(\d{1,5})([dhm])")
_ROLE = re.compile(r"[a-z][a-z0-9_-]{0,39}")
_AGENCY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}")


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiToken:
    """An API token as listed (never its secret)."""

    token_id: str
    principal: str
    roles: tuple[str, ...]
    agencies: tuple[str, ...]
    label: str
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None

    def active(self, now: datetime) -> bool:
        """True while the token is neither revoked nor expired."""
        return self.revoked_at is None and (
            self.expires_at is None or now < self.expires_at
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class CalendarFeed:
    """An officer's secret calendar feed (the secret is shown once)."""

    feed_id: str
    officer_id: str
    created_at: datetime
    created_by: str
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsoleSession:
    """A signed-in console session (its secret lives only in the cookie).

    Attributes:
        token_id: The API token it was opened with, if any: revoking the token
            ends the session.
        via: The credential that proved the principal (``token:<id>`` or
            ``oidc:<issuer>``), recorded on every change made in the session.
    """

    session_id: str
    principal: str
    roles: tuple[str, ...]
    agencies: tuple[str, ...]
    via: str
    name: str
    token_id: str | None
    created_at: datetime
    expires_at: datetime
    ended_at: datetime | None

    def active(self, now: datetime) -> bool:
        """True while the session is neither ended nor expired."""
        return self.ended_at is None and now < self.expires_at


class CredentialStore(Protocol):
    """Where tokens and feeds are kept (each call is its own transaction)."""

    def add_token(self, token: ApiToken, secret_hash: str) -> None:
        """Store a new token."""
        ...

    def token(self, token_id: str) -> tuple[ApiToken, str] | None:
        """Return a token and its secret's hash, or ``None``."""
        ...

    def cached_token(self, token_id: str) -> tuple[ApiToken, str] | None:
        """Return a token this process read recently, without any I/O, or ``None``."""
        ...

    def tokens(self, principal: str | None = None) -> list[ApiToken]:
        """Return tokens (of one principal), newest first."""
        ...

    def revoke_token(self, token_id: str, at: datetime) -> bool:
        """Revoke a token; False if there is none or it was already revoked."""
        ...

    def add_feed(self, feed: CalendarFeed, secret_hash: str) -> None:
        """Store a new feed."""
        ...

    def feed(self, feed_id: str) -> tuple[CalendarFeed, str] | None:
        """Return a feed and its secret's hash, or ``None``."""
        ...

    def feeds(self, officer_id: str | None = None) -> list[CalendarFeed]:
        """Return feeds (of one officer), newest first."""
        ...

    def revoke_feed(self, feed_id: str, at: datetime) -> bool:
        """Revoke a feed; False if there is none or it was already revoked."""
        ...

    def add_session(self, session: ConsoleSession, secret_hash: str) -> None:
        """Store a new console session."""
        ...

    def session(self, session_id: str) -> tuple[ConsoleSession, str] | None:
        """Return a console session and its secret's hash, or ``None``."""
        ...

    def end_session(self, session_id: str, at: datetime) -> bool:
        """End a console session; False if there is none or it had ended."""
        ...


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_duration(text: str) -> timedelta:
    """Return the span of ``90d``, ``12h`` or ``30m``.

    Raises:
        InvalidInput: If *text* is not a number followed by d, h or m.
    """
    m = _DURATION.fullmatch(text.strip()) if isinstance(text, str) else None
    if m is None or int(m.group(1)) == 0:
        raise InvalidInput(
            "expires", "give a number of days, hours or minutes, e.g. 90d, 12h, 30m"
        )
    unit = {"d": "days", "h": "hours", "m": "minutes"}[m.group(2)]
    return timedelta(**{unit: int(m.group(1))})


def _names(
    field: str, values: Iterable[str], pattern: re.Pattern[str]
) -> tuple[str, ...]:
    if isinstance(values, str):
        raise InvalidInput(field, "must be a list")
    out = []
    for value in values:
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise InvalidInput(field, f"{value!r} is not a valid name")
        out.append(value)
    return tuple(dict.fromkeys(out))


def create_token(
    store: CredentialStore,
    *,
    principal: str,
    roles: Sequence[str],
    agencies: Sequence[str] = (),
    label: str = "",
    expires_in: timedelta | None = None,
    created_by: str,
    now: datetime,
) -> tuple[ApiToken, str]:
    """Issue a token; returns it and its full text, which is never shown again.

    Raises:
        InvalidInput: A principal, role or agency name is malformed, no role is
            given, or the expiry is not in the future.
    """
    pid = v.text("principal", principal)
    role_names = _names("roles", roles, _ROLE)
    if not role_names:
        raise InvalidInput("roles", "give at least one role")
    if expires_in is not None and expires_in <= timedelta(0):
        raise InvalidInput("expires", "must be in the future")
    token = ApiToken(
        token_id=secrets.token_hex(8),
        principal=pid,
        roles=role_names,
        agencies=_names("agencies", agencies, _AGENCY),
        label=v.optional_text("label", label),
        created_at=now,
        created_by=v.text("created_by", created_by),
        expires_at=now + expires_in if expires_in is not None else None,
        revoked_at=None,
    )
    secret = secrets.token_urlsafe(32)
    store.add_token(token, _hash(secret))
    return token, f"rrm_{token.token_id}_{secret}"


def authenticate_token(
    store: CredentialStore, text: str, *, now: datetime
) -> Principal:
    """Return the principal an API token proves.

    Raises:
        NotAuthenticated: The text is not a token, or the token is unknown,
            revoked or expired (the message does not say which).
    """
    m = _TOKEN.fullmatch(text)
    if m is None:
        raise NotAuthenticated("the token is malformed")
    return _proven(store.token(m.group(1)), m.group(2), now=now)


def cached_principal(
    store: CredentialStore, text: str, *, now: datetime
) -> Principal | None:
    """Return the principal of a token the store holds in memory, else ``None``.

    Does no I/O, so an event loop may call it; ``None`` means "ask
    :func:`authenticate_token`", not "refused".

    Raises:
        NotAuthenticated: The token is held but revoked, expired or wrong.
    """
    m = _TOKEN.fullmatch(text)
    found = store.cached_token(m.group(1)) if m is not None else None
    if m is None or found is None:
        return None
    return _proven(found, m.group(2), now=now)


def _proven(
    found: tuple[ApiToken, str] | None, secret: str, *, now: datetime
) -> Principal:
    if found is None:
        raise NotAuthenticated("the token is not valid")
    token, digest = found
    if not hmac.compare_digest(digest, _hash(secret)) or not token.active(now):
        raise NotAuthenticated("the token is not valid")
    return Principal(
        principal_id=token.principal,
        roles=frozenset(token.roles),
        agencies=frozenset(token.agencies),
        via=f"token:{token.token_id}",
    )


def create_feed(
    store: CredentialStore, *, officer_id: str, created_by: str, now: datetime
) -> tuple[CalendarFeed, str]:
    """Issue a calendar feed; returns it and its secret path part (shown once)."""
    feed = CalendarFeed(
        feed_id=secrets.token_hex(8),
        officer_id=v.text("officer_id", officer_id),
        created_at=now,
        created_by=v.text("created_by", created_by),
        revoked_at=None,
    )
    secret = secrets.token_urlsafe(32)
    store.add_feed(feed, _hash(secret))
    return feed, f"{feed.feed_id}.{secret}"


def authenticate_feed(store: CredentialStore, text: str) -> CalendarFeed:
    """Return the live feed a secret path part names.

    Raises:
        NotAuthenticated: Unknown, malformed or revoked.
    """
    m = _FEED.fullmatch(text)
    found = store.feed(m.group(1)) if m is not None else None
    if m is None or found is None:
        raise NotAuthenticated("the calendar feed is not valid")
    feed, digest = found
    if not hmac.compare_digest(digest, _hash(m.group(2))) or feed.revoked_at:
        raise NotAuthenticated("the calendar feed is not valid")
    return feed


def open_session(
    store: CredentialStore,
    principal: Principal,
    *,
    lifetime: timedelta,
    now: datetime,
    token_id: str | None = None,
) -> tuple[ConsoleSession, str]:
    """Open a console session for a proven principal.

    Returns the session and the text its cookie carries (``<id>.<secret>``);
    only the secret's SHA-256 is stored. A new session is opened at every
    sign-in, so a cookie planted before sign-in never becomes signed in.
    """
    session = ConsoleSession(
        session_id=secrets.token_hex(8),
        principal=principal.principal_id,
        roles=tuple(sorted(principal.roles)),
        agencies=tuple(sorted(principal.agencies)),
        via=principal.via,
        name=principal.name,
        token_id=token_id,
        created_at=now,
        expires_at=now + lifetime,
        ended_at=None,
    )
    secret = secrets.token_urlsafe(32)
    store.add_session(session, _hash(secret))
    return session, f"{session.session_id}.{secret}"


def session_principal(store: CredentialStore, text: str, *, now: datetime) -> Principal:
    """Return the principal a console session's cookie text proves.

    Raises:
        NotAuthenticated: Unknown, malformed, ended or expired, or opened with
            an API token that has since been revoked or has expired.
    """
    m = _SESSION.fullmatch(text)
    found = store.session(m.group(1)) if m is not None else None
    if m is None or found is None:
        raise NotAuthenticated("you are not signed in")
    session, digest = found
    if not hmac.compare_digest(digest, _hash(m.group(2))) or not session.active(now):
        raise NotAuthenticated("your session has ended; sign in again")
    if session.token_id is not None:
        token = store.token(session.token_id)
        if token is None or not token[0].active(now):
            raise NotAuthenticated("the token you signed in with is no longer valid")
    return Principal(
        principal_id=session.principal,
        roles=frozenset(session.roles),
        agencies=frozenset(session.agencies),
        via=session.via,
        name=session.name,
    )


def end_session(store: CredentialStore, text: str, *, now: datetime) -> bool:
    """End the console session a cookie names (signing out); False if none."""
    m = _SESSION.fullmatch(text)
    found = store.session(m.group(1)) if m is not None else None
    if m is None or found is None:
        return False
    if not hmac.compare_digest(found[1], _hash(m.group(2))):
        return False
    return store.end_session(found[0].session_id, now)
