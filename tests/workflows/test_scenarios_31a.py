"""Every path of procedure section 3A (U.S. complainant), driven by the fake clock."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

import rrm
from rrm import DeadlineStatus


def open_deadline_keys(case: rrm.Case) -> set[str]:
    return set(case.open_deadlines)


class TestFrontEnd:
    def test_petition_declined_by_ilc(self, open_case):
        """A petition the ILC finds insufficient ends declined, its 30-day clock met."""
        steps = open_case(initiation="petition", role="dol")
        assert steps.state == "petition_received"
        assert open_deadline_keys(steps.case) == {"ilc_determination"}
        steps.fire("ilc_negative", "ilc", after=timedelta(days=20))
        assert steps.state == "petition_declined"
        assert steps.case.deadline("ilc_determination").status is DeadlineStatus.MET

    def test_ilc_deadline_is_thirty_calendar_days_verified(self, open_case):
        """The ILC clock falls 30 calendar days after the petition and is verified law."""
        steps = open_case(initiation="petition", role="dol")
        d = steps.case.open_deadlines["ilc_determination"]
        assert d.due_date == date(2025, 2, 5)
        assert d.evidence == "V"
        assert not d.nominal
        assert "19 U.S.C. 4646(b)(1)" in d.explanation

    def test_self_initiated_not_pursued(self, open_case):
        """USTR can decline to act on an ILC recommendation, closing the matter."""
        steps = open_case(initiation="self_initiated", role="ilc")
        assert open_deadline_keys(steps.case) == {"ustr_enforcement_decision"}
        steps.fire("ustr_declines", "ustr")
        assert steps.state == "not_pursued"

    def test_affirmative_petition_sends_request(self, open_case):
        """An affirmative ILC determination opens the 60-day USTR clock; the request opens 10 and 45."""
        steps = open_case(initiation="petition", role="dol")
        steps.fire("ilc_affirmative", "ilc")
        assert open_deadline_keys(steps.case) == {"ustr_panel_decision"}
        steps.fire("request_for_review", "ustr")
        assert steps.state == "review_requested"
        assert open_deadline_keys(steps.case) == {
            "ustr_panel_decision",
            "respondent_answer",
            "respondent_review",
        }


class TestRespondentReview:
    def test_answer_lapse_makes_panel_eligible(self, open_case, clock):
        """Mexico's silence past 10 days lets USTR record the lapse; the case becomes panel-eligible."""
        steps = open_case()
        with pytest.raises(rrm.GuardRejected, match="has not lapsed"):
            steps.fire("respondent_answer_lapsed", "ustr", after=timedelta(days=5))
        steps.fire("respondent_answer_lapsed", "system", after=timedelta(days=6))
        assert steps.state == "panel_eligible"
        assert steps.case.attributes["flags"] == {
            "panel_eligible_reason": "no_response"
        }

    def test_review_lapse_makes_panel_eligible(self, open_case):
        """A review that runs past 45 days without a result lets the complainant move on."""
        steps = open_case()
        steps.fire("respondent_agrees", "respondent", after=timedelta(days=3))
        steps.fire("review_lapsed", "ustr", after=timedelta(days=43))
        assert steps.state == "panel_eligible"
        assert (
            steps.case.deadline("respondent_review").status is DeadlineStatus.CANCELLED
        )

    def test_no_denial_accepted_closes(self, open_case):
        """The complainant may accept a finding of no denial; the case closes."""
        steps = open_case()
        steps.fire("respondent_agrees", "respondent")
        steps.fire("respondent_finds_no_denial", "respondent", grounds="outside scope")
        steps.fire("complainant_accepts_no_denial", "ustr")
        assert steps.state == "closed_no_dor"
        assert steps.case.open_deadlines == {}

    def test_declined_review_then_withdrawn(self, open_case):
        """A declined review makes the case panel-eligible; withdrawal ends it."""
        steps = open_case()
        steps.fire("respondent_declines", "respondent")
        assert steps.state == "panel_eligible"
        steps.fire("request_withdrawn", "ustr")
        assert steps.state == "withdrawn"


