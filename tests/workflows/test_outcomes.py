"""The figures an agency reports: cases counted by outcome (issue #11), both backends.

v2 tells outcomes v1 folded into others (out of scope, remediated during the
respondent's own review, closed by agreement); ``engine.outcomes`` and
``rrm case outcomes`` count them as the workflow names them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import rrm
from rrm.cli import main
from rrm.service.transfer import import_cases

PUBLIC = Path(__file__).resolve().parent.parent / "data" / "public-cases"


def by_outcome(engine: rrm.CaseEngine, workflow: str | None = None) -> dict[str, int]:
    out: dict[str, int] = {}
    for c in engine.outcomes(workflow):
        key = c.outcome or "open"
        out[key] = out.get(key, 0) + c.cases
    return out


def test_v2_paths_are_counted_as_their_own_outcomes(engine, open_case):
    """Out of scope, remediated in review and closed by agreement are told apart."""
    out_of_scope = open_case()
    out_of_scope.fire("respondent_agrees", "respondent")
    out_of_scope.fire(
        "respondent_finds_out_of_scope", "respondent", grounds="not_covered_facility"
    )
    out_of_scope.fire("complainant_accepts_out_of_scope", "ustr")
    remedied = open_case()
    remedied.fire("respondent_agrees", "respondent")
    remedied.fire("respondent_reports_remediated", "respondent")
    remedied.fire("remediation_in_review_verified", "ustr")
    agreed = open_case()
    agreed.fire("respondent_declines", "respondent")
    agreed.fire("consultations_opened", "ustr")
    agreed.fire("agreement_reached", "ustr", respondent_agreement="joint statement")
    open_case()

    assert by_outcome(engine) == {
        "out of scope": 1,
        "remediated": 1,
        "closed by agreement": 1,
        "open": 1,
    }
    rows = {(c.state, c.cases) for c in engine.outcomes("usmca-31a")}
    assert ("closed_out_of_scope", 1) in rows
    assert ("review_requested", 1) in rows
    assert engine.outcomes("usmca-31b") == []


def test_public_cases_counted_before_and_after_migration(engine, clock):
    """The six public case files count the same after a move to v2 (states map 1:1)."""
    clock.set(datetime(2026, 1, 5, tzinfo=UTC))
    docs = [json.loads(p.read_text()) for p in sorted(PUBLIC.glob("*.json"))]
    import_cases(engine, docs)
    expected = {
        "remediated": 1,
        "facility closed": 1,
        "no denial of rights": 1,
        "petition declined": 1,
        "closed": 1,
        "open": 1,
    }
    assert by_outcome(engine) == expected
    clock.advance(timedelta(days=1))
    for workflow in ("usmca-31a", "usmca-31b"):
        engine.migrate(workflow, from_version=1, to_version=2, actor="admin:sam")
    # A migration maps states; it does not re-tell a case: San Martin stays
    # "no denial of rights" until an officer records what v2 can say.
    assert by_outcome(engine) == expected
    assert {c.workflow_version for c in engine.outcomes()} == {2}


def test_cli_prints_outcomes(tmp_path: Path, capsys: Any, monkeypatch: Any):
    """`rrm case outcomes` prints the counts, and --json the rows."""
    monkeypatch.setenv("COLUMNS", "200")
    db = f"sqlite:///{tmp_path / 'o.sqlite'}"
    assert main(["init", "--db", db]) == 0
    doc = PUBLIC / "US-MX-2021-01.json"
    assert main(["case", "import", str(doc), "--db", db]) == 0
    capsys.readouterr()
    assert main(["case", "outcomes", "--db", db]) == 0
    out = capsys.readouterr().out
    assert "Cases by outcome" in out
    assert "remediated" in out
    assert main(["case", "outcomes", "--db", db, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows == [
        {
            "workflow_id": "usmca-31a",
            "workflow_version": 1,
            "state": "closed_remediated",
            "label": "Closed: denial of rights remediated",
            "terminal": True,
            "outcome": "remediated",
            "cases": 1,
        }
    ]
