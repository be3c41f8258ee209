"""Workflow v2 of usmca-31a-mx and usmca-31b (issue #11), driven by the fake clock.

Every scenario runs on both backends (the ``engine`` fixture is parametrized over
SQLite and PostgreSQL) and, through the ``flow`` fixture, on each direction the two
workflows cover: Mexico against a facility in the United States (usmca-31a-mx),
Canada against a facility in Mexico and Mexico against a facility in Canada
(usmca-31b). When a scenario ends, every case it wrote must still have a valid hash
chain (autouse fixture below).
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

import rrm
from rrm import DeadlineStatus

V2 = ("usmca-31a-mx", "usmca-31b")


@dataclasses.dataclass(frozen=True)
class Flow:
    """One direction of one workflow: who opens, against whom, with which claim."""

    workflow: str
    complainant: str
    respondent: str
    actor: str  # the complainant Party's role in the workflow
    facility: rrm.Facility
    claim: rrm.Claim
    grounds: str  # an out-of-scope ground of this workflow
    foreign_grounds: str  # a ground only the other workflow knows

    def open(self, open_case: Any, **kw: Any) -> Any:
        return open_case(
            self.workflow,
            role=self.actor,
            complainant=self.complainant,
            respondent=self.respondent,
            facility=self.facility,
            claim=self.claim,
            **kw,
        )


@pytest.fixture(name="flow", params=["31a-mx MX-US", "31b CA-MX", "31b MX-CA"])
def _flow(request: pytest.FixtureRequest, samples: Any) -> Flow:
    if request.param == "31a-mx MX-US":
        return Flow(
            "usmca-31a-mx",
            "MX",
            "US",
            "se",
            samples.FACILITY_US,
            samples.NLRB_CLAIM,
            "not_enforced_nlrb_order",
            "not_annex_legislation",
        )
    if request.param == "31b CA-MX":
        return Flow(
            "usmca-31b",
            "CA",
            "MX",
            "complainant",
            samples.FACILITY_MX,
            samples.MX_CLAIM,
            "not_annex_legislation",
            "not_enforced_nlrb_order",
        )
    return Flow(
        "usmca-31b",
        "MX",
        "CA",
        "complainant",
        samples.FACILITY_CA,
        rrm.Claim(basis="canadian_legislation", sector_category="manufacturing"),
        "not_annex_legislation",
        "not_enforced_nlrb_order",
    )


@pytest.fixture(autouse=True)
def _every_chain_valid(engine):
    """After each scenario, every case it wrote has an intact hash chain."""
    yield
    for case in engine.find(limit=1000):
        assert engine.verify(case.case_id).ok, case.external_ref


def outcome(engine: rrm.CaseEngine, case: rrm.Case) -> str | None:
    spec = engine.workflows.get(case.workflow_id, case.workflow_version)
    return spec.states[case.state].outcome


def refresh(steps):
    steps.case = steps.engine.get(steps.case.case_id)
    return steps


def delayed(flow: Flow, open_case: Any, **kw: Any):
    """A case whose complainant delays final settlement of customs accounts at once."""
    steps = flow.open(open_case, **kw)
    steps.fire("suspend_liquidation", flow.actor, after=timedelta(0))
    return steps


def last_period(steps) -> dict[str, Any]:
    return steps.case.attributes["liquidation"]["periods"][-1]


def claim(open_case, samples, **payload):
    """Canada's NAO receives a claim from a union established in Canada."""
    return open_case(
        "usmca-31b",
        "claim",
        role="nao",
        complainant="CA",
        respondent="MX",
        facility=samples.FACILITY_MX,
        claim=samples.MX_CLAIM,
        payload={"submitter_category": "organization_in_canada", **payload},
    )


# ------------------------------------------------------------------ definitions


