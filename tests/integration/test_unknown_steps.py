"""Imports tell facts from silence (issue #11, item 3), on both backends.

A deadline still running past its due date after an import is a step the record
lacks, not a lapse: it is marked unknown with an audited entry, no tick takes its
lapse action, and the officers get one alert (by e-mail, through the outbox) asking
them to record the step or the lapse. A lapse the record holds is replayed as the
sweep wrote it. Dates given to the month only keep their precision and show it.
"""

from __future__ import annotations

import copy
import email
from datetime import UTC, date, datetime, timedelta
from email import policy
from typing import Any

import pytest

import rrm
from rrm.adapters.email import SmtpNotifier, SmtpSettings
from rrm.domain.alerts import AlertKind
from rrm.domain.unknown import unknown_steps
from rrm.service.transfer import export_case, import_cases
from rrm.testing import FakeClock, skip
from rrm.views import case_json, entry_json

FACILITY = {
    "facility_id": "MX-SILAO-T",
    "name": "Planta Silao (test)",
    "owner": "General Motors de México",
    "country": "MX",
    "city": "Silao",
}
OFFICERS = [
    {"officer_id": "ana", "role": "ustr", "email": "ana@ustr.example"},
    {
        "officer_id": "luis",
        "role": "ustr",
        "email": "luis@ustr.example",
        "language": "es",
    },
    {"officer_id": "sam", "role": "supervisor", "email": "sam@ustr.example"},
]


def document(ref: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "format": "rrm-history/1",
        "case": {
            "external_ref": ref,
            "workflow": "usmca-31a",
            "initiation": "request",
            "complainant": "US",
            "respondent": "MX",
            "facility": FACILITY,
            "claim": {
                "basis": "annex_23a_legislation",
                "sector_category": "manufacturing",
            },
            "officers": OFFICERS,
        },
        "events": events,
    }


def ev(at: str, event: str, role: str = "ustr", **payload: Any) -> dict[str, Any]:
    return {
        "at": f"{at}T17:00:00+00:00",
        "event": event,
        "role": role,
        "payload": payload,
    }


# GM Silao as its public record tells it: a request, the suspension of liquidation,
# no answer recorded, Mexico's finding 44 days later, a course of remediation whose
# end date was never published, a milestone and a vote dated to the month only.
SILAO = [
    ev("2021-05-12", "request_for_review"),
    ev("2021-05-13", "suspend_liquidation"),
    ev(
        "2021-06-25",
        "respondent_finds_denial",
        "respondent",
        date_precision="derived",
        note="finding date not public; latest possible",
    ),
    ev(
        "2021-07-08",
        "remediation_plan_agreed",
        milestones=[{"label": "new legitimation vote", "due": "2021-08-20"}],
    ),
    ev(
        "2021-08-31",
        "legitimation_vote",
        on="2021-08-17",
        result="CBA rejected",
        date_precision="month",
    ),
]
# A record whose last step leaves Mexico's 10-day answer clock past due.
SILENT = [
    ev("2025-01-06", "request_for_review"),
    ev("2025-01-07", "suspend_liquidation"),
]


def events_of(engine: rrm.CaseEngine, ref: str) -> list[str]:
    return [e.event for e in engine.history(ref)]


@pytest.fixture(name="silent")
def _silent(engine: rrm.CaseEngine, clock: FakeClock) -> rrm.ImportReport:
    clock.set(datetime(2025, 1, 30, 15, tzinfo=UTC))
    return import_cases(engine, [document("SILENT-1", SILENT)])


