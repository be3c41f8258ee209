"""Fixtures for the officer CLI tests: run ``main`` and read what it printed."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from rrm.cli import main

# One confidential and one public petitioner on every sample case.
SECRET = "Sindicato Confidencial Ejemplo"
PUBLIC = "Public Workers Union"


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture(name="cli_env")
def _cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No RRM_* variable or ./rrm.toml of the developer leaks in; wide output."""
    for name in list(os.environ):
        if name.startswith("RRM_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.chdir(tmp_path)


@pytest.fixture(name="run")
def _run(capsys: pytest.CaptureFixture[str], cli_env: None) -> Any:
    """Run the CLI with arguments; return its exit code and output."""

    def run(*args: str) -> Result:
        code = main(list(args))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@pytest.fixture(name="sqlite_db")
def _sqlite_db(tmp_path: Path, run: Any) -> str:
    """A new SQLite file made ready by ``rrm init``."""
    url = f"sqlite:///{tmp_path / 'cli.sqlite'}"
    assert run("init", "--db", url).code == 0
    return url


@pytest.fixture(name="any_db")
def _any_db(db_url: str, run: Any) -> str:
    """A ready database of each backend (PostgreSQL with --rrm-postgres)."""
    assert run("init", "--db", db_url).code == 0
    return db_url


def _open_args(db: str, ref: str = "USTR-2025-001", **extra: str) -> list[str]:
    """Options that open a 31-A request case with both kinds of petitioner."""
    options = {
        "--workflow": "usmca-31a",
        "--initiation": "request",
        "--complainant": "US",
        "--respondent": "MX",
        "--facility-id": f"MX-{ref}",
        "--facility-name": "Planta Norte",
        "--owner": "Grupo Ejemplo",
        "--city": "Silao",
        "--region": "Guanajuato",
        "--sector": "auto parts",
        "--basis": "annex_23a_legislation",
        "--sector-category": "manufacturing",
        "--ref": ref,
        "--actor": "officer:ana",
        "--role": "ustr",
        **extra,
    }
    args = ["case", "open", "--db", db]
    for key, value in options.items():
        args += [key, value]
    return [
        *args,
        "--petitioner", PUBLIC,
        "--confidential-petitioner", SECRET,
        "--officer", "ana:ustr:ana@ustr.example",
        "--officer", "sam:supervisor:sam@ustr.example:es:America/Mexico_City",
    ]  # fmt: skip


def _days_ago(days: int) -> str:
    """An aware ISO instant some days in the past (the CLI runs on the real clock)."""
    return (datetime.now(UTC) - timedelta(days=days)).replace(microsecond=0).isoformat()


@pytest.fixture(name="opened")
def _opened(sqlite_db: str, run: Any) -> str:
    """A SQLite database holding one open 31-A case, USTR-2025-001."""
    result = run(*_open_args(sqlite_db))
    assert result.code == 0, result.err
    return sqlite_db


@pytest.fixture(name="overdue")
def _overdue(sqlite_db: str, run: Any) -> str:
    """A SQLite database whose one case was opened 60 days ago: deadlines lapsed."""
    result = run(*_open_args(sqlite_db, "USTR-OLD", **{"--at": _days_ago(60)}))
    assert result.code == 0, result.err
    return sqlite_db


def _one_error_line(result: Result) -> str:
    """Assert a user error: exit 1, one line on stderr, no traceback; return it."""
    assert result.code == 1, (result.out, result.err)
    assert result.err.startswith("rrm: ")
    assert result.err.count("\n") == 1, result.err
    assert "Traceback" not in result.err + result.out
    return result.err


@pytest.fixture(name="open_args")
def _open_args_fixture() -> Any:
    return _open_args


@pytest.fixture(name="days_ago")
def _days_ago_fixture() -> Any:
    return _days_ago


@pytest.fixture(name="user_error")
def _user_error_fixture() -> Any:
    return _one_error_line


@pytest.fixture(name="secret")
def _secret() -> str:
    """The confidential petitioner's name: no human-facing read may print it."""
    return SECRET