class TestDefinitions:
    def test_new_cases_open_on_v2(self, open_case, flow):
        """A new case of either workflow, in each direction, opens on version 2."""
        assert flow.open(open_case).case.workflow_version == 2

    @pytest.mark.parametrize("workflow_id", V2)
    def test_v1_states_and_events_kept(self, workflows, workflow_id):
        """Every v1 state but withdrawn_settled, and every v1 event, exists in v2."""
        v1, v2 = workflows.get(workflow_id, 1), workflows.get(workflow_id, 2)
        assert set(v1.states) - set(v2.states) == {"withdrawn_settled"}
        for name in set(v1.states) & set(v2.states):
            assert v1.states[name].terminal == v2.states[name].terminal, name
        v1_events = {t.event for t in v1.transitions}
        assert v1_events <= {t.event for t in v2.transitions}
        (settled,) = {t.dest for t in v2.transitions if t.event == "settled"}
        assert settled == "closed_by_agreement"

    @pytest.mark.parametrize("workflow_id", V2)
    def test_no_number_or_level_changed(self, workflows, workflow_id):
        """v2 keeps every v1 clock's number, unit and evidence level, except the one
        a secondary source now quotes (panel confirmation, R -> S; no number changed)."""
        v1, v2 = workflows.get(workflow_id, 1), workflows.get(workflow_id, 2)
        raised = {"usmca-31a-mx": {"panel_confirmation"}}.get(workflow_id, set())
        for key, old in v1.deadlines.items():
            new = v2.deadlines[key]
            assert (new.days, new.counting, new.citation) == (
                old.days,
                old.counting,
                old.citation,
            ), key
            if key in raised:
                assert (old.evidence.value, new.evidence.value) == ("R", "S"), key
            else:
                assert new.evidence == old.evidence, key
        assert set(v2.deadlines) - set(v1.deadlines) == {"company_commitments_due"}
        assert v2.parameters == v1.parameters

    @pytest.mark.parametrize("workflow_id", V2)
    def test_no_settlement_condition_without_source(self, workflows, workflow_id):
        """No v2 step resumes settlement under a condition value of its own, and no
        step closes a case where settlement may be delayed without asking the basis."""
        spec = workflows.get(workflow_id, 2)
        for t in spec.transitions:
            assert not any(e.startswith("liquidation_resumed:") for e in t.effects), (
                t.event
            )
            assert "condition" not in {f.name for f in t.payload}, t.event
        delayed_in = {
            s
            for t in spec.transitions
            if t.event == "suspend_liquidation"
            for s in t.sources
        }
        grown = True
        while grown:  # states reachable while settlement may still be delayed
            grown = False
            for t in spec.transitions:
                if (
                    set(t.sources) & delayed_in
                    and not spec.states[t.dest].terminal
                    and t.dest not in delayed_in
                ):
                    delayed_in.add(t.dest)
                    grown = True
        for t in spec.transitions:
            if spec.states[t.dest].terminal and set(t.sources) & delayed_in:
                assert "liquidation_basis_given" in t.guards, t.event


# ------------------------------------------------------------------ the real paths


class TestRemediatedDuringReview:
    def test_remediated_in_review_closes_remediated(self, open_case, engine, flow):
        """The respondent finds and remedies a denial in its own review; no course of remediation."""
        steps = delayed(flow, open_case)
        steps.fire("respondent_agrees", "respondent", after=timedelta(days=4))
        steps.fire(
            "respondent_reports_remediated",
            "respondent",
            after=timedelta(days=30),
            actions="dismissed workers reinstated with back pay",
        )
        assert steps.state == "review_remediation_reported"
        assert steps.case.deadline("respondent_review").status is DeadlineStatus.MET
        assert "remediation_plan" not in steps.case.attributes
        with pytest.raises(rrm.GuardRejected, match="liquidation is suspended"):
            steps.fire("remediation_in_review_verified", flow.actor)
        steps.fire(
            "remediation_in_review_verified",
            flow.actor,
            basis="remediation verified; customs notified",
        )
        assert steps.state == "closed_remediated"
        assert outcome(engine, steps.case) == "remediated"
        assert last_period(steps)["condition"] is None
        assert last_period(steps)["resumption_basis"] == (
            "remediation verified; customs notified"
        )
        assert steps.case.open_deadlines == {}

    def test_remediated_in_review_rejected(self, open_case, flow):
        """The complainant is not satisfied; a panel may follow."""
        steps = flow.open(open_case)
        steps.fire("respondent_reports_remediated", "respondent")
        assert steps.case.deadline("respondent_answer").status is DeadlineStatus.MET
        steps.fire("remediation_in_review_rejected", flow.actor)
        assert steps.state == "panel_eligible"
        assert steps.case.attributes["flags"] == {
            "panel_eligible_reason": "not_satisfied"
        }


class TestLateRefusal:
    def test_tick_takes_lapse_then_late_refusal_recorded(
        self, open_case, engine, clock, flow
    ):
        """The engine moves the case on after 10 days; the respondent's refusal comes later."""
        steps = flow.open(open_case)
        clock.advance(timedelta(days=5))
        assert engine.tick().advanced == 0
        assert refresh(steps).state == "review_requested"
        clock.advance(timedelta(days=6))  # past 2025-01-16, the 10th day
        report = engine.tick()
        assert (report.lapsed, report.advanced) == (1, 1)
        refresh(steps)
        assert steps.state == "panel_eligible"
        assert steps.case.attributes["flags"] == {
            "panel_eligible_reason": "no_response"
        }
        lapse = engine.history(steps.case.case_id)[-1]
        assert (lapse.event, lapse.role) == ("respondent_answer_lapsed", "system")
        assert steps.case.deadline("respondent_answer").lapsed_at is not None
        steps.fire("respondent_declines_late", "respondent", after=timedelta(days=3))
        assert steps.state == "panel_eligible"
        assert steps.case.attributes["flags"] == {
            "panel_eligible_reason": "declined",
            "late_refusal": "yes",
        }
        assert engine.history(steps.case.case_id)[-1].event == (
            "respondent_declines_late"
        )
        steps.fire("panel_requested", flow.actor)
        assert steps.state == "panel_composition"

    def test_refusal_within_ten_days_is_not_late(self, open_case, flow):
        """Before the lapse a refusal is an ordinary one."""
        steps = flow.open(open_case)
        with pytest.raises(rrm.TransitionNotAllowed):
            steps.fire("respondent_declines_late", "respondent")
        steps.fire("respondent_declines", "respondent")
        assert steps.case.attributes["flags"] == {"panel_eligible_reason": "declined"}


