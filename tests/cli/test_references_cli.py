"""References and names at the command line (issue #13, item 2).

A reference, facility id, facility name or owner given to ``rrm case open`` (or
inside a file given to ``rrm case import``) with a bidirectional control, a
zero-width character or a look-alike letter of another alphabet ends as a user
error: exit code 1, one line on stderr naming the field and the character, and
nothing written. A fullwidth reference is stored (and found again) in NFKC.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pathlib import Path

REF = "USTR-2025-001"


@pytest.fixture(name="case_db")
def _case_db(any_db: str, run: Any, open_args: Any) -> str:
    """A database of each backend holding one open case, USTR-2025-001."""
    result = run(*open_args(any_db))
    assert result.code == 0, result.err
    return any_db


def refs(run: Any, db: str) -> list[str]:
    return [c["ref"] for c in run("case", "list", "--db", db, "--json").json()]


class TestOpen:
    @pytest.mark.parametrize(
        ("option", "value", "reason"),
        [
            ("--ref", "USTR-2025-002\u202e", "bidirectional control character"),
            ("--facility-id", "MX\u200b1", "invisible zero-width character"),
            ("--facility-name", "Pl\u0430nta Norte", "mixes Latin and Cyrillic"),
            ("--owner", "Grupo\u2066 Ejemplo", "bidirectional control character"),
        ],
    )
    def test_refused(
        self, run: Any, case_db: str, open_args: Any, user_error: Any,
        option: str, value: str, reason: str,
    ):  # fmt: skip
        args = open_args(case_db, "NEW-1")
        args[args.index(option) + 1] = value
        line = user_error(run(*args))
        assert reason in line
        assert refs(run, case_db) == [REF]

    def test_the_message_names_the_character(
        self, run: Any, sqlite_db: str, open_args: Any, user_error: Any
    ):
        args = open_args(sqlite_db, "USTR-2025-0\u04210")  # Cyrillic Es
        line = user_error(run(*args))
        assert line == (
            "rrm: external_ref: mixes Latin and Cyrillic letters in one reference "
            "(U+0421 CYRILLIC CAPITAL LETTER ES); a look-alike letter of another "
            "alphabet is not accepted\n"
        )

    def test_fullwidth_reference_is_stored_in_nfkc(
        self, run: Any, sqlite_db: str, open_args: Any
    ):
        fullwidth = "\uff35\uff33\uff34\uff32-\uff12\uff10\uff12\uff15-009"
        assert run(*open_args(sqlite_db, fullwidth)).code == 0
        shown = run("case", "show", "USTR-2025-009", "--db", sqlite_db, "--json")
        assert shown.code == 0, shown.err
        assert shown.json()["ref"] == "USTR-2025-009"

    def test_accented_names_pass(self, run: Any, sqlite_db: str, open_args: Any):
        args = open_args(sqlite_db, "USTR-2025-010")
        args[args.index("--facility-name") + 1] = "Fábrica Fränkische de México"
        args[args.index("--owner") + 1] = "Asociación Société Ñandú"
        result = run(*args)
        assert result.code == 0, result.err


class TestImport:
    @pytest.mark.parametrize(
        ("where", "value", "reason"),
        [
            ("external_ref", "USTR-2025-001\u202e", "bidirectional control"),
            ("facility_id", "MX-\u200bUSTR", "zero-width"),
            ("external_ref", "US\u0422R-2025-001", "mixes Latin and Cyrillic"),
        ],
    )
    def test_refused(
        self, run: Any, opened: str, tmp_path: Path, user_error: Any,
        where: str, value: str, reason: str,
    ):  # fmt: skip
        out = tmp_path / "export.json"
        assert run("case", "export", REF, "--db", opened, "--out", str(out)).code == 0
        doc = json.loads(out.read_text("utf-8"))
        if where == "facility_id":
            doc["case"]["facility"]["facility_id"] = value
        else:
            doc["case"][where] = value
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps(doc), "utf-8")
        target = f"sqlite:///{tmp_path / 'target.sqlite'}"
        assert run("init", "--db", target).code == 0
        line = user_error(run("case", "import", str(bad), "--db", target))
        assert reason in line
        assert refs(run, target) == []
