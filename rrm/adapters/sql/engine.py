"""Build SQLAlchemy engines tuned for RRM on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.pool import StaticPool

from rrm.errors import InvalidInput

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

__all__ = ["READ_ONLY", "make_engine"]

_SQLITE_PRAGMAS = (
    # WAL lets readers work while one writer commits.
    "PRAGMA journal_mode=WAL",
    # A second writer waits up to 5 s for the lock instead of failing at once.
    "PRAGMA busy_timeout=5000",
    # SQLite ignores foreign keys unless asked, per connection.
    "PRAGMA foreign_keys=ON",
    # Durable across application crashes in WAL mode; only a power loss can drop
    # the last commits, which is the trade SQLite documents for WAL.
    "PRAGMA synchronous=NORMAL",
)

# Set in a connection's info for the begin of a read-only unit of work.
READ_ONLY = "rrm_read_only"

# Milliseconds a PostgreSQL statement waits for another transaction's lock (as
# SQLite's busy_timeout above).
_PG_LOCK_TIMEOUT_MS = 5000


def make_engine(url: str, *, echo: bool = False) -> sa.Engine:
    """Return an engine for *url*, set up the way RRM needs the database.

    SQLite connections get WAL mode, a busy timeout, foreign keys and real
    transactions (``BEGIN IMMEDIATE``), so concurrent writers queue for the lock
    instead of failing half-way. PostgreSQL connections get a lock timeout of 5 s
    unless the URL or the server sets one, so a lock held by a stuck transaction
    elsewhere fails a command (``StorageError``) instead of blocking it for ever.
    ``sqlite://`` is an in-memory database shared by all users of the engine. A
    ``postgresql://`` URL without a driver uses psycopg 3.

    Args:
        url: A SQLAlchemy database URL, e.g. ``sqlite:///rrm.sqlite`` or
            ``postgresql://user@host/db``.
        echo: Log every SQL statement (for debugging; statements may contain
            case data).

    Raises:
        InvalidInput: If *url* is not a database URL RRM can use.

    .. versionadded:: 0.1.0
    """
    parsed = _parse(url)
    try:
        if parsed.get_backend_name() == "sqlite":
            return _sqlite_engine(parsed, echo=echo)
        if parsed.get_backend_name() == "postgresql":
            # hide_parameters: driver errors must not carry case data (petitioners
            # may be confidential) into host logs.
            engine = sa.create_engine(parsed, echo=echo, hide_parameters=True)
            event.listen(engine, "connect", _on_postgres_connect)
            return engine
    except (ArgumentError, NoSuchModuleError, ImportError) as exc:
        raise InvalidInput("db", f"cannot use database URL: {exc}") from exc
    raise InvalidInput(
        "db", "only sqlite:// and postgresql:// database URLs are supported"
    )


def _on_postgres_connect(dbapi_connection: Any, _record: Any) -> None:
    # A statement waiting for a lock that another transaction holds gives up after
    # the lock timeout, as SQLite's busy timeout: an idle-in-transaction session of
    # some other program must not hold an officer's command, or a worker's tick,
    # forever. A timeout chosen in the URL (options=-c lock_timeout=...) or in the
    # server's settings stands.
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("SHOW lock_timeout")
        row = cursor.fetchone()
        if row is not None and row[0] == "0":
            cursor.execute(f"SET lock_timeout = {_PG_LOCK_TIMEOUT_MS}")
    finally:
        cursor.close()
    dbapi_connection.commit()


def _parse(url: str) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise InvalidInput(
            "db", "not a database URL; expected e.g. sqlite:///rrm.sqlite"
        ) from exc
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _sqlite_engine(url: URL, *, echo: bool) -> sa.Engine:
    in_memory = url.database in {None, "", ":memory:"}
    kwargs: dict[str, Any] = {}
    if in_memory:
        # One shared connection, or every checkout would see an empty database.
        kwargs = {"poolclass": StaticPool, "connect_args": {"check_same_thread": False}}
    engine = sa.create_engine(url, echo=echo, hide_parameters=True, **kwargs)
    event.listen(engine, "connect", _on_sqlite_connect)
    event.listen(engine, "begin", _on_sqlite_begin)
    return engine


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # The sqlite3 module's legacy transaction handling begins transactions late
    # (only before DML) and never for DDL; switch it off and let SQLAlchemy's
    # "begin" event issue BEGIN, as the SQLAlchemy SQLite docs recommend.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        for pragma in _SQLITE_PRAGMAS:
            cursor.execute(pragma)
    finally:
        cursor.close()


def _on_sqlite_begin(connection: sa.Connection) -> None:
    # IMMEDIATE takes the write lock up front. A deferred transaction that read
    # first and writes later cannot wait for the lock (SQLITE_BUSY at once), so
    # two officers would see "database is locked" instead of a clean queue.
    # Straight to the driver: it runs once per transaction, and going through
    # exec_driver_sql costs about as much as a whole INSERT.
    # A read-only unit of work begins a deferred transaction instead: its first
    # read takes a snapshot, and in WAL mode it neither waits for a writer nor
    # holds one up.
    begin = "BEGIN" if connection.info.get(READ_ONLY) else "BEGIN IMMEDIATE"
    try:
        connection.connection.driver_connection.execute(begin)  # type: ignore[union-attr]
    except sqlite3.Error as exc:
        # Raised in an event hook, outside SQLAlchemy's own error handling: wrap it
        # as SQLAlchemy would, or a busy database ("database is locked" after the
        # busy timeout) escapes every caller as a bare sqlite3 error.
        raise sa.exc.DBAPIError.instance(begin, None, exc, sqlite3.Error) from None