class TestConsultationsAndAgreement:
    def test_consultations_fail_then_panel(self, open_case, flow):
        """The respondent declines, consultations fail, a panel may be requested."""
        steps = flow.open(open_case)
        steps.fire("respondent_declines", "respondent")
        steps.fire("consultations_opened", "respondent", after=timedelta(days=7))
        assert steps.state == "consultations"
        steps.fire("consultations_failed", flow.actor, after=timedelta(days=40))
        assert steps.state == "panel_eligible"
        assert steps.case.attributes["flags"]["panel_eligible_reason"] == (
            "consultations_failed"
        )
        steps.fire("panel_requested", flow.actor)
        assert steps.state == "panel_composition"

    def test_agreement_closes_without_panel(self, open_case, engine, flow):
        """The Parties close the matter by a written agreement after consultations."""
        steps = flow.open(open_case)
        steps.fire("respondent_declines", "respondent")
        steps.fire("consultations_opened", flow.actor)
        with pytest.raises(rrm.InvalidInput, match="respondent_agreement"):
            steps.fire("agreement_reached", flow.actor)
        with pytest.raises(rrm.RoleNotAllowed):
            steps.fire("agreement_reached", "respondent", respondent_agreement="x")
        steps.fire(
            "agreement_reached",
            flow.actor,
            respondent_agreement="exchange of notes of 2025-02-14",
        )
        assert steps.state == "closed_by_agreement"
        assert outcome(engine, steps.case) == "closed by agreement"
        assert steps.case.attributes["agreement"]["respondent_agreement"] == (
            "exchange of notes of 2025-02-14"
        )

    def test_v1_settled_now_closes_by_agreement(self, open_case, engine, flow):
        """v1's 'settled' keeps its name; in v2 it ends closed by agreement, not withdrawn_settled."""
        steps = flow.open(open_case)
        steps.fire("respondent_declines", "respondent")
        steps.fire("settled", flow.actor, respondent_agreement="note of 2025-02-01")
        assert steps.state == "closed_by_agreement"
        old = flow.open(open_case, workflow_version=1)
        old.fire("respondent_declines", "respondent")
        old.fire("settled", flow.actor, respondent_agreement="note of 2025-02-01")
        assert old.state == "withdrawn_settled"


class TestCompanyAgreement:
    def _agreed(self, open_case, flow, **payload):
        steps = flow.open(open_case)
        steps.fire("respondent_agrees", "respondent")
        with pytest.raises(rrm.RoleNotAllowed):
            steps.fire("company_agreement", "respondent", company="the company")
        steps.fire(
            "company_agreement",
            flow.actor,
            after=timedelta(days=20),
            company=flow.facility.owner,
            agreement_ref="letter of 2025-01-27",
            **payload,
        )
        assert steps.state == "company_commitments"
        record = steps.case.attributes["company_agreement"]
        assert record["company"] == flow.facility.owner
        assert steps.case.deadline("respondent_review").status is (
            DeadlineStatus.CANCELLED
        )
        return steps

    def test_commitments_fulfilled_by_agreed_date(self, open_case, engine, flow):
        """The agreed date opens a clock; fulfilling the commitments meets it and closes remediated."""
        steps = self._agreed(open_case, flow, due="2025-06-30")
        clock = steps.case.open_deadlines["company_commitments_due"]
        assert clock.due_date == date(2025, 6, 30)
        assert clock.evidence == "S"
        steps.fire(
            "company_commitments_fulfilled", flow.actor, after=timedelta(days=90)
        )
        assert steps.state == "closed_remediated"
        assert outcome(engine, steps.case) == "remediated"
        assert steps.case.deadline("company_commitments_due").status is (
            DeadlineStatus.MET
        )

    def test_commitments_failed(self, open_case, flow):
        """The company does not keep its commitments; the clock is cancelled and a panel may follow."""
        steps = self._agreed(open_case, flow, due="2025-06-30")
        steps.fire("company_commitments_failed", flow.actor, after=timedelta(days=200))
        assert steps.state == "panel_eligible"
        assert steps.case.attributes["flags"]["panel_eligible_reason"] == (
            "company_agreement_failed"
        )
        assert steps.case.deadline("company_commitments_due").status is (
            DeadlineStatus.CANCELLED
        )

    def test_no_agreed_date_no_clock(self, open_case, flow):
        """Without an agreed date no clock runs."""
        steps = self._agreed(open_case, flow)
        assert steps.case.open_deadlines == {}


