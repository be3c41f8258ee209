"""Run RRM's Alembic migrations from code, on the host's engine or connection.

No ``alembic.ini`` is needed: the configuration is built here, points at the
migrations shipped with RRM, and hands Alembic the caller's connection through
``Config.attributes``. RRM records its revision in its own version table,
``rrm_alembic_version``, so it never collides with a host's Alembic history.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Final

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.exc import SQLAlchemyError

from rrm._resources import migrations_dir
from rrm.errors import SchemaOutOfDate, StorageError

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = [
    "VERSION_TABLE",
    "check",
    "config",
    "current",
    "downgrade",
    "head",
    "upgrade",
]

VERSION_TABLE: Final = "rrm_alembic_version"


def config(connection: sa.Connection | None = None) -> Config:
    """Return an Alembic configuration for RRM's migrations.

    Args:
        connection: The connection the migrations run on; ``env.py`` picks it up
            from ``Config.attributes["connection"]``.
    """
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def upgrade(bind: sa.Engine | sa.Connection, revision: str = "head") -> None:
    """Upgrade RRM's tables to *revision*.

    An engine is migrated in one transaction of its own. A connection with an
    open transaction is migrated inside it, so a host can combine RRM's
    migrations with its own and commit once; on a connection without one,
    Alembic begins and commits its own.

    Raises:
        StorageError: If a migration fails; an engine's transaction is rolled back.

    .. versionadded:: 0.1.0
    """
    with _connection(bind, "upgrade the database schema") as conn:
        command.upgrade(config(conn), revision)


def downgrade(bind: sa.Engine | sa.Connection, revision: str) -> None:
    """Downgrade RRM's tables to *revision*.

    ``"base"`` removes every RRM table, including the version table.

    Raises:
        StorageError: If a migration fails; an engine's transaction is rolled back.

    .. versionadded:: 0.1.0
    """
    with _connection(bind, "downgrade the database schema") as conn:
        command.downgrade(config(conn), revision)
        # Alembic keeps its (now empty) version table; at base nothing of RRM
        # should remain in a host's database.
        if _revision(conn) is None:
            sa.Table(VERSION_TABLE, sa.MetaData()).drop(conn, checkfirst=True)


def current(bind: sa.Engine | sa.Connection) -> str | None:
    """Return the revision the database is at, or ``None`` before any migration.

    .. versionadded:: 0.1.0
    """
    with _connection(bind, "read the database schema revision") as conn:
        return _revision(conn)


def head() -> str:
    """Return the newest revision shipped with this version of RRM.

    .. versionadded:: 0.1.0
    """
    revision = ScriptDirectory.from_config(config()).get_current_head()
    if revision is None:  # pragma: no cover - RRM always ships a revision
        msg = "RRM's migrations folder holds no revision."
        raise StorageError(msg)
    return revision


def check(bind: sa.Engine | sa.Connection) -> None:
    """Refuse to go on unless the database is at :func:`head`.

    Raises:
        SchemaOutOfDate: If the database is at another revision (or none).

    .. versionadded:: 0.1.0
    """
    at, wanted = current(bind), head()
    if at != wanted:
        raise SchemaOutOfDate(at, wanted)


def _revision(conn: sa.Connection) -> str | None:
    opts = {"version_table": VERSION_TABLE}
    return MigrationContext.configure(conn, opts=opts).get_current_revision()


@contextmanager
def _connection(
    bind: sa.Engine | sa.Connection, action: str
) -> Iterator[sa.Connection]:
    try:
        if isinstance(bind, sa.Connection):
            yield bind
            return
        with bind.begin() as conn:
            yield conn
    except SQLAlchemyError as exc:
        msg = f"Could not {action}: the database reported {type(exc).__name__}."
        raise StorageError(msg) from exc
