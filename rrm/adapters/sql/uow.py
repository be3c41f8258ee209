"""The SQL unit of work: one connection, one transaction, rolled back by default."""

from __future__ import annotations

from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Self, final

from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from rrm.adapters.sql.cache import DEFAULT_SIZE, CaseCache
from rrm.adapters.sql.engine import READ_ONLY
from rrm.adapters.sql.outbox import SqlOutbox
from rrm.adapters.sql.repository import BUSY_HINT, SqlCaseRepository, is_busy
from rrm.adapters.sql.webhooks import SqlWebhooks
from rrm.errors import DatabaseBusy, StorageError

if TYPE_CHECKING:
    from collections.abc import Iterator
    from types import TracebackType

    import sqlalchemy as sa

    from rrm.service.ports import CaseRepository, OutboxRepository, WebhookRepository

__all__ = ["SqlUnitOfWork", "SqlUnitOfWorkFactory"]


@final
class SqlUnitOfWork:
    """One database transaction around a use case; nothing sticks without commit().

    Use it as a context manager. Entering opens a connection and begins a
    transaction (on SQLite this takes the write lock, so writers queue); leaving
    rolls back anything not committed and returns the connection to the pool.

    Args:
        engine: An engine from :func:`rrm.adapters.sql.engine.make_engine` (or a
            host's engine for the same database).

    .. versionadded:: 0.1.0
    """

    # Typed as the port: the UnitOfWork protocol declares a settable attribute,
    # which mypy matches invariantly.
    cases: CaseRepository
    outbox: OutboxRepository
    webhooks: WebhookRepository

    def __init__(
        self,
        engine: sa.Engine,
        *,
        cache: CaseCache | None = None,
        read_only: bool = False,
    ) -> None:
        self._engine = engine
        self._cache = cache
        self._read_only = read_only
        self._conn: sa.Connection | None = None
        self._repository: SqlCaseRepository | None = None
        self._webhooks: SqlWebhooks | None = None

    def __enter__(self) -> Self:
        try:
            conn = self._engine.connect()
        except SQLAlchemyError as exc:
            msg = f"Could not reach the database ({type(exc).__name__})."
            raise StorageError(msg) from exc
        try:
            if self._read_only:
                # Tells SQLite's begin hook to start a deferred transaction: in
                # WAL mode readers then neither wait for nor block writers.
                conn.info[READ_ONLY] = True
            try:
                conn.begin()
            finally:
                conn.info.pop(READ_ONLY, None)
            if self._read_only and conn.dialect.name == "postgresql":
                # One snapshot for every read (a case row and its deadlines are
                # separate queries); SQLite's transaction is one already.
                conn.exec_driver_sql(_SNAPSHOT)
        except SQLAlchemyError as exc:
            conn.close()
            if is_busy(exc):
                raise DatabaseBusy(
                    "Could not start a transaction: the database is busy with another "
                    "writer; nothing was written, try again in a moment.",
                    hint=BUSY_HINT,
                ) from exc
            msg = "Could not start a transaction: the database is busy or unreachable."
            raise StorageError(msg) from exc
        self._conn = conn
        self._repository = SqlCaseRepository(conn, cache=self._cache)
        self.cases = self._repository
        self.outbox = SqlOutbox(conn)
        self._webhooks = SqlWebhooks(conn)
        self.webhooks = self._webhooks
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        # Closing rolls back whatever was not committed, including work done after
        # an earlier commit() in the same block.
        try:
            conn.close()
        except SQLAlchemyError:
            # The rollback could not reach the server: the connection is gone (the
            # server ended it, the network dropped), and the server rolls back an
            # unfinished transaction by itself. Drop the connection; an error that
            # ended the block (a typed StorageError, say) is the one to report.
            with suppress(SQLAlchemyError):
                conn.invalidate()

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A nested transaction: an error inside rolls back only its own writes."""
        conn = self._require()
        try:
            nested = conn.begin_nested()
        except SQLAlchemyError as exc:
            raise StorageError("Could not open a savepoint.") from exc
        try:
            yield
        except BaseException:
            if nested.is_active:
                nested.rollback()
            self._forget()
            raise
        if nested.is_active:
            nested.commit()

    def commit(self) -> None:
        """Make the transaction's writes durable.

        Raises:
            StorageError: If the database refuses the commit; nothing was written.
        """
        conn = self._require()
        try:
            conn.commit()
        except SQLAlchemyError as exc:
            with suppress(SQLAlchemyError):  # a lost connection cannot roll back
                conn.rollback()
            if isinstance(exc, DBAPIError) and exc.connection_invalidated:
                # The commit may have reached the server before the connection
                # dropped: its outcome is unknown, not "nothing written".
                raise StorageError(
                    "Could not confirm the changes: the connection to the database "
                    "was lost during the commit, so they may or may not be saved.",
                    hint="reload the case before repeating the action (a repeat "
                    "with the same idempotency key is safe)",
                ) from exc
            msg = "Could not save the changes: the commit failed; nothing was written."
            raise StorageError(msg) from exc
        if self._cache is not None and self._repository is not None:
            self._cache.publish(self._repository.staged())

    def rollback(self) -> None:
        """Discard the transaction's writes."""
        conn = self._require()
        self._forget()
        try:
            conn.rollback()
        except SQLAlchemyError as exc:
            raise StorageError("Could not discard the changes cleanly.") from exc

    def _forget(self) -> None:
        """Drop what the repositories remember of writes being undone."""
        if self._repository is not None:
            self._repository.forget()
        if self._webhooks is not None:
            self._webhooks.forget()

    def _require(self) -> sa.Connection:
        if self._conn is None:
            msg = "The unit of work is not open; use it in a `with` block."
            raise StorageError(msg)
        return self._conn


_SNAPSHOT = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"


@final
class SqlUnitOfWorkFactory:
    """Makes a fresh :class:`SqlUnitOfWork` on one engine for each use case.

    Args:
        engine: The database.
        cache_size: How many recently written cases to keep in the case cache
            shared by this factory's units of work; 0 turns it off.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0 The case cache and *cache_size*.
    """

    def __init__(self, engine: sa.Engine, *, cache_size: int = DEFAULT_SIZE) -> None:
        self.engine = engine
        self.cache = CaseCache(cache_size) if cache_size else None

    def __call__(self, *, read_only: bool = False) -> SqlUnitOfWork:
        """Return a new, not yet entered, unit of work (see the port)."""
        return SqlUnitOfWork(self.engine, cache=self.cache, read_only=read_only)