class TestRemediation:
    def _plan(self, open_case, due: str):
        steps = open_case()
        steps.fire("suspend_liquidation", "ustr", after=timedelta(0))
        steps.fire("respondent_agrees", "respondent")
        steps.fire("respondent_finds_denial", "respondent", after=timedelta(days=40))
        steps.fire(
            "remediation_plan_agreed",
            "ustr",
            due=due,
            milestones=[
                {"label": "legitimation vote", "due": "2025-03-20"},
                {"label": "new union registered", "due": "2025-04-15"},
            ],
        )
        return steps

    def test_plan_opens_agreed_due_date_and_milestones(self, open_case):
        """A course of remediation opens its agreed completion date and one deadline per milestone."""
        steps = self._plan(open_case, "2025-05-30")
        assert steps.state == "remediation_in_progress"
        keys = open_deadline_keys(steps.case)
        assert keys >= {
            "remediation_due",
            "remediation_milestone.1",
            "remediation_milestone.2",
        }
        assert steps.case.open_deadlines["remediation_due"].due_date == date(
            2025, 5, 30
        )

    def test_on_time_remediation_resumes_liquidation_4692b2(self, open_case):
        """Remediation verified after completion by the agreed date resumes liquidation under 4692(b)(2)."""
        steps = self._plan(open_case, "2025-05-30")
        steps.fire("milestone_met", "ustr", milestone=1)
        assert (
            steps.case.deadline("remediation_milestone.1").status is DeadlineStatus.MET
        )
        assert (
            steps.case.deadline("remediation_milestone.2").status is DeadlineStatus.OPEN
        )
        steps.fire("remediation_reported_complete", "respondent")
        steps.fire("remediation_verified", "ustr")
        assert steps.state == "closed_remediated"
        period = steps.case.attributes["liquidation"]["periods"][-1]
        assert period["condition"] == "agreed_remediation_completed_on_time"
        assert period["resumption_basis"] == "19 U.S.C. 4692(b)(2)"

    def test_late_remediation_is_otherwise_remedied(self, open_case):
        """Remediation completed after the agreed date resumes liquidation as 'otherwise remedied'."""
        steps = self._plan(open_case, "2025-02-20")
        steps.fire(
            "remediation_reported_complete", "respondent", after=timedelta(days=60)
        )
        steps.fire("remediation_verified", "ustr")
        period = steps.case.attributes["liquidation"]["periods"][-1]
        assert period["condition"] == "otherwise_remedied"

    def test_failed_plan_makes_panel_eligible(self, open_case):
        """A failed course of remediation lets the complainant request a panel."""
        steps = self._plan(open_case, "2025-05-30")
        steps.fire("remediation_failed", "ustr")
        assert steps.state == "panel_eligible"
        assert steps.case.attributes["flags"]["panel_eligible_reason"] == "plan_failed"

    def test_facility_closure_ends_case(self, open_case):
        """A facility that closes during remediation ends the case (Manufacturas VU)."""
        steps = self._plan(open_case, "2025-05-30")
        with pytest.raises(rrm.GuardRejected, match="liquidation is suspended"):
            steps.fire("facility_closed", "ustr")
        with pytest.raises(rrm.InvalidInput, match="must be one of otherwise_remedied"):
            # v2 drops v1's "policy": 19 U.S.C. 4692(b) names three conditions.
            steps.fire("facility_closed", "ustr", condition="policy")
        steps.fire("facility_closed", "ustr", basis="matter terminated by the Parties")
        assert steps.state == "closed_facility_closed"
        period = steps.case.attributes["liquidation"]["periods"][-1]
        assert period["condition"] is None
        assert period["resumption_basis"] == "matter terminated by the Parties"
        assert steps.case.open_deadlines == {}

    def test_unknown_milestone_is_refused(self, open_case):
        """Recording a milestone the plan does not have is refused with the count."""
        steps = self._plan(open_case, "2025-05-30")
        with pytest.raises(rrm.GuardRejected, match="has 2 milestone"):
            steps.fire("milestone_met", "ustr", milestone=3)

    def test_rejected_remediation_makes_panel_eligible(self, open_case):
        """The complainant may reject a reported remediation and move toward a panel."""
        steps = self._plan(open_case, "2025-05-30")
        steps.fire("remediation_reported_complete", "respondent")
        steps.fire("remediation_rejected", "ustr")
        assert steps.state == "panel_eligible"


def to_panel(open_case):
    steps = open_case()
    steps.fire("suspend_liquidation", "ustr", after=timedelta(0))
    steps.fire("respondent_declines", "respondent")
    steps.fire("panel_requested", "ustr")
    return steps


