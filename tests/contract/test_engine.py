"""The engine's contract, run on SQLite and PostgreSQL: atomic fires, typed errors, queries."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa
from structlog.testing import capture_logs

import rrm
from rrm.testing import RecordingSubscriber

FACILITY = rrm.Facility(
    facility_id="MX-1",
    name="Planta",
    owner="Grupo",
    country=rrm.Party.MX,
    sector="auto parts",
)
CLAIM = rrm.Claim(basis="annex_23a_legislation", sector_category="manufacturing")
SECRET = "Maria Confidencial Lopez"


def open_cmd(ref: str = "USTR-2025-001", **kw) -> rrm.OpenCase:
    base = {
        "workflow": "usmca-31a",
        "initiation": "request",
        "complainant": "US",
        "respondent": "MX",
        "facility": FACILITY,
        "claim": CLAIM,
        "external_ref": ref,
        "actor": "officer:ana",
        "role": "ustr",
        "petitioners": (
            rrm.Petitioner(name=SECRET, confidential=True),
            rrm.Petitioner(name="Sindicato Abierto"),
        ),
        "officers": (
            rrm.Officer(officer_id="ana", role="ustr", email="ana@example.gov"),
        ),
    }
    base.update(kw)
    return rrm.OpenCase(**base)


def fire(case: rrm.Case, event: str, role: str = "ustr", **kw) -> rrm.FireEvent:
    return rrm.FireEvent(
        case_id=case.case_id, event=event, actor=f"officer:{role}", role=role, **kw
    )


def snapshot(engine: rrm.CaseEngine, case: rrm.Case) -> tuple:
    current = engine.get(case.case_id)
    return (
        current.version,
        current.state,
        len(engine.history(case.case_id)),
        current.deadlines,
    )


class TestOpen:
    def test_open_records_first_entry_and_deadlines(self, engine):
        """Opening a case stores it at version 1 with one history entry and its clocks."""
        case = engine.open_case(open_cmd())
        assert (case.version, case.state) == (1, "review_requested")
        assert [e.event for e in engine.history(case.case_id)] == ["request_for_review"]
        assert set(case.open_deadlines) == {"respondent_answer", "respondent_review"}
        assert engine.get("USTR-2025-001").case_id == case.case_id

    @pytest.mark.parametrize(
        ("change", "error"),
        [
            ({"workflow": "usmca-99"}, rrm.WorkflowNotFound),
            ({"complainant": "FR"}, rrm.InvalidInput),
            ({"initiation": "petition", "role": "ustr"}, rrm.RoleNotAllowed),
            ({"initiation": "telepathy"}, rrm.InvalidInput),
            ({"external_ref": "  "}, rrm.InvalidInput),
            (
                {
                    "facility": rrm.Facility(
                        facility_id="X", name="X", owner="", country=rrm.Party.MX
                    )
                },
                rrm.InvalidInput,
            ),
            ({"petitioners": (rrm.Petitioner(name=""),)}, rrm.InvalidInput),
            (
                {"officers": (rrm.Officer(officer_id="x", role="pope"),)},
                rrm.InvalidInput,
            ),
            (
                {"claim": rrm.Claim(basis="vibes", sector_category="mining")},
                rrm.InvalidInput,
            ),
            (
                {
                    "claim": rrm.Claim(
                        basis="annex_23a_legislation", sector_category="agriculture"
                    )
                },
                rrm.GuardRejected,
            ),
            ({"at": datetime(2025, 1, 1, 12)}, rrm.InvalidInput),
            ({"at": datetime(2030, 1, 1, tzinfo=UTC)}, rrm.InvalidInput),
        ],
        ids=[
            "workflow",
            "party",
            "role",
            "initiation",
            "ref",
            "facility",
            "petitioner",
            "officer-role",
            "claim-basis",
            "not-covered",
            "naive-at",
            "future-at",
        ],
    )
    def test_bad_open_raises_typed_error_and_writes_nothing(
        self, engine, change, error
    ):
        """Every malformed open is refused with a typed error and leaves no case behind."""
        with pytest.raises(error) as info:
            engine.open_case(open_cmd(**change))
        assert str(info.value)
        assert engine.find() == []

    def test_duplicate_reference_is_refused(self, engine):
        """A second case with the same external reference is refused."""
        engine.open_case(open_cmd())
        with pytest.raises(rrm.CaseAlreadyExists):
            engine.open_case(open_cmd())
        assert len(engine.find()) == 1


class TestFire:
    @pytest.mark.parametrize(
        ("event", "role", "kw", "error"),
        [
            ("panel_finds_denial", "panel", {}, rrm.TransitionNotAllowed),
            ("respondent_agrees", "ilc", {}, rrm.RoleNotAllowed),
            ("respondent_answer_lapsed", "ustr", {}, rrm.GuardRejected),
            (
                "respondent_agrees",
                "respondent",
                {"expected_version": 7},
                rrm.ConcurrencyConflict,
            ),
            (
                "respondent_agrees",
                "respondent",
                {"at": datetime(2025, 1, 7, 9)},
                rrm.InvalidInput,
            ),
            (
                "respondent_agrees",
                "respondent",
                {"at": datetime(2024, 12, 1, tzinfo=UTC)},
                rrm.InvalidInput,
            ),
            (
                "respondent_agrees",
                "respondent",
                {"payload": {"bogus": 1}},
                rrm.InvalidInput,
            ),
            (
                "suspend_liquidation",
                "ustr",
                {"payload": {"basis": 42}},
                rrm.InvalidInput,
            ),
            ("respondent_agrees", "respondent", {"actor": ""}, rrm.InvalidInput),
        ],
        ids=[
            "unknown-in-state",
            "role",
            "guard",
            "stale",
            "naive",
            "before-last",
            "unknown-field",
            "wrong-type",
            "no-actor",
        ],
    )
    def test_bad_fire_raises_typed_error_and_writes_nothing(
        self, engine, clock, event, role, kw, error
    ):
        """Every refused event leaves version, state, history and deadlines untouched."""
        case = engine.open_case(open_cmd())
        before = snapshot(engine, case)
        clock.advance(timedelta(days=1))
        cmd = fire(case, event, role, **{k: v for k, v in kw.items() if k != "actor"})
        if "actor" in kw:
            cmd = rrm.FireEvent(case_id=case.case_id, event=event, actor="", role=role)
        with pytest.raises(error):
            engine.fire(cmd)
        assert snapshot(engine, case) == before

    def test_closed_case_accepts_no_event(self, engine, clock):
        """A case in a terminal state refuses further events."""
        case = engine.open_case(open_cmd())
        case = engine.fire(fire(case, "request_withdrawn"))
        with pytest.raises(rrm.TransitionNotAllowed, match="closed"):
            engine.fire(fire(case, "respondent_agrees", "respondent"))

    def test_unknown_case(self, engine):
        """Firing on a case that does not exist raises CaseNotFound."""
        with pytest.raises(rrm.CaseNotFound):
            engine.fire(
                rrm.FireEvent(case_id="nope", event="x", actor="a", role="ustr")
            )

    def test_idempotency_key_makes_a_retry_harmless(self, engine, clock):
        """The same idempotency key fired twice records one entry."""
        case = engine.open_case(open_cmd())
        clock.advance(timedelta(hours=2))
        first = engine.fire(
            fire(case, "respondent_agrees", "respondent", idempotency_key="k1")
        )
        again = engine.fire(
            fire(case, "respondent_agrees", "respondent", idempotency_key="k1")
        )
        assert first.version == again.version == 2
        assert len(engine.history(case.case_id)) == 2
        with pytest.raises(rrm.InvalidInput, match="already used"):
            engine.fire(
                fire(
                    case, "respondent_finds_denial", "respondent", idempotency_key="k1"
                )
            )

    def test_past_event_anchors_deadlines_at_its_time(self, engine, clock):
        """An event recorded with an earlier `at` keeps that time and counts from it."""
        at = datetime(2023, 6, 16, 17, tzinfo=UTC)
        case = engine.open_case(open_cmd(at=at))
        assert engine.history(case.case_id)[0].occurred_at == at
        assert case.open_deadlines["respondent_review"].due_date == date(2023, 7, 31)

    def test_version_equals_history_length_and_chain_verifies(self, engine, clock):
        """After several events the version equals the history length and the chain is intact."""
        case = engine.open_case(open_cmd())
        for event, role in [
            ("suspend_liquidation", "ustr"),
            ("respondent_agrees", "respondent"),
            ("respondent_finds_denial", "respondent"),
        ]:
            clock.advance(timedelta(days=2))
            case = engine.fire(fire(case, event, role))
        assert case.version == len(engine.history(case.case_id)) == 4
        assert engine.verify(case.case_id).ok

    def test_concurrent_officers_one_wins(self, engine, clock):
        """Two officers firing against the same version: one commits, the other gets a conflict."""
        case = engine.open_case(open_cmd())
        clock.advance(timedelta(hours=1))
        results: list[object] = []

        def attempt(event: str) -> None:
            try:
                results.append(
                    engine.fire(fire(case, event, "respondent", expected_version=1))
                )
            except rrm.RRMError as exc:
                results.append(exc)

        threads = [
            threading.Thread(target=attempt, args=(e,))
            for e in ("respondent_agrees", "respondent_declines")
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(type(r).__name__ for r in results) == [
            "Case",
            "ConcurrencyConflict",
        ]
        assert len(engine.history(case.case_id)) == 2


class TestTamperAndLogs:
    def test_tampered_history_is_detected(self, engine, clock, db_url, sql_engine_for):
        """Editing a stored history row breaks the chain at that entry."""
        case = engine.open_case(open_cmd())
        clock.advance(timedelta(days=1))
        engine.fire(fire(case, "respondent_agrees", "respondent"))
        with sql_engine_for(db_url).begin() as conn:
            conn.execute(
                sa.text("UPDATE rrm_case_event SET actor = 'mallory' WHERE seq = 1")
            )
        assert engine.verify(case.case_id).first_broken_seq == 1

    def test_logs_carry_ids_never_petitioners(self, engine, clock):
        """Log events name the case and event, never a petitioner."""
        with capture_logs() as logs:
            case = engine.open_case(open_cmd())
            clock.advance(timedelta(days=1))
            engine.fire(fire(case, "respondent_agrees", "respondent"))
        assert {"case_opened", "transition_fired", "deadline_opened"} <= {
            e["event"] for e in logs
        }
        assert all(e.get("case_id") == case.case_id for e in logs)
        assert SECRET not in repr(logs)
        assert "Sindicato" not in repr(logs)


class TestSubscribers:
    def test_subscribers_receive_events_after_commit(self, engine, clock):
        """Subscribers see the opening, transitions and deadline changes, in order."""
        seen = RecordingSubscriber()
        engine.subscribe(seen)
        case = engine.open_case(open_cmd())
        clock.advance(timedelta(days=1))
        engine.fire(fire(case, "respondent_agrees", "respondent"))
        kinds = [type(e).__name__ for e in seen.events]
        assert kinds[0] == "CaseOpened"
        assert "TransitionFired" in kinds
        met = [
            e
            for e in seen.events
            if isinstance(e, rrm.DeadlineChanged) and e.change == "met"
        ]
        assert [e.key for e in met] == ["respondent_answer"]

    def test_failing_subscriber_does_not_undo_commit(self, engine):
        """A subscriber that raises cannot undo the committed change."""

        def boom(event: object) -> None:
            raise RuntimeError("host bug")

        engine.subscribe(boom)
        case = engine.open_case(open_cmd())
        assert engine.get(case.case_id).version == 1


class TestQueries:
    def test_find_by_state_workflow_facility_officer(self, engine, clock):
        """Cases can be listed by state, workflow, facility and assigned officer."""
        a = engine.open_case(open_cmd("A"))
        engine.open_case(open_cmd("B", officers=()))
        clock.advance(timedelta(days=1))
        engine.fire(fire(a, "respondent_agrees", "respondent"))
        assert [c.external_ref for c in engine.find(state="respondent_reviewing")] == [
            "A"
        ]
        assert len(engine.find(workflow="usmca-31a")) == 2
        assert len(engine.find(facility_id="MX-1")) == 2
        assert [c.external_ref for c in engine.find(officer_id="ana")] == ["A"]

    def test_due_within_business_days_and_overdue(self, engine, clock):
        """Deadlines due within N days are found; once past, they are overdue."""
        engine.open_case(open_cmd())
        assert [d.key for d in engine.due(10)] == ["respondent_answer"]
        assert engine.due(5, unit="business") == []
        assert {d.key for d in engine.due(45)} == {
            "respondent_answer",
            "respondent_review",
        }
        clock.advance(timedelta(days=11))
        assert [d.key for d in engine.overdue()] == ["respondent_answer"]
        assert [d.key for d in engine.overdue(officer_id="ana")] == [
            "respondent_answer"
        ]
        assert engine.overdue(officer_id="nobody") == []

    def test_assign_officers(self, engine, clock):
        """Assigning an officer is an audited change and makes the case findable by them."""
        case = engine.open_case(open_cmd(officers=()))
        case = engine.assign(
            rrm.AssignOfficers(
                case_id=case.case_id,
                actor="officer:lead",
                role="ustr",
                assign=(rrm.Officer(officer_id="ben", role="respondent"),),
            )
        )
        assert [o.officer_id for o in case.officers] == ["ben"]
        assert engine.history(case.case_id)[-1].event == "officers_assigned"
        assert [c.case_id for c in engine.find(officer_id="ben")] == [case.case_id]


class TestTolling:
    def test_pause_and_resume_move_the_due_date(self, engine, clock):
        """A deadline paused for 4 days falls due 4 calendar days later, with the reason audited."""
        case = engine.open_case(open_cmd())
        due = case.open_deadlines["respondent_review"].due_date
        clock.advance(timedelta(days=2))
        common = {
            "case_id": case.case_id,
            "key": "respondent_review",
            "actor": "officer:ana",
            "role": "ustr",
            "reason": "Secretariat closed",
        }
        paused = engine.pause(rrm.PauseDeadline(**common))
        assert (
            paused.open_deadlines["respondent_review"].status
            is rrm.DeadlineStatus.PAUSED
        )
        clock.advance(timedelta(days=4))
        resumed = engine.resume(rrm.ResumeDeadline(**common))
        moved = resumed.open_deadlines["respondent_review"]
        assert moved.due_date == due + timedelta(days=4)
        assert "paused" in moved.explanation
        events = [e.event for e in engine.history(case.case_id)]
        assert events[-2:] == ["deadline_paused", "deadline_resumed"]

    def test_extension_never_shortens_and_needs_a_reason(self, engine):
        """An extension to an earlier date, or without a reason, is refused."""
        case = engine.open_case(open_cmd())
        with pytest.raises(rrm.InvalidInput):
            engine.extend(
                rrm.ExtendDeadline(
                    case_id=case.case_id,
                    key="respondent_review",
                    new_date=date(2025, 1, 10),
                    actor="a",
                    role="ustr",
                    reason="x",
                )
            )
        with pytest.raises(rrm.InvalidInput):
            engine.extend(
                rrm.ExtendDeadline(
                    case_id=case.case_id,
                    key="respondent_review",
                    new_date=date(2025, 3, 30),
                    actor="a",
                    role="ustr",
                    reason=" ",
                )
            )
        with pytest.raises(rrm.DeadlineNotFound):
            engine.extend(
                rrm.ExtendDeadline(
                    case_id=case.case_id,
                    key="nope",
                    new_date=date(2025, 3, 30),
                    actor="a",
                    role="ustr",
                    reason="x",
                )
            )
        assert engine.get(case.case_id).version == 1