class TestOutOfScope:
    def test_out_of_scope_accepted(self, open_case, engine, flow):
        """The respondent finds the matter outside the Mechanism; the complainant accepts."""
        steps = flow.open(open_case)
        steps.fire("respondent_agrees", "respondent")
        steps.fire(
            "respondent_finds_out_of_scope",
            "respondent",
            after=timedelta(days=40),
            grounds=flow.grounds,
            explanation="outside the Mechanism",
        )
        assert steps.state == "out_of_scope_by_respondent"
        assert steps.case.deadline("respondent_review").status is DeadlineStatus.MET
        steps.fire("complainant_accepts_out_of_scope", flow.actor)
        assert steps.state == "closed_out_of_scope"
        assert outcome(engine, steps.case) == "out of scope"

    def test_out_of_scope_disputed(self, open_case, flow):
        """The complainant disagrees; a panel may be requested."""
        steps = flow.open(open_case)
        steps.fire("respondent_finds_out_of_scope", "respondent", grounds="other")
        steps.fire("complainant_disputes_out_of_scope", flow.actor)
        assert steps.state == "panel_eligible"
        assert steps.case.attributes["flags"] == {
            "panel_eligible_reason": "disagree_scope"
        }

    def test_other_workflows_grounds_refused(self, open_case, flow):
        """A ground of the other workflow is refused and nothing is written."""
        steps = flow.open(open_case)
        version = steps.case.version
        with pytest.raises(rrm.InvalidInput, match="must be one of"):
            steps.fire(
                "respondent_finds_out_of_scope",
                "respondent",
                grounds=flow.foreign_grounds,
            )
        assert steps.engine.get(steps.case.case_id).version == version

    def test_panel_finds_no_jurisdiction(self, open_case, engine, flow):
        """The panel finds it has no jurisdiction: closed out of scope, not 'no denial'."""
        steps = flow.open(open_case)
        steps.fire("respondent_declines", "respondent")
        steps.fire("panel_requested", flow.actor)
        steps.fire("panel_constituted", "secretariat")
        steps.fire("verification_requested", "panel")
        steps.fire("verification_refused", "respondent")
        steps.fire(
            "panel_finds_no_jurisdiction",
            "panel",
            after=timedelta(days=20),
            grounds=flow.grounds,
            report_ref="PANEL-1",
        )
        assert steps.state == "closed_out_of_scope"
        assert steps.case.deadline("panel_determination").status is (DeadlineStatus.MET)
        assert steps.case.attributes["panel_determination"]["report_ref"] == "PANEL-1"
        assert engine.facility(flow.facility.facility_id).determinations == 0


# ------------------------------------------------------------------ clocks


def review_dues(case: rrm.Case) -> dict[str, date]:
    return {
        k: d.due_date
        for k, d in case.open_deadlines.items()
        if k in {"respondent_answer", "respondent_review"}
    }


class TestReceiptDate:
    def test_receipt_one_day_later_moves_both_clocks(self, open_case, flow):
        """Received the day after it was sent: the 10- and 45-day clocks fall a day later,
        and each explanation names the receipt and the sending."""
        sent = flow.open(open_case)
        received = flow.open(open_case, payload={"received_on": "2025-01-07"})
        assert review_dues(sent.case) == {
            "respondent_answer": date(2025, 1, 16),
            "respondent_review": date(2025, 2, 20),
        }
        assert review_dues(received.case) == {
            "respondent_answer": date(2025, 1, 17),
            "respondent_review": date(2025, 2, 21),
        }
        for key in ("respondent_answer", "respondent_review"):
            text = received.case.open_deadlines[key].explanation
            assert "receipt" in text
            assert "sent 2025-01-06" in text
            assert "2025-01-07" in text
            assert (
                "no receipt date recorded" in sent.case.open_deadlines[key].explanation
            )

    def test_receipt_recorded_later_redates_open_clocks(self, open_case, flow):
        """The day of receipt, learnt after the sending, re-dates both open clocks."""
        steps = flow.open(open_case)
        steps.fire("request_receipt_recorded", flow.actor, received_on="2025-01-08")
        assert steps.state == "review_requested"
        assert review_dues(steps.case) == {
            "respondent_answer": date(2025, 1, 18),
            "respondent_review": date(2025, 2, 22),
        }
        text = steps.case.open_deadlines["respondent_review"].explanation
        assert "sent 2025-01-06" in text
        assert "2025-01-08" in text

    def test_receipt_before_sending_refused(self, open_case, engine, flow):
        """A day of receipt before the sending is refused; nothing is written."""
        with pytest.raises(rrm.InvalidInput, match="received_on"):
            flow.open(open_case, payload={"received_on": "2025-01-05"})
        assert engine.find(limit=1000) == []

    def test_receipt_on_request_after_nao_claim(self, open_case, samples):
        """Canada's request, sent after the NAO's finding, carries Mexico's day of receipt."""
        steps = claim(open_case, samples)
        steps.fire("claim_accepted_for_review", "nao", after=timedelta(days=2))
        steps.fire("nao_finds_basis", "nao", after=timedelta(days=20))
        # Sent on 2025-01-29 (Wednesday), received on 2025-01-30.
        steps.fire(
            "request_for_review",
            "complainant",
            after=timedelta(days=1),
            received_on="2025-01-30",
        )
        assert review_dues(steps.case) == {
            "respondent_answer": date(2025, 2, 9),
            "respondent_review": date(2025, 3, 16),
        }
        text = steps.case.open_deadlines["respondent_answer"].explanation
        assert "sent 2025-01-29" in text
        assert "2025-01-30" in text


