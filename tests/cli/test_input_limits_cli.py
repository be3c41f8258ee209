"""Bounded input at the command line (issue #12 item 4; NUL and keys given twice,
issue #13 item 2).

Each hostile input (a ``--payload`` nested 5,000 levels, an import file nested as
deeply, a workflow definition nested 50,000 levels, a payload or file over its
size, a key given twice, NUL inside a payload) ends as a user error: exit code 1,
one line on stderr naming the input and the limit, no traceback, and nothing
written. Look-alike references are in ``test_references_cli.py``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REF = "USTR-2025-001"
REPO = Path(__file__).resolve().parents[2]
DEEP = 5_000


def deep(depth: int) -> str:
    return "[" * depth + "]" * depth


def history(run: Any, db: str) -> list[dict[str, Any]]:
    result = run("case", "history", REF, "--db", db, "--json")
    assert result.code == 0, result.err
    found: list[dict[str, Any]] = result.json()
    return found


@pytest.fixture(name="case_db")
def _case_db(any_db: str, run: Any, open_args: Any) -> str:
    """A database of each backend holding one open case, USTR-2025-001."""
    result = run(*open_args(any_db))
    assert result.code == 0, result.err
    return any_db


def fire(run: Any, db: str, *options: str) -> Any:
    return run(
        "case", "fire", REF, "respondent_agrees", "--db", db,
        "--role", "respondent", "--actor", "officer:mx", *options,
    )  # fmt: skip


class TestFirePayload:
    def test_five_thousand_levels(self, run: Any, case_db: str, user_error: Any):
        before = history(run, case_db)
        line = user_error(fire(run, case_db, "--payload", '{"a": ' + deep(DEEP) + "}"))
        assert line == (
            "rrm: --payload: is nested 5,001 levels deep; at most 32 levels of "
            "objects and lists are accepted\n"
        )
        assert history(run, case_db) == before

    @pytest.mark.parametrize(
        ("options", "expected"),
        [
            (
                ("--payload", json.dumps({"note": "x" * 70_000})),
                "--payload: is 70,012 bytes; at most 65,536 bytes (64 KiB)",
            ),
            (
                ("--payload", '{"note": "a", "note": "b"}'),
                "--payload: the key 'note' appears twice in one object",
            ),
            (
                ("--payload", '{"note": {"x": ["ok", "a\\u0000b"]}}'),
                "--payload: the text at note.x[1] contains a NUL character",
            ),
            (
                ("--set", "note=a", "--set", "note=b"),
                "--set: the key 'note' is given twice",
            ),
            (
                ("--set", "note=" + deep(DEEP)),
                "--set note: is nested 5,000 levels deep; at most 31 levels",
            ),
            (
                ("--set", 'note={"a": 1, "a": 2}'),
                "--set note: the key 'a' appears twice in one object",
            ),
            (
                ("--set", "note=" + "x" * 70_000),
                "--set note: is 70,000 bytes; at most 65,536 bytes (64 KiB)",
            ),
        ],
        ids=[
            "size",
            "duplicate",
            "nul",
            "set-twice",
            "set-deep",
            "set-dup",
            "set-size",
        ],
    )
    def test_refused(
        self, run: Any, case_db: str, user_error: Any, options: Any, expected: str
    ):
        before = history(run, case_db)
        line = user_error(fire(run, case_db, *options))
        assert line.startswith(f"rrm: {expected}"), line
        assert history(run, case_db) == before

    def test_set_text_that_is_not_json_is_still_text(self, run: Any, opened: str):
        result = fire(run, opened, "--set", "note=[not json")
        assert result.code == 0, result.err
        assert history(run, opened)[-1]["payload"] == {"note": "[not json"}

    def test_in_a_real_process(self, tmp_path: Path, opened: str):
        """The installed command, 5,000 levels in argv: one line, exit 1."""
        done = subprocess.run(
            [
                sys.executable, "-m", "rrm", "case", "fire", REF, "respondent_agrees",
                "--db", opened, "--role", "respondent", "--actor", "officer:mx",
                "--payload", '{"a": ' + deep(DEEP) + "}",
            ],
            capture_output=True, text=True, cwd=tmp_path, check=False,
            env={"PATH": "/usr/bin:/bin", "COLUMNS": "120"},
        )  # fmt: skip
        assert done.returncode == 1
        assert "Traceback" not in done.stderr
        assert done.stderr.count("\n") == 1
        assert "at most 32 levels" in done.stderr


class TestImportFile:
    def export(self, run: Any, db: str, tmp_path: Path) -> dict[str, Any]:
        out = tmp_path / "export.json"
        assert run("case", "export", REF, "--db", db, "--out", str(out)).code == 0
        found: dict[str, Any] = json.loads(out.read_text("utf-8"))
        return found

    def test_five_thousand_levels(
        self, run: Any, any_db: str, tmp_path: Path, user_error: Any
    ):
        deep_file = tmp_path / "deep.json"
        deep_file.write_text(
            '{"format": "rrm-history/1", "case": ' + deep(DEEP) + "}", "utf-8"
        )
        line = user_error(run("case", "import", str(deep_file), "--db", any_db))
        assert line == (
            f"rrm: {deep_file}: the file is nested 5,001 levels deep; at most 40 "
            "levels of objects and lists are accepted\n"
        )
        assert run("case", "list", "--db", any_db, "--json").json() == []

    def test_duplicate_key(
        self, run: Any, opened: str, tmp_path: Path, user_error: Any, sqlite_db: str
    ):
        text = json.dumps(self.export(run, opened, tmp_path), indent=1)
        # The case's reference, given twice: which one would win is the question.
        text = text.replace(
            '"external_ref": "USTR-2025-001"',
            '"external_ref": "USTR-2025-001", "external_ref": "OTHER-1"',
            1,
        )
        twice = tmp_path / "twice.json"
        twice.write_text(text, "utf-8")
        target = sqlite_db.replace("cli.sqlite", "target.sqlite")
        assert run("init", "--db", target).code == 0
        line = user_error(run("case", "import", str(twice), "--db", target))
        assert "the key 'external_ref' appears twice in one object" in line
        assert run("case", "list", "--db", target, "--json").json() == []

    def test_too_large(self, run: Any, sqlite_db: str, tmp_path: Path, user_error: Any):
        big = tmp_path / "big.json"
        with big.open("w", encoding="utf-8") as f:
            f.write('{"format": "rrm-history/1", "note": "')
            f.write("x" * (16 * 1024 * 1024))
            f.write('"}')
        line = user_error(run("case", "import", str(big), "--db", sqlite_db))
        assert "the file is larger than 16,777,216 bytes (16 MiB)" in line

    def test_case_file_of_open_is_bounded_too(
        self, run: Any, sqlite_db: str, tmp_path: Path, user_error: Any
    ):
        deep_file = tmp_path / "case.json"
        deep_file.write_text('{"case": {"facility": ' + deep(DEEP) + "}}", "utf-8")
        line = user_error(
            run(
                "case",
                "open",
                "--db",
                sqlite_db,
                "--file",
                str(deep_file),
                "--actor",
                "ana",
                "--role",
                "ustr",
            )
        )
        assert line.startswith(f"rrm: --file: {deep_file} is nested 5,002 levels")


class TestWorkflowDefinitions:
    @pytest.mark.parametrize(
        "body",
        [
            "x = " + deep(50_000),
            "x = " + "{a = " * 50_000 + "1" + "}" * 50_000,
        ],
        ids=["arrays", "inline-tables"],
    )
    def test_fifty_thousand_levels(
        self, run: Any, tmp_path: Path, user_error: Any, body: str
    ):
        folder = tmp_path / "workflows"
        shutil.copytree(REPO / "workflows", folder)
        broken = folder / "usmca-31a" / "v9.toml"
        broken.write_text(body + "\n", "utf-8")
        line = user_error(run("workflows", "validate", str(folder)))
        assert line.startswith(
            f"rrm: {broken}: (file): is nested 50,000 levels deep; at most 64 levels "
            "of tables, arrays and inline tables are accepted"
        )

    def test_a_copy_of_the_bundled_ones_still_validates(self, run: Any, tmp_path: Path):
        folder = tmp_path / "workflows"
        shutil.copytree(REPO / "workflows", folder)
        result = run("workflows", "validate", str(folder))
        assert result.code == 0, result.err
