"""The SQL unit of work: one connection, one transaction, rolled back by default."""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Self, final

from sqlalchemy.exc import SQLAlchemyError

from rrm.adapters.sql.outbox import SqlOutbox
from rrm.adapters.sql.repository import SqlCaseRepository
from rrm.errors import StorageError

if TYPE_CHECKING:
    from collections.abc import Iterator
    from types import TracebackType

    import sqlalchemy as sa

    from rrm.service.ports import CaseRepository, OutboxRepository

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

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        self._conn: sa.Connection | None = None

    def __enter__(self) -> Self:
        try:
            conn = self._engine.connect()
        except SQLAlchemyError as exc:
            msg = f"Could not reach the database ({type(exc).__name__})."
            raise StorageError(msg) from exc
        try:
            conn.begin()
        except SQLAlchemyError as exc:
            conn.close()
            msg = "Could not start a transaction: the database is busy or unreachable."
            raise StorageError(msg) from exc
        self._conn = conn
        self.cases = SqlCaseRepository(conn)
        self.outbox = SqlOutbox(conn)
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
        conn.close()

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
            conn.rollback()
            msg = "Could not save the changes: the commit failed; nothing was written."
            raise StorageError(msg) from exc

    def rollback(self) -> None:
        """Discard the transaction's writes."""
        conn = self._require()
        try:
            conn.rollback()
        except SQLAlchemyError as exc:
            raise StorageError("Could not discard the changes cleanly.") from exc

    def _require(self) -> sa.Connection:
        if self._conn is None:
            msg = "The unit of work is not open; use it in a `with` block."
            raise StorageError(msg)
        return self._conn


@final
class SqlUnitOfWorkFactory:
    """Makes a fresh :class:`SqlUnitOfWork` on one engine for each use case.

    .. versionadded:: 0.1.0
    """

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def __call__(self) -> SqlUnitOfWork:
        """Return a new, not yet entered, unit of work."""
        return SqlUnitOfWork(self.engine)