class TestPanel:
    def test_composition_clock_is_nominal_business_days_on_both_calendars(
        self, open_case
    ):
        """Panel composition is 3 business days on both Parties' holidays, shown as nominal."""
        steps = to_panel(open_case)
        d = steps.case.open_deadlines["panel_composition"]
        assert d.nominal
        assert d.calendar_id == "mx-federal+us-federal"
        assert "nominal" in d.explanation

    def test_verification_then_no_denial_resumes_liquidation(self, open_case):
        """A panel finding no denial after verification closes the case and resumes liquidation (4692(b)(1))."""
        steps = to_panel(open_case)
        steps.fire("panel_constituted", "secretariat", panelists=["A", "B", "C"])
        steps.fire("verification_requested", "panel")
        steps.fire("verification_agreed", "respondent")
        assert "verification_period" in steps.case.open_deadlines
        steps.fire("verification_completed", "panel", after=timedelta(days=20))
        assert "panel_determination" in steps.case.open_deadlines
        steps.fire("panel_finds_no_denial", "panel", after=timedelta(days=25))
        assert steps.state == "closed_no_dor"
        assert steps.case.attributes["liquidation"]["status"] == "resumed"

    def test_refused_verification_then_remedies_lifecycle(self, open_case):
        """Refusal leads to a determination, remedies after notice, a dispute, and finally lifting."""
        steps = to_panel(open_case)
        steps.fire("panel_constituted", "secretariat")
        steps.fire("verification_requested", "panel")
        steps.fire("verification_refused", "respondent")
        assert steps.case.attributes["flags"]["verification"] == "refused"
        steps.fire("panel_finds_denial", "panel", after=timedelta(days=20))
        steps.fire("remedies_noticed", "ustr", remedies=["suspension_of_preferences"])
        with pytest.raises(rrm.GuardRejected):
            steps.fire("remedies_imposed", "ustr", after=timedelta(days=1))
        steps.fire("remedies_imposed", "system", after=timedelta(days=10))
        assert steps.state == "remedies_in_force"
        steps.fire("consultations_requested", "respondent")
        steps.fire("consultations_concluded", "respondent")
        steps.fire("remediation_claimed", "respondent", after=timedelta(days=90))
        steps.fire("claim_disputed", "ustr")
        steps.fire("found_not_remediated", "panel")
        assert steps.state == "remedies_in_force"
        steps.fire("remediation_claimed", "respondent")
        steps.fire("claim_accepted", "ustr")
        assert steps.case.attributes["remedies"][0]["status"] == "lifted"
        steps.fire("close_remediated", "ustr")
        assert steps.state == "closed_remediated"

    def test_verification_answer_lapse_and_obstruction(self, open_case):
        """A lapsed verification answer counts as refusal; the determination clock opens."""
        steps = to_panel(open_case)
        steps.fire("panel_constituted", "secretariat")
        steps.fire("verification_requested", "panel")
        steps.fire("verification_answer_lapsed", "system", after=timedelta(days=14))
        assert steps.state == "determination_pending"
        assert steps.case.attributes["flags"]["verification"] == "no_response"

    def test_obstructed_verification(self, open_case):
        """Obstructed access ends verification and flags it."""
        steps = to_panel(open_case)
        steps.fire("panel_constituted", "secretariat")
        steps.fire("verification_requested", "panel")
        steps.fire("verification_agreed", "respondent")
        steps.fire("verification_obstructed", "panel")
        assert steps.case.attributes["flags"]["verification"] == "obstructed"

    def test_settlement_before_determination(self, open_case):
        """The Parties may settle while the panel deliberates."""
        steps = to_panel(open_case)
        steps.fire("panel_constituted", "secretariat")
        with pytest.raises(rrm.RoleNotAllowed):
            steps.fire("settled", "respondent", condition="otherwise_remedied")
        steps.fire(
            "settled",
            "ustr",
            condition="otherwise_remedied",
            respondent_agreement="Mexican note of 2025-02-01",
        )
        # v1 ended in "withdrawn_settled"; v2 names the outcome "closed by agreement".
        assert steps.state == "closed_by_agreement"
        assert steps.case.attributes["liquidation"]["status"] == "resumed"

    def test_no_panel_certified_then_closed(self, open_case):
        """USTR may decide against a panel, certify, monitor, and later close."""
        steps = open_case()
        steps.fire("respondent_declines", "respondent")
        steps.fire("no_panel_certified", "ustr")
        assert steps.state == "no_panel_certified"
        steps.fire("case_closed", "ustr", outcome="resolved")
        assert steps.state == "closed"

    def test_deficient_request_returns_to_panel_eligible(self, open_case):
        """A panel that finds the request deficient sends the case back to eligibility."""
        steps = to_panel(open_case)
        steps.fire("panel_constituted", "secretariat")
        steps.fire("request_found_deficient", "panel")
        assert steps.state == "panel_eligible"

    def test_no_remedy_elected(self, open_case):
        """After a determination the complainant may elect no remedy."""
        steps = to_panel(open_case)
        steps.fire("panel_constituted", "secretariat")
        steps.fire("panel_finds_denial", "panel")
        steps.fire("no_remedy_elected", "ustr", condition="otherwise_remedied")
        assert steps.state == "closed_no_remedy"