class TestUnknownOnImport:
    def test_a_past_due_step_the_record_lacks_is_marked_unknown(self, engine, silent):
        """The answer clock past due after the import is marked unknown with one audited entry."""
        case = engine.get("SILENT-1")
        assert silent.cases[0].unknown_steps == ("respondent_answer",)
        assert case.state == "review_requested"
        assert list(unknown_steps(case)) == ["respondent_answer"]
        mark = engine.history("SILENT-1")[-1]
        assert (mark.event, mark.role, mark.actor) == (
            "step_unknown",
            "system",
            "rrm:import",
        )
        assert mark.payload["deadline"] == "respondent_answer"
        assert (
            mark.payload["due_date"]
            == case.deadline("respondent_answer").due_date.isoformat()
        )
        # Dated at the record's last event, so the step may still be recorded
        # at its real date; recorded at the import.
        assert mark.occurred_at == datetime(2025, 1, 7, 17, tzinfo=UTC)
        assert mark.recorded_at == engine.clock.now()
        assert mark.from_state == mark.to_state == "review_requested"
        assert "deadline_missed" not in events_of(engine, "SILENT-1")
        assert engine.verify("SILENT-1").ok
        review = case.deadline("respondent_review")
        assert review is not None and review.due_at > engine.clock.now()
        assert "respondent_review" not in unknown_steps(case)

    def test_a_tick_takes_no_lapse_action_and_alerts_once(self, engine, clock, silent):
        """Ticks after the import record no lapse, take no action, and queue one alert per officer."""
        before = engine.get("SILENT-1")

        engine.tick()
        skip(engine, clock, to=datetime(2025, 2, 10, tzinfo=UTC))

        after = engine.get("SILENT-1")
        assert after.state == "review_requested"
        assert after.version == before.version
        events = events_of(engine, "SILENT-1")
        assert "deadline_missed" not in events
        assert "respondent_answer_lapsed" not in events
        unknown = [
            a
            for a in engine.alerts(case_id=after.case_id)
            if a.kind is AlertKind.UNKNOWN_STEP
        ]
        assert sorted(a.recipient_id for a in unknown) == ["ana", "luis"]
        assert {a.step for a in unknown} == {"unknown@2025-01-16"}
        assert not [
            a
            for a in engine.alerts(case_id=after.case_id)
            if a.kind is AlertKind.OVERDUE
        ]

    def test_recording_the_step_clears_the_mark(self, engine, clock, silent):
        """The answer recorded at its real date meets the deadline: the mark is gone."""
        engine.tick()
        case = engine.fire(
            rrm.FireEvent(
                case_id="SILENT-1",
                event="respondent_agrees",
                actor="officer:ana",
                role="ustr",
                reason="Mexico's note of 14 January found in the archive",
                at=datetime(2025, 1, 14, 17, tzinfo=UTC),
            )
        )

        assert case.state == "respondent_reviewing"
        assert case.deadline("respondent_answer").status is rrm.DeadlineStatus.MET
        assert unknown_steps(case) == {}
        spec = engine.workflows.get(case.workflow_id, case.workflow_version)
        assert case_json(case, spec, clock.now())["unknown_steps"] == []
        skip(engine, clock, to=datetime(2025, 2, 10, tzinfo=UTC))
        assert "deadline_missed" not in events_of(engine, "SILENT-1")

    def test_recording_the_lapse_action_clears_the_mark(self, engine, silent):
        """An officer who records the lapse action moves the case; the mark is gone."""
        case = engine.fire(
            rrm.FireEvent(
                case_id="SILENT-1",
                event="respondent_answer_lapsed",
                actor="officer:ana",
                role="ustr",
                reason="no answer was ever received",
            )
        )
        assert case.state == "panel_eligible"
        assert unknown_steps(case) == {}

    def test_an_extension_to_a_later_date_ends_the_mark(self, engine, clock, silent):
        """A later date agreed by the Parties runs as any deadline: it lapses when it passes."""
        case = engine.get("SILENT-1")
        engine.extend(
            rrm.ExtendDeadline(
                case_id=case.case_id,
                key="respondent_answer",
                new_date=date(2025, 2, 3),
                reason="agreed by both Parties",
                actor="officer:ana",
                role="ustr",
            )
        )
        assert unknown_steps(engine.get("SILENT-1")) == {}

        skip(engine, clock, to=datetime(2025, 2, 5, tzinfo=UTC))

        assert events_of(engine, "SILENT-1")[-2:] == [
            "deadline_missed",
            "respondent_answer_lapsed",
        ]

    def test_importing_again_changes_nothing(self, engine, silent):
        """The same record imported again is unchanged: no second mark."""
        history = engine.history("SILENT-1")

        report = import_cases(engine, [document("SILENT-1", SILENT)])

        assert [(c.outcome, c.unknown_steps) for c in report.cases] == [
            ("unchanged", ())
        ]
        assert engine.history("SILENT-1") == history

    def test_the_case_shows_the_unknown_step(self, engine, clock, silent):
        """The case document lists the unknown step and flags its deadline."""
        case = engine.get("SILENT-1")
        spec = engine.workflows.get(case.workflow_id, case.workflow_version)
        doc = case_json(case, spec, clock.now())
        assert [u["key"] for u in doc["unknown_steps"]] == ["respondent_answer"]
        flagged = {d["key"]: d["step_unknown"] for d in doc["deadlines"]}
        assert flagged == {"respondent_answer": True, "respondent_review": False}


