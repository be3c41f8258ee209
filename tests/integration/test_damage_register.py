"""Damage found by replay is named on reads, skipped by the sweep, told once (#12).

An insider edits a deadline row with SQL: its due date six months later, which
would silence its alerts. `verify` re-derives the case from its history and names
the field with both values; with ``record`` the case goes to the damage register:
reads name it (lists too), the sweep skips it while the other cases go on, and
the administrator receives one e-mail (a real SMTP server on loopback) however
often the verification runs. Restoring the row and verifying again takes it off.
Both backends.
"""

from __future__ import annotations

import email
from datetime import UTC, datetime, timedelta
from email import policy
from typing import Any

import pytest
import sqlalchemy as sa

import rrm
from rrm.adapters.email import SmtpNotifier, SmtpSettings
from rrm.domain.alerts import AlertKind
from rrm.testing import skip

START = datetime(2025, 1, 6, 15, tzinfo=UTC)
ADMIN = "integrity@agency.example"


def _engine(db_url, sql_engine_for, clock, workflows, smtp_server):
    notifier = SmtpNotifier(
        SmtpSettings(
            host="127.0.0.1",
            port=smtp_server.port,
            security="none",
            sender_address="rrm@agency.example",
            timeout=5,
        )
    )
    return rrm.bootstrap(
        sql_engine_for(db_url),
        clock=clock,
        workflows=workflows,
        upgrade=True,
        notifier=notifier,
        alert_settings=rrm.AlertSettings(admin_address=ADMIN),
    )


def _open(engine: rrm.CaseEngine, ref: str) -> rrm.Case:
    return engine.open_case(
        rrm.OpenCase(
            workflow="usmca-31a",
            initiation="request",
            complainant="US",
            respondent="MX",
            facility=rrm.Facility(
                facility_id=f"MX-{ref}",
                name="Planta Ejemplo",
                owner="Grupo Ejemplo",
                country=rrm.Party.MX,
            ),
            claim=rrm.Claim(
                basis="annex_23a_legislation", sector_category="manufacturing"
            ),
            officers=(
                rrm.Officer(officer_id="ana", role="ustr", email="ana@ustr.example"),
            ),
            petitioners=(rrm.Petitioner(name="Sindicato Uno", confidential=True),),
            external_ref=ref,
            actor="officer:ana",
            role="ustr",
        )
    )


def _received(smtp_server: Any) -> list[email.message.EmailMessage]:
    return [
        email.message_from_bytes(e.content, policy=policy.default)  # type: ignore[misc]
        for e in smtp_server.handler.envelopes
    ]


def _move_due_date(sql: sa.Engine, case: rrm.Case) -> None:
    with sql.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE rrm_deadline SET due_date = :d "
                "WHERE case_id = :c AND key = 'respondent_answer'"
            ),
            {"d": "2025-07-16", "c": case.case_id},
        )


@pytest.fixture(name="setup")
def _setup(db_url, sql_engine_for, clock, workflows, smtp_server):
    clock.set(START)
    engine = _engine(db_url, sql_engine_for, clock, workflows, smtp_server)
    tampered = _open(engine, "DMG-A")
    other = _open(engine, "DMG-B")
    return engine, sql_engine_for(db_url), tampered, other


def test_replay_names_the_moved_due_date_with_both_values(setup):
    engine, sql, tampered, other = setup
    _move_due_date(sql, tampered)

    report = engine.verify(tampered.case_id)

    assert not report.ok
    assert report.rows_checked
    [diff] = report.differences
    assert diff.table == "rrm_deadline"
    assert diff.field == "deadline respondent_answer (opened by entry 1).due_date"
    assert (diff.stored, diff.derived) == ("2025-07-16", "2025-01-16")
    assert diff.message in report.problems
    assert engine.verify(other.case_id).ok


def test_single_case_reads_name_it_at_once_lists_once_registered(setup):
    engine, sql, tampered, _ = setup
    _move_due_date(sql, tampered)

    with pytest.raises(rrm.CaseDamaged) as caught:
        engine.get(tampered.case_id, verified=True)
    assert caught.value.field == (
        "rrm_deadline deadline respondent_answer (opened by entry 1).due_date"
    )
    assert "rrm audit verify" in (caught.value.hint or "")
    with pytest.raises(rrm.CaseDamaged):
        engine.record(tampered.case_id)
    # Lists read the register, which the verification keeps.
    assert len(engine.find()) == 2
    engine.verify(tampered.case_id, record=True)
    with pytest.raises(rrm.CaseDamaged) as listed:
        engine.find()
    assert "2025-07-16" in str(listed.value)
    with pytest.raises(rrm.CaseDamaged):
        engine.get(tampered.case_id)
    assert [d.case_id for d in engine.damaged()] == [tampered.case_id]


def test_the_sweep_skips_it_and_the_admin_is_told_once(setup, clock, smtp_server):
    engine, sql, tampered, other = setup
    _move_due_date(sql, tampered)
    for _ in range(3):  # the nightly verification, three nights running
        assert not engine.verify(tampered.case_id, record=True).ok
    skip(engine, clock, by=timedelta(days=12))  # both answers (10 days) lapse

    notices = [
        m for m in _received(smtp_server) if m["To"].addresses[0].addr_spec == ADMIN
    ]
    assert len(notices) == 1
    body = notices[0].get_body(preferencelist=("plain",)).get_content()
    assert "DMG-A" in notices[0]["Subject"]
    assert "due_date: stored 2025-07-16, its history gives 2025-01-16" in body
    assert "Sindicato Uno" not in body  # a confidential petitioner is never quoted
    # The untouched case lapsed and alerted; the damaged one was left alone.
    assert engine.get(other.case_id).deadline("respondent_answer").lapsed_at
    stored = engine.get(tampered.case_id, intact=False)
    assert stored.deadline("respondent_answer").lapsed_at is None
    kinds = {a.kind for a in engine.alerts(case_id=tampered.case_id)}
    assert kinds == {AlertKind.CASE_DAMAGED}


