"""A damaged case row is named, never shown as right nor crashed on (issue #12, item 3).

A state edited in the database into one the case's workflow version lacks made
`rrm case show` end in a traceback. Reads now raise ``CaseDamaged`` naming the case
and the field and pointing to `rrm audit verify`, which names the difference from
the history. Both backends; the edit is made with SQL, as an insider would.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

import rrm
from rrm.cli import main


def _case(engine: rrm.CaseEngine) -> rrm.Case:
    return engine.open_case(
        rrm.OpenCase(
            workflow="usmca-31a",
            initiation="request",
            complainant="US",
            respondent="MX",
            facility=rrm.Facility(
                facility_id="MX-DMG-1",
                name="Planta Dañada",
                owner="Grupo Ejemplo",
                country=rrm.Party.MX,
            ),
            claim=rrm.Claim(
                basis="annex_23a_legislation", sector_category="manufacturing"
            ),
            external_ref="DMG-1",
            actor="officer:ana",
            role="ustr",
        )
    )


@pytest.fixture(name="damaged")
def _damaged(db_url, sql_engine_for, clock, workflows) -> tuple[Any, rrm.Case]:
    sql = sql_engine_for(db_url)
    engine = rrm.bootstrap(sql, clock=clock, workflows=workflows, upgrade=True)
    case = _case(engine)
    with sql.begin() as conn:
        conn.execute(
            sa.text("UPDATE rrm_case SET state = 'bogus' WHERE case_id = :c"),
            {"c": case.case_id},
        )
    return sql, case


def test_reads_name_the_case_and_the_field(damaged, clock, workflows):
    """get, find and record raise CaseDamaged; the audit still reads and names it."""
    sql, case = damaged
    engine = rrm.bootstrap(sql, clock=clock, workflows=workflows)  # a new process
    for read in (
        lambda: engine.get(case.case_id),
        lambda: engine.get("DMG-1"),
        engine.find,
        lambda: engine.record(case.case_id),
    ):
        with pytest.raises(rrm.CaseDamaged) as caught:
            read()
        assert caught.value.case_id == case.case_id
        assert caught.value.field == "state"
        assert "rrm audit verify" in (caught.value.hint or "")
    stored = engine.get(case.case_id, intact=False)
    assert stored.state == "bogus"
    report = engine.verify(case.case_id)
    assert not report.ok
    assert any("'bogus'" in p for p in report.problems)


def test_cli_reads_exit_1_with_one_line(damaged, db_url, capsys, monkeypatch):
    """`rrm case show` and `rrm case list` name the damage; `rrm audit verify` too."""
    for name in ("RRM_DB", "RRM_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    _, case = damaged
    for args in (["case", "show", "DMG-1"], ["case", "list"]):
        code = main([*args, "--db", db_url])
        err = capsys.readouterr().err
        assert code == 1, args
        assert "Traceback" not in err
        assert f"Case DMG-1 ({case.case_id}) is damaged: state" in err
        assert "rrm audit verify" in err
    assert main(["audit", "verify", "--db", db_url]) == 1
    out = capsys.readouterr().out
    assert "case row says state 'bogus'" in out
