"""Paths of Mexico as complainant (31-A) and of Annex 31-B, driven by the fake clock."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

import rrm
from rrm import DeadlineStatus


class TestMexicoComplainant:
    def test_claim_must_rest_on_enforced_nlrb_order(self, open_case, samples):
        """A Mexican request against a U.S. facility without an enforced NLRB order is refused."""
        with pytest.raises(rrm.GuardRejected, match="National Labor Relations Board"):
            open_case(
                "usmca-31a-mx",
                role="se",
                complainant="MX",
                respondent="US",
                facility=samples.FACILITY_US,
                claim=samples.MX_CLAIM,
            )

    def test_us_review_and_remediation(self, open_case, samples):
        """The United States answers and reviews on its own calendar; remediation closes the case."""
        steps = open_case(
            "usmca-31a-mx",
            role="se",
            complainant="MX",
            respondent="US",
            facility=samples.FACILITY_US,
            claim=samples.NLRB_CLAIM,
        )
        answer = steps.case.open_deadlines["respondent_answer"]
        assert answer.timezone == "America/New_York"
        steps.fire("respondent_agrees", "respondent")
        steps.fire("respondent_finds_denial", "respondent")
        steps.fire("remediation_plan_agreed", "se", due="2025-06-30")
        steps.fire("remediation_reported_complete", "respondent")
        steps.fire("remediation_verified", "se")
        assert steps.state == "closed_remediated"

    def test_us_facility_cannot_be_in_mexico_workflow(self, open_case, samples):
        """The facility must be in the respondent's territory."""
        with pytest.raises(rrm.InvalidInput, match="respondent Party is US"):
            open_case(
                "usmca-31a-mx",
                role="se",
                complainant="MX",
                respondent="US",
                facility=samples.FACILITY_MX,
                claim=samples.NLRB_CLAIM,
            )


class TestAnnex31B:
    def _claim(self, open_case, samples):  # a union established in Canada files
        return open_case(
            "usmca-31b",
            "claim",
            role="nao",
            complainant="CA",
            respondent="MX",
            facility=samples.FACILITY_MX,
            claim=samples.MX_CLAIM,
            payload={"submitter_category": "organization_in_canada"},
        )

    def test_nao_declines_claim(self, open_case, samples):
        """The NAO may find no good-faith basis; the claim is declined."""
        steps = self._claim(open_case, samples)
        assert set(steps.case.open_deadlines) == {"nao_review"}
        steps.fire("nao_finds_no_basis", "nao")
        assert steps.state == "claim_declined"

    def test_nao_review_can_be_extended_with_reason(
        self, open_case, samples, engine, clock
    ):
        """The NAO's 'normally 30 days' can be extended; the history records why."""
        steps = self._claim(open_case, samples)
        before = steps.case.open_deadlines["nao_review"]
        assert before.timezone == "America/Toronto"
        clock.advance(timedelta(days=20))
        case = engine.extend(
            rrm.ExtendDeadline(
                case_id=steps.case.case_id,
                key="nao_review",
                new_date=date(2025, 3, 7),
                actor="officer:nao",
                role="nao",
                reason="complex claim, more evidence sought",
            )
        )
        assert case.open_deadlines["nao_review"].due_date == date(2025, 3, 7)
        assert "extended to 2025-03-07" in case.open_deadlines["nao_review"].explanation
        assert engine.history(case.case_id)[-1].event == "deadline_extended"

    def test_canada_to_mexico_through_panel(self, open_case, samples):
        """Canada's claim goes through the NAO, the request, and a panel to a no-denial finding."""
        steps = self._claim(open_case, samples)
        steps.fire("nao_finds_basis", "nao")
        steps.fire("request_for_review", "complainant")
        assert steps.case.open_deadlines["respondent_answer"].nominal
        steps.fire("respondent_declines", "respondent")
        steps.fire("panel_requested", "complainant")
        steps.fire("panel_constituted", "secretariat")
        steps.fire("panel_finds_no_denial", "panel")
        assert steps.state == "closed_no_dor"

    def test_mexico_to_canada_opens_with_request(self, open_case, samples):
        """Mexico's request about a Canadian facility uses Canada's calendar for the answer."""
        steps = open_case(
            "usmca-31b",
            role="complainant",
            complainant="MX",
            respondent="CA",
            facility=samples.FACILITY_CA,
            claim=rrm.Claim(
                basis="canadian_legislation", sector_category="manufacturing"
            ),
        )
        assert (
            steps.case.open_deadlines["respondent_answer"].timezone == "America/Toronto"
        )
        steps.fire("respondent_agrees", "respondent")
        steps.fire("request_withdrawn", "complainant")
        assert steps.state == "withdrawn"
        assert (
            steps.case.deadline("respondent_review").status is DeadlineStatus.CANCELLED
        )

    def test_no_us_canada_direction(self, open_case, samples):
        """The United States and Canada are not covered by either annex."""
        with pytest.raises(rrm.InvalidInput, match="covers"):
            open_case(
                "usmca-31b",
                role="complainant",
                complainant="US",
                respondent="CA",
                facility=samples.FACILITY_CA,
                claim=samples.MX_CLAIM,
            )
