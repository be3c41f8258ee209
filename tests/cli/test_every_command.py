"""Every officer command runs on SQLite and on PostgreSQL, end to end."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REF = "USTR-2025-101"


def ok(result: Any) -> Any:
    assert result.code == 0, result.err
    return result


def test_every_command_on_each_backend(
    any_db: str, run: Any, open_args: Any, tmp_path: Path
) -> None:
    """Open, fire, show, list, history, assign, extend, toll, deadlines, alerts,
    workflows, audit, export, import and withdraw all succeed on the backend."""
    db = ("--db", any_db)
    who = ("--actor", "officer:ana", "--role", "ustr")
    ok(run(*open_args(any_db, REF)))
    ok(
        run(
            "case",
            "fire",
            REF,
            "suspend_liquidation",
            *db,
            *who,
            "--set",
            "basis=19 U.S.C. 4692(a)",
        )
    )
    ok(
        run(
            "case",
            "fire",
            REF,
            "respondent_agrees",
            *db,
            "--actor",
            "mx",
            "--role",
            "respondent",
        )
    )
    shown = ok(run("case", "show", REF, *db, "--json")).json()
    assert shown["state"] == "respondent_reviewing"
    ok(run("case", "show", REF, *db, "--timeline"))
    ok(run("case", "show", REF, *db, "--svg", str(tmp_path / "t.svg")))
    assert (tmp_path / "t.svg").read_text().startswith("<svg")
    assert [c["ref"] for c in ok(run("case", "list", *db, "--json")).json()] == [REF]
    assert len(ok(run("case", "history", REF, *db, "--json")).json()) == 3
    ok(run("case", "assign", REF, *db, *who, "--officer", "ben:ustr:ben@ustr.example"))
    ok(
        run(
            "case",
            "extend",
            REF,
            "respondent_review",
            *db,
            *who,
            "--to",
            "2027-06-30",
            "--reason",
            "agreed by diplomatic note",
        )
    )
    for how in ("--pause", "--resume"):
        ok(
            run(
                "case",
                "toll",
                REF,
                "respondent_review",
                how,
                *db,
                *who,
                "--reason",
                "Secretariat closed",
            )
        )
    assert ok(run("deadlines", *db, "--within", "3000", "--json")).json()
    ok(run("alerts", *db, "--json"))
    ok(run("workflows", "show", "usmca-31a", "--json"))
    assert "stateDiagram-v2" in ok(run("workflows", "diagram", "usmca-31a")).out
    ok(run("audit", "verify", *db))
    export = tmp_path / "case.json"
    ok(run("case", "export", REF, *db, "--out", str(export)))
    assert json.loads(export.read_text())["format"] == "rrm-case/1"
    imported = ok(run("case", "import", str(export), *db, "--json")).json()
    assert "unchanged" in json.dumps(imported)
    ok(
        run(
            "case",
            "withdraw",
            REF,
            *db,
            *who,
            "--reason",
            "resolved",
            "--set",
            "condition=otherwise_remedied",
        )
    )
    assert ok(run("case", "show", REF, *db, "--json")).json()["state"] == "withdrawn"
