"""Shared fixtures: the fake clock, bundled workflows, and databases per backend.

PostgreSQL tests run when ``--rrm-postgres=URL`` (or ``RRM_TEST_POSTGRES``) names a
server; each test gets a schema of its own (a module with a live server shares one,
``module_backend`` and ``database_url_for``), dropped afterwards, so runs never see
each other's rows.
"""

from __future__ import annotations

import contextlib
import functools
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import structlog

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

REPO = Path(__file__).resolve().parent.parent
# Monday 2025-01-06 15:00 UTC: a documented, ordinary working day in all three Parties.
START = datetime(2025, 1, 6, 15, 0, tzinfo=UTC)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--rrm-postgres",
        default=os.environ.get("RRM_TEST_POSTGRES") or None,
        help="SQLAlchemy URL of a PostgreSQL server for the postgres-marked tests "
        "(e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test).",
    )


def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    if config.getoption("--rrm-postgres"):
        return
    skip = pytest.mark.skip(
        reason="no PostgreSQL given (--rrm-postgres / RRM_TEST_POSTGRES)"
    )
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


@pytest.fixture(name="postgres_url", scope="session")
def _postgres_url(request: pytest.FixtureRequest) -> str | None:
    url = request.config.getoption("--rrm-postgres")
    return str(url) if url else None


_BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(name="backend", params=_BACKENDS)
def _backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(name="module_backend", scope="module", params=_BACKENDS)
def _module_backend(request: pytest.FixtureRequest) -> str:
    """The backend of a database shared by one test module (a live server's)."""
    return str(request.param)


@contextlib.contextmanager
def _database(backend: str, folder: Path, postgres_url: str | None) -> Iterator[str]:
    """Yield a database URL: a new SQLite file in *folder*, or a new PostgreSQL schema.

    For PostgreSQL the schema rides in the URL's ``options`` query parameter
    (``-csearch_path=...``), which psycopg hands to the server, so every connection
    RRM opens lands in that schema; it is dropped afterwards.
    """
    if backend == "sqlite":
        yield f"sqlite:///{folder / 'rrm.sqlite'}"
        return
    assert postgres_url is not None
    import sqlalchemy as sa

    schema = f"rrm_t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in postgres_url else "?"
    try:
        yield f"{postgres_url}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(name="database_url_for", scope="session")
def _database_url_for(
    postgres_url: str | None,
) -> Callable[[str, Path], contextlib.AbstractContextManager[str]]:
    """Open a database of any scope: ``with database_url_for(backend, folder) as url``."""
    return functools.partial(_database, postgres_url=postgres_url)


@pytest.fixture(name="db_url")
def _db_url(
    backend: str,
    tmp_path: Path,
    database_url_for: Callable[[str, Path], contextlib.AbstractContextManager[str]],
) -> Iterator[str]:
    """A database URL for one test: a new SQLite file, or a new PostgreSQL schema."""
    with database_url_for(backend, tmp_path) as url:
        yield url


@pytest.fixture(name="clock")
def _clock() -> Any:
    from rrm.testing import FakeClock

    return FakeClock(START)


@pytest.fixture(name="workflows", scope="session")
def _workflows() -> Any:
    import rrm

    return rrm.load_workflows()


@pytest.fixture(name="sql_engine_for")
def _sql_engine_for() -> Iterator[Any]:
    """Make SQLAlchemy engines for URLs and dispose of them after the test."""
    from rrm.adapters.sql.engine import make_engine

    made: list[Any] = []

    def make(url: str) -> Any:
        made.append(make_engine(url))
        return made[-1]

    yield make
    for engine in made:
        engine.dispose()


@pytest.fixture(name="engine")
def _engine(db_url: str, clock: Any, workflows: Any, sql_engine_for: Any) -> Any:
    """A CaseEngine on a fresh, migrated database of the test's backend."""
    import rrm

    return rrm.bootstrap(
        sql_engine_for(db_url), clock=clock, workflows=workflows, upgrade=True
    )
