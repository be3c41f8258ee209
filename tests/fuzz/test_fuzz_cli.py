"""Fuzz the ``rrm`` command line with random argument lists: no traceback, ever.

Each example builds an argv from the real command tree (``case open/fire/show/...``,
``deadlines``, ``alerts``, ``audit verify``, ``workflows``, ``db``, ``init``) mixed
with real options, plausible values and junk (control characters, NUL, lone
surrogates, huge strings, bad URLs and paths), and runs ``rrm.cli.main`` against a
temporary SQLite database holding one case. The exit code is 0, 1 or 2; nothing
escapes as an exception; a code 1 prints at most one line on stderr; no output shows
a traceback or the confidential petitioner. ``worker`` and ``demo`` are left out
(they run for long by design).

Examples per test come from ``RRM_FUZZ_EXAMPLES`` (default 200; the full run uses
``RRM_FUZZ_EXAMPLES=10000``). Named CLI errors are in ``tests/cli/``.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rrm.cli import main

from .conftest import FUZZ, query_text

# A 100 kB example makes Hypothesis warn about its repr; the suite turns warnings
# into errors, and the size is the point here.
pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")

SECRET = "Sindicato Secreto Fuzz"
COMMANDS = [
    ["case", "open"],
    ["case", "fire"],
    ["case", "show"],
    ["case", "list"],
    ["case", "history"],
    ["case", "assign"],
    ["case", "extend"],
    ["case", "toll"],
    ["case", "withdraw"],
    ["case", "export"],
    ["case", "import"],
    ["case"],
    ["deadlines"],
    ["alerts"],
    ["alerts", "retry"],
    ["alerts", "ack"],
    ["audit", "verify"],
    ["workflows", "list"],
    ["workflows", "validate"],
    ["workflows", "show"],
    ["workflows", "diagram"],
    ["db", "current"],
    ["db", "upgrade"],
    ["init"],
    [],
    ["nonsense"],
]
OPTIONS = [
    "--db", "--json", "--workflow", "--initiation", "--complainant", "--respondent",
    "--facility-id", "--facility-name", "--owner", "--city", "--region", "--sector",
    "--basis", "--sector-category", "--nlrb-order", "--petitioner",
    "--confidential-petitioner", "--officer", "--ref", "--actor", "--role", "--at",
    "--reason", "--payload", "--key", "--expect", "--timeline", "--svg", "--state",
    "--facility", "--limit", "--assign", "--remove", "--to", "--pause", "--resume",
    "--out", "--file", "--within", "--business", "--overdue", "--status", "--case",
    "--officer", "--path", "--version", "--format", "--internal", "--help",
    "--config", "-h", "--", "-x", "--no-such-option",
]  # fmt: skip
VALUES = [
    "REF-1", "usmca-31a", "usmca-31b", "request", "US", "MX", "CA", "FR", "ustr",
    "respondent", "system", "bogus", "respondent_agrees", "respondent_answer",
    "2025-01-07", "2025-13-45", "2025-01-07T10:00:00", "2025-01-07T10:00:00+00:00",
    "0", "1", "-1", "99999999999999999999", "1e3", "nan", "{}", '{"a": [1, {"b": null}]}',
    "[1,2]", "{not json", "ana:ustr:ana@x.example", "ana:ustr:a@b\r\nBcc: c@d",
    "a:b:c:d:e:f:g", "pending", "dead", "text", "dot", "svg", "png", "manufacturing",
    "annex_23a_legislation", "sqlite://", "nosuchdriver://x", "postgresql://",
    "sqlite:////nonexistent/dir/x.sqlite", "not a url", "/dev/null", "/", ".",
    "missing.json", "junk.json", "export.json", "out.svg", "", " ",
    # Bounded input (issues #12 and #13): deep, duplicated, NUL, look-alike.
    '{"a": ' + "[" * 5000 + "]" * 5000 + "}", "a=" + "[" * 5000 + "]" * 5000,
    '{"a": 1, "a": 2}', '{"a": "x\\u0000"}', "deep.json", "Pl\u0430nta",
    "MX-\u200b1", "REF-1\u202e",
]  # fmt: skip


@pytest.fixture(name="cli_world", scope="module")
def _cli_world(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A temp folder as cwd, no RRM_* variables, and a database with one case."""
    folder = tmp_path_factory.mktemp("cli-fuzz")
    db = f"sqlite:///{folder / 'fuzz.sqlite'}"
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith("RRM_"):
                mp.delenv(name)
        mp.setenv("COLUMNS", "120")
        mp.chdir(folder)
        (folder / "junk.json").write_text("{[not json", "utf-8")
        (folder / "export.json").write_text(json.dumps({"format": "x"}), "utf-8")
        (folder / "deep.json").write_text("[" * 5000 + "]" * 5000, "utf-8")
        assert call(["init", "--db", db])[0] == 0
        code, _, err = call(
            [
                "case",
                "open",
                "--db",
                db,
                "--workflow",
                "usmca-31a",
                "--initiation",
                "request",
                "--complainant",
                "US",
                "--respondent",
                "MX",
                "--facility-id",
                "MX-1",
                "--facility-name",
                "Planta",
                "--owner",
                "Grupo",
                "--basis",
                "annex_23a_legislation",
                "--sector-category",
                "manufacturing",
                "--ref",
                "REF-1",
                "--actor",
                "officer:ana",
                "--role",
                "ustr",
                "--confidential-petitioner",
                SECRET,
                "--officer",
                "ana:ustr:ana@x.example",
            ]
        )
        assert code == 0, err
        yield db