class TestSilao:
    @pytest.fixture(name="silao")
    def _silao(self, engine, clock):
        clock.set(datetime(2026, 1, 5, tzinfo=UTC))
        return import_cases(engine, [document("SILAO-T", SILAO)])

    def test_no_answer_recorded_is_no_lapse(self, engine, silao):
        """The finding 44 days on met the answer clock late: nothing lapsed, no action taken."""
        case = engine.get("SILAO-T")
        assert case.state == "remediation_in_progress"
        answer = case.deadline("respondent_answer")
        assert answer.status is rrm.DeadlineStatus.MET
        assert answer.lapsed_at is None
        assert answer.closed_at > answer.due_at  # met late, as the record shows
        events = events_of(engine, "SILAO-T")
        assert "deadline_missed" not in events
        assert "respondent_answer_lapsed" not in events

    def test_the_unpublished_end_date_is_unknown_and_flagged(
        self, engine, clock, silao
    ):
        """The plan's end date imports unknown: flagged, no completion clock, shown."""
        case = engine.get("SILAO-T")
        assert case.attributes["remediation_plan"]["due_unknown"] is True
        assert case.deadline("remediation_due") is None
        spec = engine.workflows.get(case.workflow_id, case.workflow_version)
        assert case_json(case, spec, clock.now())["remediation_due_unknown"] is True

    def test_the_missed_milestone_is_unknown_and_no_tick_lapses_it(
        self, engine, clock, silao
    ):
        """The milestone the record never closes is marked unknown; ticks only alert."""
        assert silao.cases[0].unknown_steps == ("remediation_milestone.1",)
        version = engine.get("SILAO-T").version

        skip(engine, clock, by=timedelta(days=30))

        case = engine.get("SILAO-T")
        assert case.version == version
        assert "deadline_missed" not in events_of(engine, "SILAO-T")
        kinds = [a.kind for a in engine.alerts(case_id=case.case_id)]
        assert kinds.count(AlertKind.UNKNOWN_STEP) == 2  # ana and luis, once each
        assert AlertKind.OVERDUE not in kinds

        met = engine.fire(
            rrm.FireEvent(
                case_id="SILAO-T",
                event="milestone_met",
                actor="officer:ana",
                role="ustr",
                payload={"milestone": 1, "date_precision": "approx"},
                at=datetime(2021, 9, 1, 17, tzinfo=UTC),
            )
        )
        assert unknown_steps(met) == {}

    def test_month_precision_is_kept_and_shown(self, engine, silao):
        """The vote dated to the month only keeps its precision, and says so."""
        vote = next(
            e for e in engine.history("SILAO-T") if e.event == "legitimation_vote"
        )
        assert vote.payload["date_precision"] == "month"
        shown = entry_json(vote)["date_precision"]
        assert shown == {
            "precision": "month",
            "field": "on",
            "date": "2021-08",
            "text": "2021-08 (month only)",
        }
        finding = next(
            e for e in engine.history("SILAO-T") if e.event == "respondent_finds_denial"
        )
        assert entry_json(finding)["date_precision"]["text"] == "2021-06-25 (derived)"
        request = engine.history("SILAO-T")[0]
        assert entry_json(request)["date_precision"] is None

    def test_an_export_of_the_marked_case_imports_the_same(
        self, engine, silao, workflows
    ):
        """The marks travel: another installation's import ends in the same state and marks."""
        doc = export_case(engine, "SILAO-T")
        other = rrm.bootstrap(
            "sqlite://",
            clock=FakeClock(engine.clock.now() + timedelta(days=1)),
            workflows=workflows,
            upgrade=True,
        )

        report = import_cases(other, [doc])

        assert report.cases[0].unknown_steps == ()  # carried, not found again
        mine, theirs = engine.get("SILAO-T"), other.get("SILAO-T")
        assert theirs.state == mine.state
        assert list(unknown_steps(theirs)) == list(unknown_steps(mine))
        assert [e.event for e in other.history("SILAO-T")] == events_of(
            engine, "SILAO-T"
        )


