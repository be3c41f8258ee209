"""The engine's contract, run on SQLite and PostgreSQL: atomic fires, typed errors, queries."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta, timezone

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


class TestHardening:
    """Regressions found by review: each wrong input is refused and writes nothing."""

    @pytest.mark.parametrize(
        ("kw", "field"),
        [
            ({"reason": 12345}, "reason"),
            ({"reason": None}, "reason"),
            ({"reason": "a\x00b"}, "reason"),
            ({"actor": "\ud800"}, "actor"),
            ({"payload": {"note": {1: "a", "b": 2}}}, "payload"),
            ({"payload": {"note": "\ud800"}}, "payload"),
            ({"payload": {"note": float("nan")}}, "payload"),
            ({"at": "2025-01-07"}, "at"),
            ({"at": datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5)))}, "at"),
            ({"expected_version": True}, "expected_version"),
        ],
    )
    def test_bad_fire_fields(self, engine, clock, kw, field):
        """Wrongly typed fields of a fire are refused by name, and nothing is written."""
        case = engine.open_case(open_cmd())
        before = snapshot(engine, case)
        clock.advance(timedelta(hours=1))
        base = {
            "case_id": case.case_id,
            "event": "respondent_agrees",
            "actor": "officer:x",
            "role": "respondent",
        }
        base.update(kw)
        with pytest.raises(rrm.InvalidInput) as info:
            engine.fire(rrm.FireEvent(**base))
        assert info.value.field == field
        assert snapshot(engine, case) == before

    @pytest.mark.parametrize(
        "change",
        [
            {"officers": ("bob",)},
            {"petitioners": ("Juan",)},
            {
                "officers": (
                    rrm.Officer(officer_id="a", role="ustr"),
                    rrm.Officer(officer_id="a", role="ustr"),
                )
            },
            {"officers": (rrm.Officer(officer_id="a", role="ustr", name=None),)},
            {"officers": (rrm.Officer(officer_id="a", role="ustr", language="de"),)},
            {
                "officers": (
                    rrm.Officer(officer_id="a", role="ustr", timezone="Mars/Base"),
                )
            },
            {"officers": (rrm.Officer(officer_id="a", role=["ustr"]),)},
            {"petitioners": (rrm.Petitioner(name="x", contact=None),)},
            {"initiation": ["request"]},
            {
                "claim": rrm.Claim(
                    basis="annex_23a_legislation",
                    sector_category="mining",
                    alleged_conduct_from="2024-01-01",
                )
            },
            {
                "facility": rrm.Facility(
                    facility_id="X",
                    name="X",
                    owner="O",
                    country=rrm.Party.MX,
                    city=None,
                )
            },
            {"reason": 7},
        ],
        ids=[
            "officer-type",
            "petitioner-type",
            "duplicate-officer",
            "officer-none",
            "language",
            "timezone",
            "role-list",
            "contact-none",
            "initiation-list",
            "conduct-date-text",
            "city-none",
            "reason-number",
        ],
    )
    def test_bad_open_fields(self, engine, change):
        """Malformed parts of a new case are refused with InvalidInput, and nothing is written."""
        with pytest.raises(rrm.InvalidInput):
            engine.open_case(open_cmd(**change))
        assert engine.find() == []

    def test_non_utc_clock_keeps_the_chain(self, engine, clock):
        """A host clock in another zone still yields a verifiable chain."""
        from zoneinfo import ZoneInfo

        class ZonedClock:
            def now(self):
                return clock.now().astimezone(ZoneInfo("America/New_York"))

        engine.clock = ZonedClock()
        case = engine.open_case(open_cmd())
        clock.advance(timedelta(hours=1))
        engine.fire(fire(case, "respondent_agrees", "respondent"))
        assert engine.verify(case.case_id).ok

    def test_paused_deadline_cannot_lapse(self, engine, clock):
        """While the answer deadline is paused, its lapse cannot be recorded."""
        case = engine.open_case(open_cmd())
        clock.advance(timedelta(days=2))
        engine.pause(
            rrm.PauseDeadline(
                case_id=case.case_id,
                key="respondent_answer",
                actor="a",
                role="ustr",
                reason="closed",
            )
        )
        clock.advance(timedelta(days=12))
        with pytest.raises(rrm.GuardRejected, match="paused"):
            engine.fire(fire(case, "respondent_answer_lapsed", "system"))

    def test_overdue_at_the_instant_of_lapse(self, engine, clock):
        """A deadline is overdue from the very instant it lapses."""
        case = engine.open_case(open_cmd())
        clock.set(case.open_deadlines["respondent_answer"].due_at)
        assert [d.key for d in engine.overdue()] == ["respondent_answer"]

    def test_due_across_a_daylight_saving_change(self, engine, clock):
        """due(N) finds a deadline N local days ahead even across a 25-hour day."""
        from zoneinfo import ZoneInfo

        ny = ZoneInfo("America/New_York")
        clock.set(datetime(2025, 10, 1, 12, tzinfo=UTC))
        engine.open_case(open_cmd(initiation="petition", role="dol"))
        # 30 days after 2025-10-01 is 2025-10-31; DST ends on 2025-11-02.
        clock.set(datetime(2025, 10, 28, 0, 30, tzinfo=ny))
        assert [d.key for d in engine.due(3)] == ["ilc_determination"]

    def test_clock_skew_between_processes(
        self, engine, clock, workflows, db_url, sql_engine_for
    ):
        """A second process whose clock runs slightly behind can still fire."""
        from rrm.testing import FakeClock

        case = engine.open_case(open_cmd())
        clock.advance(timedelta(seconds=1))
        engine.fire(fire(case, "suspend_liquidation"))
        behind = FakeClock(clock.now() - timedelta(milliseconds=200))
        other = rrm.bootstrap(sql_engine_for(db_url), clock=behind, workflows=workflows)
        assert other.fire(fire(case, "respondent_agrees", "respondent")).version == 3

    def test_concurrent_retries_with_one_key(self, engine, clock):
        """Retries racing under one idempotency key all get the case; one entry is written."""
        case = engine.open_case(open_cmd())
        clock.advance(timedelta(hours=1))
        results: list[object] = []

        def retry() -> None:
            try:
                results.append(
                    engine.fire(
                        fire(
                            case,
                            "respondent_agrees",
                            "respondent",
                            idempotency_key="K1",
                        )
                    )
                )
            except rrm.RRMError as exc:
                results.append(exc)

        threads = [threading.Thread(target=retry) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert all(isinstance(r, rrm.Case) for r in results), results
        assert len(engine.history(case.case_id)) == 2

    def test_same_key_different_payload(self, engine, clock):
        """Reusing an idempotency key with another payload is refused."""
        case = engine.open_case(open_cmd())
        clock.advance(timedelta(hours=1))
        engine.fire(
            fire(
                case, "suspend_liquidation", idempotency_key="k", payload={"basis": "a"}
            )
        )
        with pytest.raises(rrm.InvalidInput, match="different command"):
            engine.fire(
                fire(
                    case,
                    "suspend_liquidation",
                    idempotency_key="k",
                    payload={"basis": "b"},
                )
            )

    def test_respondent_cannot_move_its_clock(self, engine):
        """The respondent's role may not extend or pause deadlines."""
        case = engine.open_case(open_cmd())
        with pytest.raises(rrm.RoleNotAllowed):
            engine.extend(
                rrm.ExtendDeadline(
                    case_id=case.case_id,
                    key="respondent_review",
                    new_date=date(2025, 3, 30),
                    actor="mx",
                    role="respondent",
                    reason="we need time",
                )
            )

    def test_lapsed_deadline_cannot_be_paused(self, engine, clock):
        """A lapsed deadline is extended by agreement, never revived by a pause."""
        case = engine.open_case(open_cmd())
        clock.advance(timedelta(days=11))
        with pytest.raises(rrm.InvalidInput, match="lapsed"):
            engine.pause(
                rrm.PauseDeadline(
                    case_id=case.case_id,
                    key="respondent_answer",
                    actor="a",
                    role="ustr",
                    reason="late",
                )
            )

    def test_paused_deadline_cannot_be_extended(self, engine, clock):
        """A paused deadline must be resumed before it is extended."""
        case = engine.open_case(open_cmd())
        clock.advance(timedelta(days=1))
        engine.pause(
            rrm.PauseDeadline(
                case_id=case.case_id,
                key="respondent_review",
                actor="a",
                role="ustr",
                reason="closed",
            )
        )
        with pytest.raises(rrm.InvalidInput, match="resume it first"):
            engine.extend(
                rrm.ExtendDeadline(
                    case_id=case.case_id,
                    key="respondent_review",
                    new_date=date(2025, 3, 30),
                    actor="a",
                    role="ustr",
                    reason="agreed",
                )
            )

    @pytest.mark.parametrize(
        "new_date", ["2025-03-30", datetime(2025, 3, 30, tzinfo=UTC)]
    )
    def test_extension_date_must_be_a_date(self, engine, new_date):
        """An extension's new date must be a calendar date."""
        case = engine.open_case(open_cmd())
        with pytest.raises(rrm.InvalidInput, match="calendar date"):
            engine.extend(
                rrm.ExtendDeadline(
                    case_id=case.case_id,
                    key="respondent_review",
                    new_date=new_date,
                    actor="a",
                    role="ustr",
                    reason="agreed",
                )
            )

    def test_facility_registry_is_not_rewritten(self, engine):
        """A registered facility id cannot silently change owner."""
        engine.open_case(open_cmd("A"))
        other_owner = rrm.Facility(
            facility_id="MX-1", name="Planta", owner="Otro Grupo", country=rrm.Party.MX
        )
        with pytest.raises(rrm.InvalidInput, match="registered with owner"):
            engine.open_case(open_cmd("B", facility=other_owner))

    @pytest.mark.parametrize(
        ("within", "unit"),
        [("3", "calendar"), (3, "calender"), (-1, "calendar"), (4_000_000, "calendar")],
    )
    def test_due_arguments(self, engine, within, unit):
        """due() refuses a non-number, a typo in the unit, or an absurd span."""
        with pytest.raises(rrm.InvalidInput):
            engine.due(within, unit=unit)

    def test_find_limit(self, engine):
        """find() refuses a limit below 1."""
        with pytest.raises(rrm.InvalidInput):
            engine.find(limit=-1)

    def test_driver_errors_hide_parameters(self, db_url, sql_engine_for):
        """RRM's engines never echo statement parameters into errors."""
        assert sql_engine_for(db_url).hide_parameters is True