def test_repaired_rows_come_off_the_register(setup, clock, smtp_server):
    engine, sql, tampered, _ = setup
    _move_due_date(sql, tampered)
    engine.verify(tampered.case_id, record=True)
    with sql.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE rrm_deadline SET due_date = :d "
                "WHERE case_id = :c AND key = 'respondent_answer'"
            ),
            {"d": "2025-01-16", "c": tampered.case_id},
        )

    assert engine.verify(tampered.case_id, record=True).ok
    assert engine.damaged() == []
    assert engine.get(tampered.case_id, verified=True).case_id == tampered.case_id
    skip(engine, clock, by=timedelta(days=12))
    assert engine.get(tampered.case_id).deadline("respondent_answer").lapsed_at


def test_a_structural_damage_met_by_the_sweep_is_registered_and_told(
    setup, clock, smtp_server
):
    """A state its workflow lacks: the sweep skips the case and tells the admin."""
    engine, sql, tampered, other = setup
    with sql.begin() as conn:
        conn.execute(
            sa.text("UPDATE rrm_case SET state = 'bogus' WHERE case_id = :c"),
            {"c": tampered.case_id},
        )
    skip(engine, clock, by=timedelta(days=12))

    assert [d.field for d in engine.damaged()] == ["state"]
    assert engine.get(other.case_id).deadline("respondent_answer").lapsed_at
    notices = [
        m for m in _received(smtp_server) if m["To"].addresses[0].addr_spec == ADMIN
    ]
    assert len(notices) == 1


def test_every_verify_all_report_and_the_history_hides_names(setup):
    """verify_all walks every case; the history holds digests, never the names."""
    engine, _, tampered, other = setup
    reports = list(engine.verify_all(record=True))
    assert [r.external_ref for r in reports] == ["DMG-A", "DMG-B"]
    assert all(r.ok and r.rows_checked for r in reports)
    opening = engine.history(tampered.case_id)[0]
    assert opening.subject is not None
    text = str(opening.subject)
    for name in ("Sindicato Uno", "ana@ustr.example", "Planta Ejemplo"):
        assert name not in text
    assert set(opening.subject) == {
        "salt", "case", "facility", "claim", "petitioners", "officers"
    }  # fmt: skip
    assert other.case_id != tampered.case_id


def test_a_migrated_case_verifies_and_an_edited_version_is_named(setup, clock):
    """Opened on v1 and moved to v2: whole. A never-migrated case's version edited:
    the opening entry sealed the version it opened on."""
    engine, sql, _, other = setup
    old = engine.open_case(
        rrm.OpenCase(
            workflow="usmca-31a",
            workflow_version=1,
            initiation="request",
            complainant="US",
            respondent="MX",
            facility=rrm.Facility(
                facility_id="MX-DMG-A",
                name="Planta Ejemplo",
                owner="Grupo Ejemplo",
                country=rrm.Party.MX,
            ),
            claim=rrm.Claim(
                basis="annex_23a_legislation", sector_category="manufacturing"
            ),
            external_ref="DMG-V1",
            actor="officer:ana",
            role="ustr",
        )
    )
    clock.advance(timedelta(hours=1))
    moved = engine.migrate_case(old.case_id, to_version=2, actor="admin:zoe")
    assert moved.workflow_version == 2
    assert engine.verify(old.case_id).ok
    with sql.begin() as conn:
        conn.execute(
            sa.text("UPDATE rrm_case SET workflow_version = 1 WHERE case_id = :c"),
            {"c": other.case_id},
        )

    report = engine.verify(other.case_id)

    assert "rrm_case workflow_version: stored 1, entry 1 recorded 2" in report.problems


def test_the_register_changes_only_when_the_damage_does(setup):
    """A second verification of the same damage changes nothing; new damage does."""
    engine, sql, tampered, _ = setup
    _move_due_date(sql, tampered)
    with engine._uow() as uow:  # the register's own answer
        first = rrm.Damage(
            case_id=tampered.case_id,
            found_at=START,
            field="f",
            problems=("p",),
            fingerprint="a" * 64,
        )
        assert uow.cases.record_damage(first) is True
        assert uow.cases.record_damage(first) is False
        changed = rrm.Damage(
            case_id=tampered.case_id,
            found_at=START,
            field="f",
            problems=("q",),
            fingerprint="b" * 64,
        )
        assert uow.cases.record_damage(changed) is True
        assert uow.cases.clear_damage(tampered.case_id) is True
        assert uow.cases.clear_damage(tampered.case_id) is False
        uow.commit()


def test_a_case_shown_whole_is_replayed_again_once_a_row_changes(setup):
    """Reads remember a whole case by its rows: an edit after a read is still named."""
    engine, sql, tampered, _ = setup
    assert engine.get(tampered.case_id, verified=True).case_id == tampered.case_id
    assert engine.record(tampered.case_id).chain.rows_checked
    _move_due_date(sql, tampered)

    with pytest.raises(rrm.CaseDamaged, match="due_date"):
        engine.get(tampered.case_id, verified=True)
    with pytest.raises(rrm.CaseDamaged, match="due_date"):
        engine.record(tampered.case_id)