class TestCourseOfRemediation:
    def _plan(self, open_case, flow, **plan):
        steps = flow.open(open_case)
        steps.fire("respondent_finds_denial", "respondent", after=timedelta(days=30))
        steps.fire("remediation_plan_agreed", flow.actor, **plan)
        assert steps.state == "remediation_in_progress"
        return steps

    def test_unknown_end_date_recorded_later(self, open_case, flow):
        """The plan's end date was never published; it is recorded once known, only once."""
        steps = self._plan(
            open_case, flow, milestones=[{"label": "vote", "due": "2025-03-20"}]
        )
        assert steps.case.deadline("remediation_due") is None
        assert steps.case.attributes["remediation_plan"]["due_unknown"] is True
        steps.fire("remediation_due_recorded", flow.actor, due="2025-07-31")
        assert steps.case.open_deadlines["remediation_due"].due_date == date(
            2025, 7, 31
        )
        assert "due_unknown" not in steps.case.attributes["remediation_plan"]
        with pytest.raises(rrm.GuardRejected, match="already has its completion date"):
            steps.fire("remediation_due_recorded", flow.actor, due="2025-08-31")

    def test_verified_without_end_date(self, open_case, engine, flow):
        """Remediation verified while the end date is still unknown closes remediated."""
        steps = self._plan(
            open_case, flow, milestones=[{"label": "vote", "due": "2025-03-20"}]
        )
        steps.fire("remediation_reported_complete", "respondent")
        steps.fire("remediation_verified", flow.actor)
        assert steps.state == "closed_remediated"

    def test_unscheduled_milestone_added_and_met(self, open_case, flow):
        """The Parties add a third milestone to a two-milestone plan; it is later met."""
        steps = self._plan(
            open_case,
            flow,
            due="2025-06-30",
            milestones=[
                {"label": "vote", "due": "2025-03-20"},
                {"label": "new union registered", "due": "2025-04-15"},
            ],
        )
        steps.fire("milestone_added", flow.actor, label="observers", due="2025-05-10")
        added = steps.case.open_deadlines["remediation_milestone.3"]
        assert added.due_date == date(2025, 5, 10)
        assert added.label.endswith("observers")
        steps.fire("milestone_met", flow.actor, milestone=3)
        assert steps.case.deadline("remediation_milestone.3").status is (
            DeadlineStatus.MET
        )
        assert steps.case.deadline("remediation_milestone.1").is_open

    def test_plan_without_milestones_opens_no_milestone_clock(self, open_case, flow):
        """A plan with an end date and no milestones opens only its completion clock."""
        steps = self._plan(open_case, flow, due="2025-06-30")
        assert set(steps.case.open_deadlines) == {"remediation_due"}


class TestSecondRequest:
    def test_second_request_follows_first(self, open_case, engine, flow):
        """A second request on the same facility names the first; the registry counts two."""
        first = flow.open(open_case)
        first.fire("request_withdrawn", flow.actor)
        second = flow.open(open_case, payload={"follows": first.case.external_ref})
        assert second.case.attributes["follows"] == {
            "case_id": first.case.case_id,
            "external_ref": first.case.external_ref,
        }
        assert engine.facility(flow.facility.facility_id).cases == 2

    def test_follows_unknown_case_refused(self, open_case, engine, flow):
        """A request naming a case nobody recorded is refused; nothing is written."""
        with pytest.raises(rrm.InvalidInput, match="follows"):
            flow.open(open_case, payload={"follows": "MX-US-1999-99"})
        assert engine.find(limit=1000) == []

    def test_claim_follows_earlier_claim(self, open_case, samples):
        """A second claim to the NAO about the same facility names the first."""
        first = claim(open_case, samples)
        first.fire("claim_declined_for_review", "nao", grounds="technical_requirements")
        second = claim(open_case, samples, follows=first.case.case_id)
        assert second.case.attributes["follows"]["external_ref"] == (
            first.case.external_ref
        )


# ------------------------------------------------------------------ facts


def facts_of(flow: Flow) -> dict[str, tuple[str, dict[str, Any]]]:
    other = "nao" if flow.workflow == "usmca-31b" else flow.actor
    return {
        "legitimation_vote": (flow.actor, {"on": "2025-01-03", "result": "rejected"}),
        "union_election": (other, {"on": "2025-01-02", "result": "new union won"}),
        "collective_agreement": (flow.actor, {"on": "2025-01-04", "union": "new"}),
        "public_statement": (other, {"on": "2024-12-30", "by": "the company"}),
        "facility_winding_down": (flow.actor, {"on": "2024-12-20"}),
        "liquidation_resumption_effective": (
            flow.actor,
            {"on": "2025-01-05", "notice_ref": "customs notice 1"},
        ),
        "determination_published": (other, {"on": "2025-01-01", "report_ref": "R-1"}),
        "other_fact": (flow.actor, {"on": "2024-12-31", "description": "visit"}),
    }


