"""Prepared writes that skip SQLAlchemy's per-execution machinery.

A fire writes three to five rows, and the sweep one row per alert. Measured on the
B1 benchmark, SQLAlchemy's ``Connection.execute`` cost 40-80 µs per statement on
top of the driver's 2-5 µs (the execution context, events, result set-up and the
type processing of each call), more than half of a fire. These statements are
still *built and compiled* by SQLAlchemy, once per dialect, and their parameters
go through each column type's own bind processor (the same functions SQLAlchemy
would call), so what reaches the driver is identical; only the execution wrapper
is skipped. Driver errors are turned into SQLAlchemy's exception classes, so
callers handle them as before.

Statements run this way do not pass through SQLAlchemy's ``before_cursor_execute``
events or ``echo`` logging.
"""

from __future__ import annotations

from contextlib import suppress
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Final, TypeAlias, final

from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.sql import Select
from sqlalchemy.sql.compiler import SQLCompiler

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

    import sqlalchemy as sa

__all__ = ["Prepared"]

_Processor: TypeAlias = "Callable[[Any], Any] | None"


@final
class _Compiled:
    __slots__ = (
        "constants",
        "converted",
        "getter",
        "names",
        "positional",
        "results",
        "sql",
    )

    def __init__(
        self, stmt: sa.ClauseElement, keys: Sequence[str], dialect: sa.Dialect
    ) -> None:
        compiled = stmt.compile(dialect=dialect, column_keys=list(keys))
        if not isinstance(compiled, SQLCompiler):  # pragma: no cover - DDL
            msg = "only SQL statements can be prepared"
            raise TypeError(msg)
        self.sql: str = compiled.string
        self.positional: bool = bool(compiled.positional)
        names = list(compiled.positiontup or compiled.binds)
        # Literals in the statement (``col + 1``) are binds with a value.
        constants = {
            name: compiled.binds[name].effective_value
            for name in names
            if name not in keys and not compiled.binds[name].required
        }
        missing = set(names) - set(keys) - set(constants)
        if missing:  # pragma: no cover - a programming error in this package
            msg = f"prepared statement needs parameters {sorted(missing)}"
            raise TypeError(msg)
        self.names: tuple[str, ...] = tuple(names)
        # A SELECT's column names and result processors, set on its first run
        # (a processor may depend on the type code the driver reports).
        self.results: list[tuple[str, _Processor]] | None = None
        self.constants: dict[str, Any] = constants
        # The parameters in statement order, and the positions that need their
        # type's bind processor (the others pass as they are): most are text.
        self.getter = itemgetter(*names) if names else None
        self.converted: tuple[tuple[int, Callable[[Any], Any]], ...] = tuple(
            (i, proc)
            for i, name in enumerate(names)
            if (
                proc := compiled.binds[name]
                .type.dialect_impl(dialect)
                .bind_processor(dialect)
            )
            is not None
        )


@final
class Prepared:
    """A statement compiled once per dialect, run straight on the driver cursor.

    Args:
        stmt: The SQLAlchemy statement, with ``bindparam`` placeholders.
        keys: The parameter names every call supplies (for INSERT and UPDATE
            statements without ``.values()``, the columns written).

    .. versionadded:: 0.2.0
    """

    def __init__(self, stmt: sa.ClauseElement, keys: Iterable[str]) -> None:
        self._stmt = stmt
        self._keys: Final = tuple(keys)
        self._by_dialect: dict[str, _Compiled] = {}

    def _compiled(self, conn: sa.Connection) -> _Compiled:
        dialect = conn.dialect
        found = self._by_dialect.get(dialect.name)
        if found is None:
            found = _Compiled(self._stmt, self._keys, dialect)
            self._by_dialect[dialect.name] = found
        return found

    def run(self, conn: sa.Connection, params: Mapping[str, Any]) -> int:
        """Execute once; return the driver's row count."""
        return self.run_many(conn, (params,))

    def run_many(self, conn: sa.Connection, rows: Sequence[Mapping[str, Any]]) -> int:
        """Execute for each parameter set; return the summed row count."""
        if not rows:
            return 0
        c = self._compiled(conn)
        cursor = self._execute(conn, c, rows)
        try:
            return int(cursor.rowcount)
        finally:
            _close(conn, cursor)

    def fetch(
        self, conn: sa.Connection, params: Mapping[str, Any]
    ) -> list[dict[str, Any]]:
        """Run a SELECT once; return its rows as dictionaries of column values.

        Values go through each selected column type's result processor, as
        SQLAlchemy's own result rows would.
        """
        c = self._compiled(conn)
        cursor = self._execute(conn, c, (params,))
        try:
            raw = cursor.fetchall()
            if c.results is None:
                c.results = _result_processors(
                    self._stmt, conn.dialect, cursor.description
                )
        except conn.dialect.loaded_dbapi.Error as exc:
            raise _wrapped(conn, c.sql, exc) from exc
        finally:
            _close(conn, cursor)
        results = c.results
        return [
            {
                name: value if proc is None or value is None else proc(value)
                for (name, proc), value in zip(results, row, strict=True)
            }
            for row in raw
        ]

    @staticmethod
    def _execute(
        conn: sa.Connection, c: _Compiled, rows: Sequence[Mapping[str, Any]]
    ) -> Any:
        if c.constants:
            rows = [{**c.constants, **row} for row in rows]
        args: list[Any] = []
        for row in rows:
            values = _values(c, row)
            args.append(
                values if c.positional else dict(zip(c.names, values, strict=True))
            )
        cursor = None
        try:
            cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            if len(args) == 1:
                cursor.execute(c.sql, args[0])
            else:
                cursor.executemany(c.sql, args)
        except conn.dialect.loaded_dbapi.Error as exc:
            if cursor is not None:
                _close(conn, cursor)
            raise _wrapped(conn, c.sql, exc) from exc
        return cursor


def _wrapped(conn: sa.Connection, sql: str, exc: Exception) -> StatementError:
    """A driver error as SQLAlchemy raises it (so callers handle it the same)."""
    return DBAPIError.instance(
        sql,
        None,
        exc,
        conn.dialect.loaded_dbapi.Error,
        hide_parameters=True,
        dialect=conn.dialect,
    )


def _close(conn: sa.Connection, cursor: Any) -> None:
    # A cursor of a connection the server has ended cannot be closed either.
    with suppress(conn.dialect.loaded_dbapi.Error):
        cursor.close()


def _values(c: _Compiled, row: Mapping[str, Any]) -> list[Any]:
    """The parameters of one execution, in order, through their processors."""
    if c.getter is None:
        return []
    got = c.getter(row)
    values = list(got) if len(c.names) > 1 else [got]
    for i, proc in c.converted:
        values[i] = proc(values[i])
    return values


def _result_processors(
    stmt: sa.ClauseElement, dialect: sa.Dialect, description: Sequence[Any]
) -> list[tuple[str, _Processor]]:
    """Name and result processor of each column a SELECT returns, in order."""
    if not isinstance(stmt, Select):  # pragma: no cover - a programming error
        msg = "only a SELECT returns rows"
        raise TypeError(msg)
    columns = list(stmt.selected_columns)
    out: list[tuple[str, _Processor]] = []
    for column, desc in zip(columns, description, strict=True):
        impl = column.type.dialect_impl(dialect)
        out.append((str(column.key), impl.result_processor(dialect, desc[1])))
    return out
