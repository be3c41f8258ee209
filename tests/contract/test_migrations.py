"""RRM's Alembic revisions build exactly the schema its tables declare, and undo it."""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from rrm._resources import migrations_dir
from rrm.adapters.sql import migrate, tables
from rrm.adapters.sql.engine import make_engine
from rrm.errors import SchemaOutOfDate

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture(name="empty_engine")
def _empty_engine(db_url: str) -> Iterator[sa.Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


def _rrm_tables(engine: sa.Engine) -> set[str]:
    return {t for t in sa.inspect(engine).get_table_names() if t.startswith("rrm_")}


def _only_rrm(name: str | None, type_: str, parent_names: object) -> bool:
    return type_ != "table" or bool(name and name.startswith("rrm_"))


class TestUpgrade:
    def test_upgrade_creates_every_table_on_an_empty_database(self, empty_engine):
        """Upgrading an empty database to head creates every RRM table."""
        migrate.upgrade(empty_engine)

        assert _rrm_tables(empty_engine) == {
            *tables.metadata.tables,
            "rrm_alembic_version",
        }
        assert migrate.current(empty_engine) == migrate.head()

    def test_head_schema_matches_the_table_declarations(self, empty_engine):
        """At head, autogenerate finds no difference from tables.metadata."""
        migrate.upgrade(empty_engine)

        with empty_engine.connect() as conn:
            context = MigrationContext.configure(
                conn,
                opts={
                    "version_table": migrate.VERSION_TABLE,
                    "compare_type": True,
                    "include_name": _only_rrm,
                },
            )
            diff = compare_metadata(context, tables.metadata)

        assert diff == []

    def test_upgrade_runs_inside_the_callers_transaction(self, empty_engine):
        """Upgrading inside a caller's open transaction leaves the commit to it."""
        with empty_engine.connect() as conn:
            conn.begin()
            migrate.upgrade(conn)
            assert migrate.current(conn) == migrate.head()
            conn.rollback()

        assert _rrm_tables(empty_engine) == set()


class TestCheck:
    def test_check_passes_at_head(self, empty_engine):
        """check() accepts a database at the head revision."""
        migrate.upgrade(empty_engine)

        migrate.check(empty_engine)

    def test_check_refuses_an_empty_database(self, empty_engine):
        """check() raises SchemaOutOfDate naming no revision on an empty database."""
        with pytest.raises(SchemaOutOfDate) as caught:
            migrate.check(empty_engine)

        assert (caught.value.current, caught.value.head) == (None, migrate.head())


class TestDowngrade:
    def test_downgrade_to_base_removes_every_rrm_table(self, empty_engine):
        """Downgrading to base leaves no rrm_ table behind, version table included."""
        migrate.upgrade(empty_engine)

        migrate.downgrade(empty_engine, "base")

        assert _rrm_tables(empty_engine) == set()
        assert migrate.current(empty_engine) is None


class TestRevisionFiles:
    @pytest.mark.parametrize(
        "path",
        sorted((migrations_dir() / "versions").glob("*.py")),
        ids=lambda p: p.name,
    )
    def test_revisions_import_only_alembic_and_sqlalchemy(self, path: Path):
        """A revision file imports only alembic, sqlalchemy and typing aids."""
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                imported.add(node.module or "")

        assert imported <= {"alembic", "sqlalchemy", "collections.abc"}