class TestFacts:
    @pytest.mark.parametrize("workflow_id", V2)
    def test_same_fact_set_as_31a(self, workflows, workflow_id):
        """Both workflows take the same dated facts as usmca-31a v2."""
        assert set(workflows.get(workflow_id, 2).facts) == set(
            workflows.get("usmca-31a", 2).facts
        )

    def test_facts_recorded_in_closed_case(self, open_case, flow):
        """Every fact is recorded in a closed case, which stays where it is."""
        steps = flow.open(open_case)
        steps.fire("request_withdrawn", flow.actor)
        assert steps.state == "withdrawn"
        for fact, (role, payload) in facts_of(flow).items():
            steps.fire(fact, role, **payload)
            assert steps.state == "withdrawn"
            assert steps.case.open_deadlines == {}
        facts = steps.case.attributes["facts"]
        assert {f["fact"] for f in facts} == set(facts_of(flow))
        assert [f["on"] for f in facts] == sorted(f["on"] for f in facts)

    def test_procedural_step_refused_in_closed_case(self, open_case, flow):
        """A closed case takes facts but no procedural step; nothing is written."""
        steps = flow.open(open_case)
        steps.fire("request_withdrawn", flow.actor)
        version = steps.case.version
        for event in ("panel_requested", "suspend_liquidation", "agreement_reached"):
            with pytest.raises(rrm.TransitionNotAllowed):
                steps.fire(event, flow.actor)
        assert steps.engine.get(steps.case.case_id).version == version

    def test_fact_in_open_case_moves_no_clock(self, open_case, flow):
        """A fact in an open case leaves its state and clocks as they were."""
        steps = flow.open(open_case)
        clocks = {k: d.due_date for k, d in steps.case.open_deadlines.items()}
        steps.fire("union_election", flow.actor, on="2025-01-02")
        assert steps.state == "review_requested"
        assert {k: d.due_date for k, d in steps.case.open_deadlines.items()} == clocks

    def test_settlement_resumption_is_the_complainants_fact(self, open_case, flow):
        """Only the complainant Party records that settlement actually resumed."""
        steps = flow.open(open_case)
        with pytest.raises(rrm.RoleNotAllowed):
            steps.fire(
                "liquidation_resumption_effective", "respondent", on="2025-01-05"
            )


# ------------------------------------------------------------------ settlement


CLOSINGS = [
    # (steps before, closing event, its payload)
    ([("respondent_finds_no_denial", "respondent", {})], "complainant_accepts_no_denial", {}),
    ([], "request_withdrawn", {}),
    ([], "case_closed", {"outcome": "resolved outside the panel route"}),
    ([], "facility_closed", {}),
    ([("respondent_declines", "respondent", {})], "settled", {"respondent_agreement": "n"}),
    ([("respondent_declines", "respondent", {})], "agreement_reached", {"respondent_agreement": "n"}),
    ([("respondent_finds_out_of_scope", "respondent", {"grounds": "other"})], "complainant_accepts_out_of_scope", {}),
    ([("respondent_reports_remediated", "respondent", {})], "remediation_in_review_verified", {}),
    ([("company_agreement", "*", {"company": "owner"})], "company_commitments_fulfilled", {}),
]  # fmt: skip