def same_owner(n: int) -> rrm.Facility:
    return rrm.Facility(
        facility_id=f"MX-REP-{n}",
        name=f"Planta {n}",
        owner="Grupo Reincidente",
        country=rrm.Party.MX,
    )


class TestRepeatOffender:
    def _determined(self, open_case, facility):
        steps = open_case(facility=facility)
        steps.fire("respondent_declines", "respondent")
        steps.fire("panel_requested", "ustr")
        steps.fire("panel_constituted", "secretariat")
        steps.fire("panel_finds_denial", "panel")
        return steps

    def test_denial_of_entry_needs_prior_determinations(self, open_case):
        """Denial of entry is refused for a first offender and allowed after the nominal threshold."""
        first = self._determined(open_case, same_owner(1))
        with pytest.raises(rrm.GuardRejected, match="repeat offender"):
            first.fire("remedies_noticed", "ustr", remedies=["denial_of_entry"])
        self._determined(open_case, same_owner(2))
        third = self._determined(open_case, same_owner(3))
        third.fire("remedies_noticed", "ustr", remedies=["denial_of_entry"])
        assert third.state == "remedies_noticed"
        assert third.case.facility.owner == "Grupo Reincidente"


class TestReviewedPaths:
    def test_ustr_certifies_no_panel_while_remediation_runs(self, open_case):
        """USTR can meet its 60-day panel decision during remediation without leaving it."""
        steps = open_case(initiation="petition", role="dol")
        steps.fire("ilc_affirmative", "ilc")
        steps.fire("request_for_review", "ustr")
        steps.fire("respondent_finds_denial", "respondent")
        steps.fire("ustr_certifies_no_panel", "ustr", reasons="remediation under way")
        assert steps.state == "remediation_negotiation"
        decision = steps.case.deadline("ustr_panel_decision")
        assert decision.status is DeadlineStatus.MET

    def test_late_acceptance_is_recorded(self, open_case):
        """Mexico may still agree after its 10 days lapsed; the case returns to review."""
        steps = open_case()
        steps.fire("respondent_answer_lapsed", "system", after=timedelta(days=11))
        steps.fire("respondent_agrees_late", "respondent")
        assert steps.state == "respondent_reviewing"
        assert steps.case.attributes["flags"]["late_acceptance"] == "yes"

    def test_petition_withdrawn_but_not_closed_by_ustr(self, open_case):
        """Before the ILC decides, a petition can be withdrawn but not closed as a case."""
        steps = open_case(initiation="petition", role="dol")
        with pytest.raises(rrm.TransitionNotAllowed):
            steps.fire("case_closed", "ustr")
        steps.fire("petition_withdrawn", "dol")
        assert steps.state == "withdrawn"

    def test_respondent_cannot_agree_a_plan_alone(self, open_case):
        """Only the complainant records an agreed course of remediation."""
        steps = open_case()
        steps.fire("respondent_finds_denial", "respondent")
        with pytest.raises(rrm.RoleNotAllowed):
            steps.fire("remediation_plan_agreed", "respondent", due="2025-06-30")

    def test_statutory_condition_cannot_be_picked_freely(self, open_case):
        """'No denial by panel' cannot be chosen by hand; only the panel's finding sets it."""
        steps = open_case()
        steps.fire("suspend_liquidation", "ustr")
        with pytest.raises(rrm.InvalidInput, match="condition"):
            steps.fire("resume_liquidation", "ustr", condition="no_dor_by_panel")

    def test_respondent_may_seek_review_of_remediation(self, open_case):
        """With remedies in force, Mexico may seek a review of remediation."""
        steps = to_panel(open_case)
        steps.fire("panel_constituted", "secretariat")
        steps.fire("panel_finds_denial", "panel")
        steps.fire("remedies_noticed", "ustr", remedies=["penalties"])
        steps.fire("remedies_imposed", "ustr", after=timedelta(days=10))
        steps.fire("remediation_review_requested", "respondent")
        assert steps.state == "remediation_dispute"
