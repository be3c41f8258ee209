"""Alembic environment for RRM's own tables.

Alembic loads this file by path. It runs on the connection handed over in
``config.attributes["connection"]`` (see ``rrm.adapters.sql.migrate``), or, for
developers using ``alembic -c storage/alembic.ini``, on the URL given with
``-x db=URL`` or ``sqlalchemy.url``.
"""

from logging.config import fileConfig
from typing import Any

import sqlalchemy as sa
from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlmodel.sql.sqltypes import AutoString

from rrm.adapters.sql.engine import make_engine
from rrm.adapters.sql.tables import metadata
from rrm.adapters.sql.types import UTCDateTime

VERSION_TABLE = "rrm_alembic_version"
target_metadata = metadata
config = context.config


def include_name(
    name: str | None,
    type_: str,
    parent_names: Any,  # noqa: ARG001 - the signature is Alembic's
) -> bool:
    """Let autogenerate see only RRM's tables, never a host's tables."""
    if type_ == "table":
        return bool(name) and str(name).startswith("rrm_")
    return True


def render_item(
    type_: str,
    obj: Any,
    autogen_context: AutogenContext,  # noqa: ARG001 - the signature is Alembic's
) -> str | bool:
    """Render column types with plain SQLAlchemy: revisions never import rrm."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    if type_ == "type" and isinstance(obj, AutoString):
        return "sa.String()" if obj.length is None else f"sa.String({obj.length})"
    return False


def _options(dialect: str) -> dict[str, Any]:
    return {
        "target_metadata": target_metadata,
        "version_table": VERSION_TABLE,
        "include_name": include_name,
        "render_item": render_item,
        "compare_type": True,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        "render_as_batch": dialect == "sqlite",
    }


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("db")
    url = url or config.get_main_option("sqlalchemy.url")
    if not url:
        msg = "Give the database with `-x db=URL` or sqlalchemy.url in alembic.ini."
        raise SystemExit(msg)
    return url


def run_offline() -> None:
    """Write the migration SQL to standard output (``alembic upgrade --sql``)."""
    url = _url()
    dialect = sa.engine.make_url(url).get_backend_name()
    context.configure(url=url, literal_binds=True, **_options(dialect))
    with context.begin_transaction():
        context.run_migrations()


def run_on(connection: sa.Connection) -> None:
    """Run the migrations on *connection*, inside its transaction if it has one."""
    context.configure(connection=connection, **_options(connection.dialect.name))
    with context.begin_transaction():
        context.run_migrations()


def main() -> None:
    """Pick the connection: the caller's, or one made from the command line."""
    connection = config.attributes.get("connection")
    if connection is not None:
        run_on(connection)
        return
    # Only the developer command line configures logging, from alembic.ini.
    if config.config_file_name is not None:
        fileConfig(config.config_file_name, disable_existing_loggers=False)
    if context.is_offline_mode():
        run_offline()
        return
    engine = make_engine(_url())
    try:
        with engine.begin() as conn:
            run_on(conn)
    finally:
        engine.dispose()


main()