class TestSettlementBasis:
    @pytest.mark.parametrize(
        ("before", "event", "payload"), CLOSINGS, ids=[c[1] for c in CLOSINGS]
    )
    def test_close_needs_basis_while_settlement_delayed(
        self, open_case, flow, before, event, payload
    ):
        """With settlement delayed, a closing is refused until the basis is stated;
        v2 records no condition value, only the basis in the complainant's words."""
        steps = delayed(flow, open_case)
        for step, role, data in before:
            steps.fire(step, flow.actor if role == "*" else role, **data)
        version = steps.case.version
        with pytest.raises(rrm.GuardRejected, match="liquidation is suspended"):
            steps.fire(event, flow.actor, **payload)
        with pytest.raises(rrm.InvalidInput, match="unknown field"):
            steps.fire(event, flow.actor, condition="otherwise_remedied", **payload)
        assert steps.engine.get(steps.case.case_id).version == version
        steps.fire(event, flow.actor, basis="customs notice of 2025-03-01", **payload)
        assert steps.engine.workflows.get(flow.workflow, 2).states[steps.state].terminal
        liquidation = steps.case.attributes["liquidation"]
        assert liquidation["status"] == "resumed"
        assert liquidation["periods"][-1]["condition"] is None
        assert liquidation["periods"][-1]["resumption_basis"] == (
            "customs notice of 2025-03-01"
        )

    def test_close_needs_no_basis_without_delay(self, open_case, flow):
        """Without delayed settlement nothing about it is asked."""
        steps = flow.open(open_case)
        steps.fire("respondent_finds_no_denial", "respondent")
        steps.fire("complainant_accepts_no_denial", flow.actor)
        assert steps.state == "closed_no_dor"
        assert "liquidation" not in steps.case.attributes

    def test_panel_no_denial_needs_basis_while_delayed(self, open_case, flow):
        """v1 resumed settlement on a panel's no-denial finding as 'panel_found_no_denial';
        v2 asks the basis instead (no text gives that condition for CBSA or SAT/ANAM)."""
        steps = delayed(flow, open_case)
        steps.fire("respondent_declines", "respondent")
        steps.fire("panel_requested", flow.actor)
        steps.fire("panel_constituted", "secretariat")
        with pytest.raises(rrm.GuardRejected, match="liquidation is suspended"):
            steps.fire("panel_finds_no_denial", "panel")
        steps.fire("panel_finds_no_denial", "panel", basis="panel report PANEL-2")
        assert steps.state == "closed_no_dor"
        assert last_period(steps)["condition"] is None

    def test_remedies_lifted_at_once_settlement_basis_before_closing(
        self, open_case, flow
    ):
        """Remedies are lifted immediately without a basis; the case closes only once
        the basis on which settlement resumes is given."""
        steps = delayed(flow, open_case)
        steps.fire("respondent_declines", "respondent")
        steps.fire("panel_requested", flow.actor)
        steps.fire("panel_constituted", "secretariat")
        steps.fire("panel_finds_denial", "panel")
        steps.fire("remedies_noticed", flow.actor, remedies=["penalties"])
        steps.fire("remedies_imposed", flow.actor, after=timedelta(days=10))
        steps.fire("remediation_claimed", "respondent")
        steps.fire("claim_accepted", flow.actor)
        assert steps.state == "remedies_lifted"
        assert steps.case.attributes["remedies"][0]["status"] == "lifted"
        assert steps.case.attributes["liquidation"]["status"] == "suspended"
        with pytest.raises(rrm.GuardRejected, match="liquidation is suspended"):
            steps.fire("close_remediated", flow.actor)
        with pytest.raises(rrm.InvalidInput, match="basis"):
            steps.fire("resume_liquidation", flow.actor)
        steps.fire("resume_liquidation", flow.actor, basis="customs notice 7")
        steps.fire("close_remediated", flow.actor)
        assert steps.state == "closed_remediated"
        assert last_period(steps)["resumption_basis"] == "customs notice 7"

    def test_v1_keeps_its_condition_values(self, open_case, flow):
        """A case kept on v1 still resumes settlement under v1's 'remediated'."""
        steps = delayed(flow, open_case, workflow_version=1)
        steps.fire("respondent_finds_denial", "respondent")
        steps.fire("remediation_plan_agreed", flow.actor, due="2025-06-30")
        steps.fire("remediation_reported_complete", "respondent")
        steps.fire("remediation_verified", flow.actor)
        assert last_period(steps)["condition"] == "remediated"


# ------------------------------------------------------------------ Canada's NAO


class TestNaoScreening:
    def test_claim_accepted_then_basis(self, open_case, samples):
        """ESDC ss. 6-7: the NAO accepts the claim for review, then finds a good-faith basis."""
        steps = claim(open_case, samples)
        due = steps.case.open_deadlines["nao_review"].due_date
        steps.fire("claim_accepted_for_review", "nao", after=timedelta(days=3))
        assert steps.state == "claim_under_review"
        assert steps.case.open_deadlines["nao_review"].due_date == due  # from receipt
        steps.fire("nao_finds_basis", "nao", after=timedelta(days=20))
        assert steps.state == "request_authorized"
        assert steps.case.deadline("nao_review").status is DeadlineStatus.MET
        assert "flags" not in steps.case.attributes

    @pytest.mark.parametrize(
        "grounds",
        [
            "submitter_not_eligible",
            "covered_facility_not_identified",
            "mexican_law_not_identified",
            "technical_requirements",
            "other",
        ],
    )
    def test_claim_declined_for_review(self, open_case, samples, engine, grounds):
        """A claim declined for review is its own outcome, not 'no good-faith basis'."""
        steps = claim(open_case, samples)
        with pytest.raises(rrm.RoleNotAllowed):
            steps.fire("claim_declined_for_review", "complainant")
        steps.fire("claim_declined_for_review", "nao", grounds=grounds)
        assert steps.state == "claim_not_accepted"
        assert outcome(engine, steps.case) == "declined for review"
        spec = engine.workflows.get("usmca-31b", 2)
        assert spec.states["claim_declined"].outcome == "no good-faith basis"
        # No good-faith determination was made: the 30-day clock is cancelled, not met.
        assert steps.case.deadline("nao_review").status is DeadlineStatus.CANCELLED

    def test_no_basis_after_acceptance(self, open_case, samples, engine):
        """The NAO accepts the claim and finds no good-faith basis."""
        steps = claim(open_case, samples)
        steps.fire("claim_accepted_for_review", "nao")
        steps.fire("nao_finds_no_basis", "nao")
        assert steps.state == "claim_declined"
        assert outcome(engine, steps.case) == "no good-faith basis"
        assert steps.case.deadline("nao_review").status is DeadlineStatus.MET

    def test_determination_without_recorded_acceptance(self, open_case, samples):
        """A determination on a claim whose acceptance was not recorded implies it, and says so."""
        steps = claim(open_case, samples)
        steps.fire("nao_finds_basis", "nao")
        assert steps.state == "request_authorized"
        assert steps.case.attributes["flags"] == {"accepted_for_review": "implied"}

    def test_declined_claim_cannot_be_determined(self, open_case, samples):
        """Once declined for review, no good-faith determination follows."""
        steps = claim(open_case, samples)
        steps.fire("claim_declined_for_review", "nao")
        with pytest.raises(rrm.TransitionNotAllowed):
            steps.fire("nao_finds_basis", "nao")

    def test_claim_withdrawn_during_review(self, open_case, samples):
        """The submitter withdraws an accepted claim before the NAO decides."""
        steps = claim(open_case, samples)
        steps.fire("claim_accepted_for_review", "nao")
        steps.fire("claim_withdrawn", "nao")
        assert steps.state == "withdrawn"
        assert steps.case.deadline("nao_review").status is DeadlineStatus.CANCELLED

    def test_no_resolution_during_nao_review(self, workflows):
        """The ESDC guidelines say nothing of a claim resolved during the NAO's review:
        an accepted claim ends in a determination, a withdrawal, or nothing else."""
        spec = workflows.get("usmca-31b", 2)
        out = {
            (t.event, t.dest)
            for t in spec.transitions_from("claim_under_review")
            if not t.is_fact
        }
        assert out == {
            ("nao_finds_basis", "request_authorized"),
            ("nao_finds_no_basis", "claim_declined"),
            ("claim_withdrawn", "withdrawn"),
        }