class TestRecordedLapses:
    def test_a_recorded_lapse_is_replayed_and_not_taken_twice(self, engine, workflows):
        """A flag-only lapse in the record is replayed as the sweep wrote it; no second lapse."""
        clock = FakeClock(datetime(2025, 1, 6, 18, tzinfo=UTC))
        source = rrm.bootstrap(
            "sqlite://", clock=clock, workflows=workflows, upgrade=True
        )
        import_cases(source, [document("LAPSED-1", SILENT[:1])])
        case = source.fire(
            rrm.FireEvent(
                case_id="LAPSED-1",
                event="respondent_agrees",
                actor="mx",
                role="respondent",
            )
        )
        # Mexico's 45-day review lapses; the case waits in respondent_reviewing
        # for the panel decision, the review lapsing as the sweep records it.
        skip(source, clock, to=datetime(2025, 3, 1, tzinfo=UTC))
        lived = source.get(case.case_id)
        assert "deadline_missed" in events_of(source, "LAPSED-1")
        engine.clock.set(clock.now())

        report = import_cases(engine, [export_case(source, "LAPSED-1")])
        engine.tick()

        assert report.cases[0].unknown_steps == ()
        imported = engine.get("LAPSED-1")
        assert imported.state == lived.state
        assert events_of(engine, "LAPSED-1") == events_of(source, "LAPSED-1")
        assert [(d.key, d.status, d.lapsed_at) for d in imported.deadlines] == [
            (d.key, d.status, d.lapsed_at) for d in lived.deadlines
        ]

    def test_a_lapse_of_no_running_deadline_is_refused(self, engine, clock):
        """A recorded lapse of a deadline the replay has not running is refused, naming it; nothing written."""
        clock.set(datetime(2025, 2, 1, tzinfo=UTC))
        doc = document("BAD-1", copy.deepcopy(SILENT))
        doc["events"].append(
            ev("2025-01-20", "deadline_missed", "system", deadline="panel_composition")
        )

        with pytest.raises(rrm.InvalidInput) as caught:
            import_cases(engine, [doc], sources=["bad.json"])

        assert caught.value.field == "events[2]"
        assert "panel_composition" in str(caught.value)
        assert engine.find() == []

    def test_a_lapse_dated_before_the_deadline_ran_out_is_refused(self, engine, clock):
        """A recorded lapse dated before the due date's end is refused; nothing written."""
        clock.set(datetime(2025, 2, 1, tzinfo=UTC))
        doc = document("BAD-2", copy.deepcopy(SILENT))
        doc["events"].append(
            ev("2025-01-10", "deadline_missed", "system", deadline="respondent_answer")
        )

        with pytest.raises(rrm.InvalidInput) as caught:
            import_cases(engine, [doc])

        assert caught.value.field == "events[2]"
        assert "before 'respondent_answer' ran out" in str(caught.value)
        assert engine.find() == []


class TestAlertEmail:
    def test_the_officers_get_one_e_mail_each(
        self, db_url, sql_engine_for, clock, workflows, smtp_server
    ):
        """The unknown-step alert reaches each officer by e-mail, once, in their language."""
        notifier = SmtpNotifier(
            SmtpSettings(
                host="127.0.0.1",
                port=smtp_server.port,
                security="none",
                sender_address="rrm@agency.example",
                timeout=5,
            )
        )
        engine = rrm.bootstrap(
            sql_engine_for(db_url),
            clock=clock,
            workflows=workflows,
            upgrade=True,
            notifier=notifier,
        )
        clock.set(datetime(2025, 1, 30, 15, tzinfo=UTC))
        import_cases(engine, [document("MAIL-1", SILENT)])

        skip(engine, clock, by=timedelta(days=5))

        sent = [
            email.message_from_bytes(e.content, policy=policy.default)
            for e in smtp_server.handler.envelopes
        ]
        assert sorted(m["To"].addresses[0].addr_spec for m in sent) == [
            "ana@ustr.example",
            "luis@ustr.example",
        ]
        subjects = {m["To"].addresses[0].username: m["Subject"] for m in sent}
        assert "Step missing from the imported record" in subjects["ana"]
        assert "Paso ausente del expediente importado" in subjects["luis"]
        english = next(m for m in sent if m["To"].addresses[0].username == "ana")
        body = english.get_body(preferencelist=("plain",)).get_content()
        assert "record it with its real date" in body
        assert not list(english.iter_attachments())  # no calendar entry