def call(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


tokens = st.one_of(
    st.sampled_from(OPTIONS),
    st.sampled_from(VALUES),
    st.sampled_from(VALUES),
    # Lone surrogates have their own regression test below.
    query_text.filter(lambda t: "\x00" not in t),
)


def test_huge_argument(cli_world: str) -> None:
    """A 100 kB argument is a user error or a result, never a traceback."""
    code, out, err = call(["case", "show", "x" * 100_000, "--db", cli_world])
    assert code == 1, out
    assert err.count("\n") == 1


@FUZZ
@given(
    command=st.sampled_from(COMMANDS),
    rest=st.lists(tokens, max_size=8),
    use_db=st.booleans(),
)
def test_random_argv(cli_world: str, command: list[str], rest: list[str], use_db: bool):
    argv = [*command, *(["--db", cli_world] if use_db else []), *rest]
    try:
        code, out, err = call(argv)
    except SystemExit as exc:  # click must not exit the host process
        pytest.fail(f"SystemExit({exc.code}) escaped for {argv!r}")
    except Exception as exc:  # noqa: BLE001 - the point is to see what escapes
        pytest.fail(f"{type(exc).__name__} escaped for {argv!r}: {exc!r}")
    assert code in {0, 1, 2}, (argv, code, err)
    assert "Traceback" not in out + err, argv
    if code == 1 and err:
        assert err.count("\n") <= 1, (argv, err)
    if "--confidential-petitioner" not in argv and "export" not in argv:
        assert SECRET not in out + err, argv


@pytest.mark.parametrize(
    "argv",
    [
        ["case", "show", "a\x00b"],
        ["case", "fire", "REF-1", "a\x00b", "--actor", "x", "--role", "ustr"],
        ["case", "list", "--state", "\x00"],
    ],
    ids=["show", "fire", "list"],
)
def test_nul_in_an_argument_is_handled(cli_world: str, argv: list[str]) -> None:
    """NUL cannot come from a real shell, but a host may pass it to main()."""
    code, out, err = call([*argv, "--db", cli_world])
    assert code in {0, 1, 2}, (out, err)
    if code == 1:
        assert err.count("\n") == 1, err
    assert "Traceback" not in out + err


def test_case_import_of_a_folder_is_a_user_error(
    cli_world: str, tmp_path: Path
) -> None:
    code, _, err = call(["case", "import", str(tmp_path), "--db", cli_world])
    assert code == 1, err
    assert err.count("\n") == 1


def test_non_utf8_argument_is_a_one_line_error(cli_world: str) -> None:
    """`rrm case show $'\\xff'` from a shell: Python decodes argv with surrogateescape."""
    result = subprocess.run(
        [
            sys.executable.encode(),
            b"-m",
            b"rrm",
            b"case",
            b"show",
            b"\xff",
            b"--db",
            cli_world.encode(),
        ],
        capture_output=True,
        check=False,
        timeout=60,
    )
    err = result.stderr.decode("utf-8", "replace")
    assert result.returncode == 1, err
    assert "Traceback" not in err
    assert err.count("\n") == 1, err


def test_overlong_workflow_folder_is_a_user_error(cli_world: str) -> None:
    """Found by the 10,000-example run: a path longer than the file system allows
    raised OSError (File name too long) out of `rrm workflows validate`."""
    code, out, err = call(["workflows", "validate", "x" * 5000])
    assert code == 1, (out, err)
    assert err.count("\n") == 1, err
    assert "cannot be read" in err