class TestNaoDialogue:
    def _basis(self, open_case, samples):
        steps = claim(open_case, samples)
        steps.fire("claim_accepted_for_review", "nao")
        steps.fire("nao_finds_basis", "nao")
        return steps

    def test_dialogue_resolves_claim_by_agreement(self, open_case, samples, engine):
        """The NAO facilitates a dialogue with the company; its declaration closes the claim."""
        steps = self._basis(open_case, samples)
        with pytest.raises(rrm.RoleNotAllowed):
            steps.fire("nao_dialogue_opened", "complainant")
        steps.fire("nao_dialogue_opened", "nao")
        assert steps.state == "nao_dialogue"
        steps.fire(
            "nao_dialogue_resolved",
            "nao",
            after=timedelta(days=60),
            company=samples.FACILITY_MX.owner,
            measures="reinstatement with back pay; neutrality; non-retaliation",
        )
        assert steps.state == "closed_by_agreement"
        assert outcome(engine, steps.case) == "closed by agreement"
        record = steps.case.attributes["nao_dialogue"]
        assert record["measures"].startswith("reinstatement")
        assert steps.case.open_deadlines == {}

    def test_failed_dialogue_leads_to_request(self, open_case, samples):
        """A dialogue without agreement sends the NAO back to notifying Mexico."""
        steps = self._basis(open_case, samples)
        steps.fire("nao_dialogue_opened", "nao")
        steps.fire("nao_dialogue_failed", "nao", after=timedelta(days=30))
        assert steps.state == "request_authorized"
        steps.fire("request_for_review", "complainant")
        assert steps.state == "review_requested"

    def test_dialogue_only_after_basis(self, open_case, samples):
        """The dialogue follows the NAO's confirmation of the allegations, not before."""
        steps = claim(open_case, samples)
        steps.fire("claim_accepted_for_review", "nao")
        with pytest.raises(rrm.TransitionNotAllowed):
            steps.fire("nao_dialogue_opened", "nao")

    def test_fraenkische_at_its_recorded_dates(self, engine, clock, samples):
        """Fränkische (CA-MX-2023-01), replayed on its public dates through the v2 dialogue path."""
        clock.set(datetime(2026, 1, 5, tzinfo=UTC))

        def at(day: str) -> datetime:
            return datetime.fromisoformat(f"{day}T17:00:00+00:00")

        case = engine.open_case(
            rrm.OpenCase(
                workflow="usmca-31b",
                initiation="claim",
                complainant="CA",
                respondent="MX",
                facility=samples.FACILITY_MX,
                claim=samples.MX_CLAIM,
                petitioners=(
                    rrm.Petitioner(name="Unifor"),
                    rrm.Petitioner(name="SINTTIA"),
                ),
                external_ref="CA-MX-2023-01",
                actor="import:nao",
                role="nao",
                at=at("2023-03-11"),
                payload={"submitter_category": "organization_in_canada"},
            )
        )
        steps = [
            ("2023-03-13", "nao_finds_basis", "nao", {"date_precision": "derived"}),
            ("2023-03-13", "nao_dialogue_opened", "nao", {"date_precision": "derived"}),
            ("2023-06-30", "union_election", "nao", {"on": "2023-06-01", "date_precision": "month", "result": "SINTTIA won"}),
            ("2023-07-25", "nao_dialogue_resolved", "nao", {"measures": "declaration of measures"}),
        ]  # fmt: skip
        for day, event, role, payload in steps:
            case = engine.fire(
                rrm.FireEvent(
                    case_id=case.case_id,
                    event=event,
                    actor=f"import:{role}",
                    role=role,
                    payload=payload,
                    at=at(day),
                )
            )
        assert case.state == "closed_by_agreement"
        assert case.deadline("nao_review").status is DeadlineStatus.MET
        assert case.attributes["flags"] == {"accepted_for_review": "implied"}
        assert case.attributes["facts"][0]["fact"] == "union_election"
