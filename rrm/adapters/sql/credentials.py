"""SQL storage of API tokens and calendar feeds (each call its own transaction)."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from rrm.adapters.sql.tables import API_TOKEN, CALENDAR_FEED, CONSOLE_SESSION
from rrm.errors import StorageError
from rrm.service.credentials import ApiToken, CalendarFeed, ConsoleSession

if TYPE_CHECKING:
    from collections.abc import Iterator
    from datetime import datetime

__all__ = ["SqlCredentialStore"]

# Tokens kept at most per process; the cache is emptied when it is full.
_MAX_CACHED = 10_000


def _token(row: Any) -> ApiToken:
    return ApiToken(
        token_id=row.token_id,
        principal=row.principal,
        roles=tuple(row.roles),
        agencies=tuple(row.agencies),
        label=row.label,
        created_at=row.created_at,
        created_by=row.created_by,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
    )


def _session(row: Any) -> ConsoleSession:
    return ConsoleSession(
        session_id=row.session_id,
        principal=row.principal,
        roles=tuple(row.roles),
        agencies=tuple(row.agencies),
        via=row.via,
        name=row.name,
        token_id=row.token_id,
        created_at=row.created_at,
        expires_at=row.expires_at,
        ended_at=row.ended_at,
    )


def _feed(row: Any) -> CalendarFeed:
    return CalendarFeed(
        feed_id=row.feed_id,
        officer_id=row.officer_id,
        created_at=row.created_at,
        created_by=row.created_by,
        revoked_at=row.revoked_at,
    )


class SqlCredentialStore:
    """Tokens and feeds in ``rrm_api_token`` and ``rrm_calendar_feed``.

    With *token_cache_seconds*, a token read for a request is kept that long in
    this process, so a busy service does not read it on every request. A
    revocation through this store takes effect at once here; one made by another
    process (``rrm token revoke``) within that many seconds. Expiry is still
    checked on every request.
    """

    def __init__(self, engine: sa.Engine, *, token_cache_seconds: float = 0) -> None:
        self._engine = engine
        self._ttl = token_cache_seconds
        self._cached: dict[str, tuple[float, tuple[ApiToken, str] | None]] = {}
        self._lock = threading.Lock()

    @contextmanager
    def _begin(self) -> Iterator[sa.Connection]:
        try:
            with self._engine.begin() as conn:
                yield conn
        except SQLAlchemyError as exc:
            msg = f"Could not read or store credentials ({type(exc).__name__})."
            raise StorageError(msg) from exc

    def add_token(self, token: ApiToken, secret_hash: str) -> None:
        """Store a new token."""
        with self._begin() as conn:
            conn.execute(
                sa.insert(API_TOKEN).values(
                    token_id=token.token_id,
                    principal=token.principal,
                    roles=list(token.roles),
                    agencies=list(token.agencies),
                    secret_hash=secret_hash,
                    label=token.label,
                    created_at=token.created_at,
                    created_by=token.created_by,
                    expires_at=token.expires_at,
                    revoked_at=None,
                )
            )

    def cached_token(self, token_id: str) -> tuple[ApiToken, str] | None:
        """Return a token read less than the cache's time ago, without I/O."""
        if self._ttl <= 0:
            return None
        with self._lock:
            hit = self._cached.get(token_id)
        if hit is not None and time.monotonic() - hit[0] < self._ttl:
            return hit[1]
        return None

    def token(self, token_id: str) -> tuple[ApiToken, str] | None:
        """Return a token and its secret's hash, or ``None``."""
        hit = self.cached_token(token_id)
        if hit is not None:
            return hit
        with self._begin() as conn:
            row = conn.execute(
                sa.select(API_TOKEN).where(API_TOKEN.c.token_id == token_id)
            ).first()
        found = (_token(row), row.secret_hash) if row is not None else None
        if self._ttl > 0 and found is not None:
            with self._lock:
                if len(self._cached) >= _MAX_CACHED:
                    self._cached.clear()
                self._cached[token_id] = (time.monotonic(), found)
        return found

    def tokens(self, principal: str | None = None) -> list[ApiToken]:
        """Return tokens (of one principal), newest first."""
        query = sa.select(API_TOKEN).order_by(
            API_TOKEN.c.created_at.desc(), API_TOKEN.c.token_id
        )
        if principal is not None:
            query = query.where(API_TOKEN.c.principal == principal)
        with self._begin() as conn:
            return [_token(r) for r in conn.execute(query)]

    def revoke_token(self, token_id: str, at: datetime) -> bool:
        """Revoke a token; False if there is none or it was already revoked."""
        with self._lock:
            self._cached.pop(token_id, None)
        with self._begin() as conn:
            done = conn.execute(
                sa.update(API_TOKEN)
                .where(API_TOKEN.c.token_id == token_id)
                .where(API_TOKEN.c.revoked_at.is_(None))
                .values(revoked_at=at)
            )
        return bool(done.rowcount)

    def add_feed(self, feed: CalendarFeed, secret_hash: str) -> None:
        """Store a new feed."""
        with self._begin() as conn:
            conn.execute(
                sa.insert(CALENDAR_FEED).values(
                    feed_id=feed.feed_id,
                    officer_id=feed.officer_id,
                    secret_hash=secret_hash,
                    created_at=feed.created_at,
                    created_by=feed.created_by,
                    revoked_at=None,
                )
            )

    def feed(self, feed_id: str) -> tuple[CalendarFeed, str] | None:
        """Return a feed and its secret's hash, or ``None``."""
        with self._begin() as conn:
            row = conn.execute(
                sa.select(CALENDAR_FEED).where(CALENDAR_FEED.c.feed_id == feed_id)
            ).first()
        return (_feed(row), row.secret_hash) if row is not None else None

    def feeds(self, officer_id: str | None = None) -> list[CalendarFeed]:
        """Return feeds (of one officer), newest first."""
        query = sa.select(CALENDAR_FEED).order_by(
            CALENDAR_FEED.c.created_at.desc(), CALENDAR_FEED.c.feed_id
        )
        if officer_id is not None:
            query = query.where(CALENDAR_FEED.c.officer_id == officer_id)
        with self._begin() as conn:
            return [_feed(r) for r in conn.execute(query)]

    def revoke_feed(self, feed_id: str, at: datetime) -> bool:
        """Revoke a feed; False if there is none or it was already revoked."""
        with self._begin() as conn:
            done = conn.execute(
                sa.update(CALENDAR_FEED)
                .where(CALENDAR_FEED.c.feed_id == feed_id)
                .where(CALENDAR_FEED.c.revoked_at.is_(None))
                .values(revoked_at=at)
            )
        return bool(done.rowcount)

    def add_session(self, session: ConsoleSession, secret_hash: str) -> None:
        """Store a new console session."""
        with self._begin() as conn:
            conn.execute(
                sa.insert(CONSOLE_SESSION).values(
                    session_id=session.session_id,
                    secret_hash=secret_hash,
                    principal=session.principal,
                    roles=list(session.roles),
                    agencies=list(session.agencies),
                    via=session.via,
                    name=session.name,
                    token_id=session.token_id,
                    created_at=session.created_at,
                    expires_at=session.expires_at,
                    ended_at=None,
                )
            )

    def session(self, session_id: str) -> tuple[ConsoleSession, str] | None:
        """Return a console session and its secret's hash, or ``None``."""
        with self._begin() as conn:
            row = conn.execute(
                sa.select(CONSOLE_SESSION).where(
                    CONSOLE_SESSION.c.session_id == session_id
                )
            ).first()
        return (_session(row), row.secret_hash) if row is not None else None

    def end_session(self, session_id: str, at: datetime) -> bool:
        """End a console session; False if there is none or it had ended."""
        with self._begin() as conn:
            done = conn.execute(
                sa.update(CONSOLE_SESSION)
                .where(CONSOLE_SESSION.c.session_id == session_id)
                .where(CONSOLE_SESSION.c.ended_at.is_(None))
                .values(ended_at=at)
            )
        return bool(done.rowcount)
