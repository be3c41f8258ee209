"""The real paths workflow usmca-31a v2 adds (issue #11), driven by the fake clock.

Every scenario runs on both backends (the ``engine`` fixture is parametrized over
SQLite and PostgreSQL) and, when it ends, every case it wrote must still have a
valid hash chain (``engine.verify``), checked by the autouse fixture below.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest

import rrm
from rrm import DeadlineStatus

FACILITY_ID = "MX-FAC-1"  # the facility of every case the open_case fixture opens
OTHER_FACILITY = rrm.Facility(
    facility_id="MX-FAC-2",
    name="Planta Dos",
    owner="Otro Grupo",
    country=rrm.Party.MX,
    city="Saltillo",
    region="Coahuila",
    sector="auto parts",
)


@pytest.fixture(autouse=True)
def _every_chain_valid(engine):
    """After each scenario, every case it wrote has an intact hash chain."""
    yield
    for case in engine.find(limit=1000):
        assert engine.verify(case.case_id).ok, case.external_ref


def outcome(engine: rrm.CaseEngine, case: rrm.Case) -> str | None:
    return (
        engine.workflows.get(case.workflow_id, case.workflow_version)
        .states[case.state]
        .outcome
    )


def last_entry(engine: rrm.CaseEngine, case: rrm.Case) -> rrm.HistoryEntry:
    return engine.history(case.case_id)[-1]


def refresh(steps):
    steps.case = steps.engine.get(steps.case.case_id)
    return steps


def suspended(open_case, **kw):
    steps = open_case(**kw)
    steps.fire("suspend_liquidation", "ustr", after=timedelta(0))
    return steps


def to_panel(open_case):
    steps = suspended(open_case)
    steps.fire("respondent_declines", "respondent")
    steps.fire("panel_requested", "ustr")
    steps.fire("panel_constituted", "secretariat", panelists=["A", "B", "C"])
    return steps


def test_new_cases_open_on_v2(open_case):
    """A new usmca-31a case opens on version 2, the default for new cases."""
    assert open_case().case.workflow_version == 2


class TestRemediatedDuringReview:
    def test_remediated_in_review_closes_otherwise_remedied(self, open_case, engine):
        """Mexico finds and remedies a denial during its own review; no course of remediation."""
        steps = suspended(open_case)
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
        steps.fire("remediation_in_review_verified", "ustr", after=timedelta(days=10))
        assert steps.state == "closed_remediated"
        assert outcome(engine, steps.case) == "remediated"
        period = steps.case.attributes["liquidation"]["periods"][-1]
        assert period["condition"] == "otherwise_remedied"
        assert period["resumption_basis"] == "19 U.S.C. 4692(b)(3)"
        assert steps.case.attributes["liquidation"]["status"] == "resumed"
        assert steps.case.open_deadlines == {}

    def test_remediated_in_review_rejected_goes_to_panel(self, open_case):
        """The United States is not satisfied with Mexico's in-review remedy; a panel may follow."""
        steps = suspended(open_case)
        steps.fire("respondent_reports_remediated", "respondent")
        steps.fire("remediation_in_review_rejected", "ustr")
        assert steps.state == "panel_eligible"
        assert steps.case.attributes["flags"] == {
            "panel_eligible_reason": "not_satisfied"
        }
        assert steps.case.attributes["liquidation"]["status"] == "suspended"


class TestLateAnswer:
    def _lapsed_by_tick(self, open_case, engine, clock):
        steps = open_case()
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
        lapse = last_entry(engine, steps.case)
        assert (lapse.event, lapse.role) == ("respondent_answer_lapsed", "system")
        answer = steps.case.deadline("respondent_answer")
        assert answer.lapsed_at is not None
        assert not answer.is_open
        return steps

    def test_refusal_recorded_after_lapse(self, open_case, engine, clock):
        """Mexico refuses after its 10 days lapsed and the engine moved the case on."""
        steps = self._lapsed_by_tick(open_case, engine, clock)
        steps.fire("respondent_declines_late", "respondent", after=timedelta(days=3))
        assert steps.state == "panel_eligible"
        assert steps.case.attributes["flags"] == {
            "panel_eligible_reason": "declined",
            "late_refusal": "yes",
        }

    def test_agreement_recorded_after_lapse(self, open_case, engine, clock):
        """Mexico agrees to review after its 10 days lapsed; the case returns to review."""
        steps = self._lapsed_by_tick(open_case, engine, clock)
        steps.fire("respondent_agrees_late", "respondent")
        assert steps.state == "respondent_reviewing"
        assert steps.case.attributes["flags"]["late_acceptance"] == "yes"

    def test_late_refusal_needs_the_lapse(self, open_case):
        """A refusal within the 10 days is an ordinary refusal, not a late one."""
        steps = open_case()
        with pytest.raises(rrm.TransitionNotAllowed):
            steps.fire("respondent_declines_late", "respondent")
        steps.fire("respondent_declines", "respondent")
        assert steps.case.attributes["flags"] == {"panel_eligible_reason": "declined"}


class TestConsultationsAndAgreement:
    def test_consultations_fail_then_panel_eligible(self, open_case):
        """Mexico declines; the Parties consult without result; a panel may be requested."""
        steps = open_case()
        steps.fire("respondent_declines", "respondent")
        steps.fire("consultations_opened", "respondent", after=timedelta(days=7))
        assert steps.state == "consultations"
        steps.fire("consultations_failed", "ustr", after=timedelta(days=40))
        assert steps.state == "panel_eligible"
        assert (
            steps.case.attributes["flags"]["panel_eligible_reason"]
            == "consultations_failed"
        )
        steps.fire("panel_requested", "ustr")
        assert steps.state == "panel_composition"

    def test_agreement_closes_without_panel(self, open_case, engine):
        """The Parties close the matter by a written agreement after consultations."""
        steps = open_case()
        steps.fire("respondent_declines", "respondent")
        steps.fire("consultations_opened", "ustr")
        with pytest.raises(rrm.InvalidInput, match="respondent_agreement"):
            steps.fire("agreement_reached", "ustr")
        with pytest.raises(rrm.RoleNotAllowed):
            steps.fire("agreement_reached", "respondent", respondent_agreement="x")
        steps.fire(
            "agreement_reached",
            "ustr",
            respondent_agreement="Exchange of letters of 2025-02-14",
        )
        assert steps.state == "closed_by_agreement"
        assert outcome(engine, steps.case) == "closed by agreement"
        assert (
            steps.case.attributes["agreement"]["respondent_agreement"]
            == "Exchange of letters of 2025-02-14"
        )
        assert steps.case.open_deadlines == {}

    def test_agreement_needs_liquidation_basis_when_suspended(self, open_case):
        """With liquidation suspended, an agreement is refused until the resumption basis is said."""
        steps = suspended(open_case)
        steps.fire("respondent_declines", "respondent")
        steps.fire("consultations_opened", "ustr")
        version = steps.case.version
        with pytest.raises(rrm.GuardRejected, match="liquidation is suspended"):
            steps.fire("agreement_reached", "ustr", respondent_agreement="note 12")
        assert steps.engine.get(steps.case.case_id).version == version
        steps.fire(
            "agreement_reached",
            "ustr",
            respondent_agreement="note 12",
            condition="otherwise_remedied",
        )
        assert steps.state == "closed_by_agreement"
        period = steps.case.attributes["liquidation"]["periods"][-1]
        assert period["condition"] == "otherwise_remedied"


class TestCompanyAgreement:
    def _agreed(self, open_case):
        steps = suspended(open_case)
        steps.fire("respondent_agrees", "respondent")
        with pytest.raises(rrm.RoleNotAllowed):
            steps.fire("company_agreement", "respondent", company="Grupo Ejemplo")
        steps.fire(
            "company_agreement",
            "ustr",
            after=timedelta(days=20),
            company="Grupo Ejemplo",
            due="2025-06-30",
            agreement_ref="USTR-company letter of 2025-01-27",
        )
        return steps

    def test_company_commitments_fulfilled(self, open_case, engine):
        """The United States and the company agree commitments; they are fulfilled."""
        steps = self._agreed(open_case)
        assert steps.state == "company_commitments"
        record = steps.case.attributes["company_agreement"]
        assert record["company"] == "Grupo Ejemplo"
        assert record["agreement_ref"] == "USTR-company letter of 2025-01-27"
        # Mexico's review clock stops: the matter left Mexico's review; the
        # date agreed with the company runs instead.
        assert {k: d.due_date for k, d in steps.case.open_deadlines.items()} == {
            "company_commitments_due": date(2025, 6, 30)
        }
        steps.fire("company_commitments_fulfilled", "ustr", after=timedelta(days=120))
        assert steps.case.deadline("company_commitments_due").status is (
            DeadlineStatus.MET
        )
        assert steps.state == "closed_remediated"
        assert outcome(engine, steps.case) == "remediated"
        period = steps.case.attributes["liquidation"]["periods"][-1]
        assert period["condition"] == "otherwise_remedied"

    def test_company_commitments_failed(self, open_case):
        """The company does not keep its commitments; the United States may request a panel."""
        steps = self._agreed(open_case)
        steps.fire("company_commitments_failed", "ustr", after=timedelta(days=160))
        assert steps.state == "panel_eligible"
        assert (
            steps.case.attributes["flags"]["panel_eligible_reason"]
            == "company_agreement_failed"
        )


GROUNDS = [
    "before_entry_into_force",
    "not_covered_facility",
    "not_annex_legislation",
    "other",
]


class TestOutOfScope:
    @pytest.mark.parametrize("grounds", GROUNDS)
    def test_out_of_scope_accepted(self, open_case, engine, grounds):
        """Mexico finds the matter outside the Mechanism and the United States accepts."""
        steps = suspended(open_case)
        steps.fire("respondent_agrees", "respondent")
        steps.fire(
            "respondent_finds_out_of_scope",
            "respondent",
            after=timedelta(days=40),
            grounds=grounds,
            explanation="facts predate the Agreement",
        )
        assert steps.state == "out_of_scope_by_respondent"
        assert last_entry(engine, steps.case).payload["grounds"] == grounds
        assert steps.case.attributes["scope_finding"]["grounds"] == grounds
        assert steps.case.deadline("respondent_review").status is DeadlineStatus.MET
        steps.fire("complainant_accepts_out_of_scope", "ustr", basis="scope accepted")
        assert steps.state == "closed_out_of_scope"
        assert outcome(engine, steps.case) == "out of scope"
        spec = engine.workflows.get("usmca-31a", 2)
        assert outcome(engine, steps.case) != spec.states["closed_no_dor"].outcome
        period = steps.case.attributes["liquidation"]["periods"][-1]
        assert period["resumption_basis"] == "scope accepted"
        assert period["condition"] is None

    def test_out_of_scope_disputed(self, open_case):
        """The United States disagrees that the matter is outside the Mechanism."""
        steps = open_case()
        steps.fire("respondent_finds_out_of_scope", "respondent", grounds="other")
        steps.fire("complainant_disputes_out_of_scope", "ustr")
        assert steps.state == "panel_eligible"
        assert steps.case.attributes["flags"] == {
            "panel_eligible_reason": "disagree_scope"
        }

    def test_panel_finds_no_jurisdiction(self, open_case, engine):
        """The panel finds it has no jurisdiction; the case closes out of scope, not 'no denial'."""
        steps = to_panel(open_case)
        steps.fire("verification_requested", "panel")
        steps.fire("verification_agreed", "respondent")
        steps.fire("verification_completed", "panel", after=timedelta(days=20))
        with pytest.raises(rrm.GuardRejected, match="liquidation is suspended"):
            steps.fire(
                "panel_finds_no_jurisdiction",
                "panel",
                grounds="before_entry_into_force",
            )
        steps.fire(
            "panel_finds_no_jurisdiction",
            "panel",
            after=timedelta(days=25),
            grounds="before_entry_into_force",
            report_ref="MEX-USA-2025-31A-01",
            published_on="2025-04-30",
            basis="panel found no jurisdiction",
        )
        assert steps.state == "closed_out_of_scope"
        assert outcome(engine, steps.case) == "out of scope"
        determination = steps.case.attributes["panel_determination"]
        assert determination["grounds"] == "before_entry_into_force"
        assert determination["report_ref"] == "MEX-USA-2025-31A-01"
        assert steps.case.deadline("panel_determination").status is DeadlineStatus.MET
        period = steps.case.attributes["liquidation"]["periods"][-1]
        assert period["condition"] is None  # not 4692(b)(1): no finding of no denial
        assert period["resumption_basis"] == "panel found no jurisdiction"
        assert engine.facility(FACILITY_ID).determinations == 0

    @pytest.mark.parametrize(
        "event", ["respondent_finds_out_of_scope", "panel_finds_no_jurisdiction"]
    )
    def test_invalid_grounds_refused(self, open_case, event):
        """A grounds value outside the four the workflow names is refused, nothing written."""
        steps = open_case()
        role = "respondent"
        if event == "panel_finds_no_jurisdiction":
            steps.fire("respondent_declines", "respondent")
            steps.fire("panel_requested", "ustr")
            steps.fire("panel_constituted", "secretariat")
            role = "panel"
        version = steps.case.version
        with pytest.raises(rrm.InvalidInput, match="grounds"):
            steps.fire(event, role, grounds="pre_usmca")
        assert steps.engine.get(steps.case.case_id).version == version


class TestIlcReview:
    def test_petition_resolved_during_ilc_review(self, open_case, engine):
        """The ILC finds the matter resolved within its 30-day review; no action is needed."""
        steps = open_case(initiation="petition", role="dol")
        with pytest.raises(rrm.RoleNotAllowed):
            steps.fire("ilc_no_action_needed", "dol")
        steps.fire(
            "ilc_no_action_needed",
            "ilc",
            after=timedelta(days=25),
            explanation="workers reinstated before the review ended",
        )
        assert steps.state == "petition_resolved"
        assert outcome(engine, steps.case) == "resolved during ILC review"
        spec = engine.workflows.get("usmca-31a", 2)
        assert outcome(engine, steps.case) != spec.states["petition_declined"].outcome
        assert steps.case.open_deadlines == {}

    def test_ilc_clock_met_when_resolved(self, open_case):
        """A petition resolved on day 25 of the ILC's review meets its 30-day clock."""
        steps = open_case(initiation="petition", role="dol")
        steps.fire("ilc_no_action_needed", "ilc", after=timedelta(days=25))
        assert steps.case.deadline("ilc_determination").status is DeadlineStatus.MET


class TestSecondRequest:
    def test_second_request_follows_first(self, open_case, engine):
        """A second request on the same facility names the first; the registry counts two."""
        first = open_case()
        first.fire("respondent_declines", "respondent")
        first.fire("request_withdrawn", "ustr")
        assert engine.facility(FACILITY_ID).cases == 1
        second = open_case(payload={"follows": first.case.external_ref})
        assert second.case.attributes["follows"] == {
            "case_id": first.case.case_id,
            "external_ref": first.case.external_ref,
        }
        assert engine.facility(FACILITY_ID).cases == 2
        assert "follows" not in engine.get(first.case.case_id).attributes

    @pytest.mark.parametrize(
        ("initiation", "role"), [("petition", "dol"), ("self_initiated", "ilc")]
    )
    def test_other_openings_take_follows(self, open_case, initiation, role):
        """A petition or a self-initiation on the same facility may follow an earlier case."""
        first = open_case()
        second = open_case(
            initiation=initiation, role=role, payload={"follows": first.case.case_id}
        )
        assert second.case.attributes["follows"]["external_ref"] == (
            first.case.external_ref
        )

    def test_follows_unknown_case_refused(self, open_case, engine):
        """A second request naming a case nobody recorded is refused and nothing is written."""
        open_case()
        before = len(engine.find(limit=1000))
        with pytest.raises(rrm.InvalidInput, match="follows"):
            open_case(payload={"follows": "US-MX-1999-99"})
        assert len(engine.find(limit=1000)) == before
        assert engine.facility(FACILITY_ID).cases == 1

    def test_follows_case_of_other_facility_refused(self, open_case, engine):
        """A request cannot follow a case about another facility; nothing is written."""
        first = open_case()
        with pytest.raises(rrm.InvalidInput, match="MX-FAC-2"):
            open_case(
                facility=OTHER_FACILITY, payload={"follows": first.case.external_ref}
            )
        assert len(engine.find(limit=1000)) == 1
        with pytest.raises(rrm.FacilityNotFound):
            engine.facility(OTHER_FACILITY.facility_id)


FACTS = {
    "legitimation_vote": ("ustr", {"on": "2025-01-03", "result": "CBA rejected"}),
    "union_election": ("dol", {"on": "2025-01-02", "result": "SINTTIA won"}),
    "collective_agreement": ("ilc", {"on": "2025-01-04", "union": "SINTTIA"}),
    "public_statement": ("ustr", {"on": "2024-12-30", "by": "the company"}),
    "facility_winding_down": ("ustr", {"on": "2024-12-20"}),
    "liquidation_resumption_effective": (
        "ustr",
        {"on": "2025-01-05", "notice_ref": "CBP CSMS #123"},
    ),
    "determination_published": ("dol", {"on": "2025-01-01", "report_ref": "R-1"}),
    "other_fact": ("ustr", {"on": "2024-12-31", "description": "plant visit"}),
}


def closed_case(open_case):
    steps = open_case()
    steps.fire("respondent_declines", "respondent")
    steps.fire("request_withdrawn", "ustr")
    return steps


class TestFacts:
    @pytest.mark.parametrize("closed", [False, True], ids=["open", "closed"])
    @pytest.mark.parametrize("fact", sorted(FACTS))
    def test_fact_recorded_without_moving_case(self, open_case, fact, closed):
        """A dated fact is recorded in an open or a closed case and moves nothing."""
        steps = closed_case(open_case) if closed else open_case()
        state = steps.state
        clocks = {k: d.due_date for k, d in steps.case.open_deadlines.items()}
        role, payload = FACTS[fact]
        steps.fire(fact, role, **payload)
        assert steps.state == state
        assert {k: d.due_date for k, d in steps.case.open_deadlines.items()} == clocks
        (item,) = steps.case.attributes["facts"]
        assert item["fact"] == fact
        assert {k: item[k] for k in payload} == payload
        assert "recorded_at" in item

    def test_facts_kept_in_date_order(self, open_case):
        """Facts learnt out of order are kept sorted by their own date."""
        steps = open_case()
        for fact in ("legitimation_vote", "facility_winding_down", "other_fact"):
            role, payload = FACTS[fact]
            steps.fire(fact, role, **payload)
        steps.fire("respondent_declines", "respondent")
        steps.fire("request_withdrawn", "ustr")
        role, payload = FACTS["determination_published"]
        steps.fire("determination_published", role, **payload)
        facts = steps.case.attributes["facts"]
        assert [f["on"] for f in facts] == sorted(f["on"] for f in facts)
        assert [f["fact"] for f in facts] == [
            "facility_winding_down",
            "other_fact",
            "determination_published",
            "legitimation_vote",
        ]

    def test_procedural_event_refused_in_closed_case(self, open_case):
        """A closed case takes facts but no procedural step."""
        steps = closed_case(open_case)
        with pytest.raises(rrm.TransitionNotAllowed):
            steps.fire("panel_requested", "ustr")
        with pytest.raises(rrm.TransitionNotAllowed):
            steps.fire("suspend_liquidation", "ustr")
        assert steps.state == "withdrawn"

    def test_fact_needs_its_date(self, open_case):
        """A fact without its own date ('on') is refused and nothing is written."""
        steps = open_case()
        version = steps.case.version
        with pytest.raises(rrm.InvalidInput, match="on"):
            steps.fire("legitimation_vote", "ustr", result="approved")
        with pytest.raises(rrm.InvalidInput, match="on"):
            steps.fire("legitimation_vote", "ustr", on="2025-13-01")
        assert steps.engine.get(steps.case.case_id).version == version
        assert "facts" not in steps.engine.get(steps.case.case_id).attributes

    def test_fact_roles_enforced(self, open_case):
        """Only USTR records the actual resumption of liquidation."""
        steps = open_case()
        with pytest.raises(rrm.RoleNotAllowed):
            steps.fire("liquidation_resumption_effective", "dol", on="2025-01-05")
        with pytest.raises(rrm.RoleNotAllowed):
            steps.fire("legitimation_vote", "respondent", on="2025-01-05")

    def test_closed_case_offers_its_facts(self, open_case, engine):
        """The events offered on a closed case are the dated facts it still takes."""
        steps = closed_case(open_case)
        offered = {a.transition.event for a in engine.available_events(steps.case)}
        assert offered == set(FACTS)


class TestFactsAfterClosure:
    def test_liquidation_resumed_weeks_after_closing(self, open_case, engine):
        """USTR closes on Mexico's no-denial finding; CBP's resumption notice comes weeks later."""
        steps = suspended(open_case)
        steps.fire("respondent_finds_no_denial", "respondent", after=timedelta(days=30))
        steps.fire(
            "complainant_accepts_no_denial",
            "ustr",
            basis="USTR accepts Mexico's finding",
        )
        closed_at = steps.case.updated_at
        liquidation = steps.case.attributes["liquidation"]
        steps.fire(
            "liquidation_resumption_effective",
            "ustr",
            after=timedelta(weeks=5),
            on="2025-03-10",
            notice_ref="CSMS #65000000",
        )
        assert steps.state == "closed_no_dor"
        assert steps.case.attributes["liquidation"] == liquidation
        (fact,) = steps.case.attributes["facts"]
        assert fact["on"] == "2025-03-10"
        assert fact["recorded_at"] > closed_at.isoformat()
        assert last_entry(engine, steps.case).to_state == "closed_no_dor"

    def test_determination_published_after_closing(self, open_case):
        """A panel's report, dated at its decision, is published weeks after the case closed."""
        steps = to_panel(open_case)
        steps.fire(
            "panel_finds_no_jurisdiction",
            "panel",
            grounds="before_entry_into_force",
            basis="no jurisdiction",
        )
        steps.fire(
            "determination_published",
            "ustr",
            after=timedelta(days=17),
            on="2025-02-03",
            report_ref="MEX-USA-2025-31A-01",
        )
        assert steps.state == "closed_out_of_scope"
        assert steps.case.attributes["facts"][0]["report_ref"] == "MEX-USA-2025-31A-01"


def in_remediation(open_case, **plan):
    steps = open_case()
    steps.fire("respondent_finds_denial", "respondent", after=timedelta(days=30))
    steps.fire("remediation_plan_agreed", "ustr", **plan)
    assert steps.state == "remediation_in_progress"
    return steps


TWO_MILESTONES = [
    {"label": "legitimation vote", "due": "2025-03-20"},
    {"label": "new union registered", "due": "2025-04-15"},
]


class TestMilestones:
    def test_unscheduled_milestone_added_and_met(self, open_case):
        """The Parties add a third milestone to a two-milestone plan; it is later met."""
        steps = in_remediation(open_case, due="2025-06-30", milestones=TWO_MILESTONES)
        steps.fire(
            "milestone_added", "ustr", label="observers' report", due="2025-05-10"
        )
        added = steps.case.open_deadlines["remediation_milestone.3"]
        assert added.due_date == date(2025, 5, 10)
        assert added.label.endswith("observers' report")
        assert len(steps.case.attributes["remediation_plan"]["milestones"]) == 3
        steps.fire("milestone_met", "ustr", milestone=3)
        assert steps.case.deadline("remediation_milestone.3").status is (
            DeadlineStatus.MET
        )
        for n in (1, 2):
            assert steps.case.deadline(f"remediation_milestone.{n}").is_open
        assert steps.case.attributes["remediation_plan"]["milestones"][2]["status"] == (
            "met"
        )
        with pytest.raises(rrm.GuardRejected, match="already recorded as met"):
            steps.fire("milestone_met", "ustr", milestone=3)

    def test_milestone_added_only_during_remediation(self, open_case):
        """No milestone can be added before a course of remediation is agreed."""
        steps = open_case()
        steps.fire("respondent_finds_denial", "respondent")
        with pytest.raises(rrm.TransitionNotAllowed):
            steps.fire("milestone_added", "ustr", label="x", due="2025-05-10")

    def test_plan_without_milestones_opens_no_milestone_clock(self, open_case):
        """A plan with an end date and no milestones opens only its completion clock."""
        steps = in_remediation(open_case, due="2025-06-30")
        assert set(steps.case.open_deadlines) == {"remediation_due"}

    def test_added_milestone_numbered_in_current_plan(self, open_case):
        """After a failed plan and a new one, an added milestone is numbered in the new plan."""
        steps = in_remediation(open_case, due="2025-06-30", milestones=TWO_MILESTONES)
        steps.fire("milestone_added", "ustr", label="extra", due="2025-05-10")
        steps.fire("remediation_failed", "ustr")
        steps.fire(
            "remediation_plan_agreed",
            "ustr",
            due="2025-09-30",
            milestones=[{"label": "second vote", "due": "2025-07-01"}],
        )
        steps.fire("milestone_added", "ustr", label="extra 2", due="2025-08-01")
        assert steps.case.open_deadlines["remediation_milestone.2"].due_date == (
            date(2025, 8, 1)
        )
        steps.fire("milestone_met", "ustr", milestone=2)
        assert steps.case.deadline("remediation_milestone.2").status is (
            DeadlineStatus.MET
        )


class TestUnknownPlanEnd:
    def test_end_date_recorded_later(self, open_case):
        """The plan's end date was never published; it is recorded once known, only once."""
        steps = in_remediation(open_case, milestones=TWO_MILESTONES[:1])
        assert "remediation_due" not in steps.case.open_deadlines
        assert steps.case.deadline("remediation_due") is None
        plan = steps.case.attributes["remediation_plan"]
        assert plan["due_unknown"] is True
        assert plan["due"] is None
        steps.fire(
            "remediation_due_recorded",
            "ustr",
            after=timedelta(days=20),
            due="2025-07-31",
        )
        assert steps.state == "remediation_in_progress"
        assert steps.case.open_deadlines["remediation_due"].due_date == date(
            2025, 7, 31
        )
        plan = steps.case.attributes["remediation_plan"]
        assert plan["due"] == "2025-07-31"
        assert "due_unknown" not in plan
        assert steps.case.open_deadlines["remediation_milestone.1"].due_date == (
            date(2025, 3, 20)
        )
        with pytest.raises(rrm.GuardRejected, match="already has its completion date"):
            steps.fire("remediation_due_recorded", "ustr", due="2025-08-31")

    def test_known_end_date_cannot_be_recorded_again(self, open_case):
        """A plan agreed with its end date refuses a second one (extend the deadline instead)."""
        steps = in_remediation(open_case, due="2025-06-30", milestones=TWO_MILESTONES)
        with pytest.raises(rrm.GuardRejected):
            steps.fire("remediation_due_recorded", "ustr", due="2025-08-31")

    def test_verified_without_end_date_is_otherwise_remedied(self, open_case):
        """Remediation verified while the end date is still unknown resumes liquidation as otherwise remedied."""
        steps = open_case()
        steps.fire("suspend_liquidation", "ustr")
        steps.fire("respondent_finds_denial", "respondent")
        steps.fire("remediation_plan_agreed", "ustr", milestones=TWO_MILESTONES)
        steps.fire("remediation_reported_complete", "respondent")
        steps.fire("remediation_verified", "ustr")
        assert steps.state == "closed_remediated"
        period = steps.case.attributes["liquidation"]["periods"][-1]
        assert period["condition"] == "otherwise_remedied"


def due_dates(case: rrm.Case) -> dict[str, date]:
    return {
        k: d.due_date
        for k, d in case.open_deadlines.items()
        if k in {"respondent_answer", "respondent_review"}
    }


class TestReceiptDate:
    def test_receipt_one_day_later_moves_both_clocks(self, open_case):
        """Mexico received the request the day after it was sent: both clocks run a day later."""
        sent = open_case()
        received = open_case(payload={"received_on": "2025-01-07"})
        assert due_dates(sent.case) == {
            "respondent_answer": date(2025, 1, 16),
            "respondent_review": date(2025, 2, 20),
        }
        assert due_dates(received.case) == {
            "respondent_answer": date(2025, 1, 17),
            "respondent_review": date(2025, 2, 21),
        }
        for key in ("respondent_answer", "respondent_review"):
            text = received.case.open_deadlines[key].explanation
            assert "receipt" in text
            assert "2025-01-06" in text  # sent
            assert "2025-01-07" in text  # received
            assert (
                "no receipt date recorded" in sent.case.open_deadlines[key].explanation
            )

    def test_receipt_on_request_from_petition(self, open_case):
        """A petition's request for review may carry its day of receipt too."""
        steps = open_case(initiation="petition", role="dol")
        steps.fire("ilc_affirmative", "ilc", after=timedelta(days=20))
        # Sent on 2025-01-29 (Wednesday), received on 2025-01-31.
        steps.fire(
            "request_for_review",
            "ustr",
            after=timedelta(days=3),
            received_on="2025-01-31",
        )
        assert due_dates(steps.case) == {
            "respondent_answer": date(2025, 2, 10),
            "respondent_review": date(2025, 3, 17),
        }
        text = steps.case.open_deadlines["respondent_answer"].explanation
        assert "sent 2025-01-29" in text
        assert "2025-01-31" in text

    def test_receipt_recorded_later_redates_open_clocks(self, open_case):
        """The day of receipt, learnt after the sending, re-dates both open clocks."""
        steps = open_case()
        old = dict(steps.case.open_deadlines)
        steps.fire("request_receipt_recorded", "ustr", received_on="2025-01-08")
        assert steps.state == "review_requested"
        assert due_dates(steps.case) == {
            "respondent_answer": date(2025, 1, 18),
            "respondent_review": date(2025, 2, 22),
        }
        for key, before in old.items():
            superseded = next(
                d for d in steps.case.deadlines if d.deadline_id == before.deadline_id
            )
            assert superseded.status is DeadlineStatus.CANCELLED
            new = steps.case.open_deadlines[key]
            assert new.deadline_id != before.deadline_id
            assert new.status is DeadlineStatus.OPEN
            assert "2025-01-06" in new.explanation
            assert "2025-01-08" in new.explanation
        assert len(steps.case.deadlines) == 4

    def test_receipt_recorded_during_review_redates_review_only(self, open_case):
        """Once Mexico agreed, the receipt date re-dates only the 45-day review clock."""
        steps = open_case()
        steps.fire("respondent_agrees", "respondent", after=timedelta(days=3))
        steps.fire("request_receipt_recorded", "respondent", received_on="2025-01-07")
        assert steps.case.deadline("respondent_answer").status is DeadlineStatus.MET
        assert steps.case.deadline("respondent_answer").due_date == date(2025, 1, 16)
        assert due_dates(steps.case) == {"respondent_review": date(2025, 2, 21)}

    def test_receipt_before_sending_refused(self, open_case, engine):
        """A day of receipt before the sending is refused, at opening and later."""
        with pytest.raises(rrm.InvalidInput, match="received_on"):
            open_case(payload={"received_on": "2025-01-05"})
        assert engine.find(limit=1000) == []
        steps = open_case()
        version = steps.case.version
        with pytest.raises(rrm.InvalidInput, match="received_on"):
            steps.fire("request_receipt_recorded", "ustr", received_on="2025-01-05")
        assert engine.get(steps.case.case_id).version == version

    def test_extended_clock_not_redated(self, open_case, engine):
        """A clock the Parties extended keeps its agreed date when the receipt is recorded."""
        steps = open_case()
        steps.case = engine.extend(
            rrm.ExtendDeadline(
                case_id=steps.case.case_id,
                key="respondent_review",
                new_date=date(2025, 3, 10),
                actor="officer:ustr",
                role="ustr",
                reason="agreed by the Parties",
            )
        )
        review = steps.case.open_deadlines["respondent_review"]
        steps.fire("request_receipt_recorded", "ustr", received_on="2025-01-07")
        assert steps.case.open_deadlines["respondent_review"].deadline_id == (
            review.deadline_id
        )
        assert due_dates(steps.case) == {
            "respondent_answer": date(2025, 1, 17),
            "respondent_review": date(2025, 3, 10),
        }

    def test_receipt_date_can_be_corrected(self, open_case):
        """A receipt date recorded in error is corrected to an earlier day after the sending."""
        steps = open_case()
        steps.fire("request_receipt_recorded", "ustr", received_on="2025-01-08")
        steps.fire("request_receipt_recorded", "ustr", received_on="2025-01-07")
        assert due_dates(steps.case) == {
            "respondent_answer": date(2025, 1, 17),
            "respondent_review": date(2025, 2, 21),
        }
        assert (
            "sent 2025-01-06"
            in steps.case.open_deadlines["respondent_answer"].explanation
        )


class TestLiquidationConditions:
    @pytest.mark.parametrize(
        ("event", "extra"),
        [
            ("resume_liquidation", {}),
            ("complainant_accepts_no_denial", {}),
            ("request_withdrawn", {}),
        ],
    )
    def test_policy_refused_basis_accepted(self, open_case, event, extra):
        """'policy' is no liquidation condition in v2; a basis stated in USTR's words is."""
        steps = suspended(open_case)
        if event == "complainant_accepts_no_denial":
            steps.fire("respondent_finds_no_denial", "respondent")
        version = steps.case.version
        with pytest.raises(rrm.InvalidInput, match="must be one of otherwise_remedied"):
            steps.fire(event, "ustr", condition="policy", **extra)
        assert steps.engine.get(steps.case.case_id).version == version
        steps.fire(event, "ustr", basis="USTR decision of 2025-02-01", **extra)
        liquidation = steps.case.attributes["liquidation"]
        assert liquidation["status"] == "resumed"
        assert liquidation["periods"][-1]["condition"] is None
        assert liquidation["periods"][-1]["resumption_basis"] == (
            "USTR decision of 2025-02-01"
        )

    def test_policy_still_valid_on_v1(self, open_case):
        """A case kept on v1 still takes v1's 'policy' condition."""
        steps = open_case(workflow_version=1)
        assert steps.case.workflow_version == 1
        steps.fire("suspend_liquidation", "ustr")
        steps.fire("resume_liquidation", "ustr", condition="policy")
        period = steps.case.attributes["liquidation"]["periods"][-1]
        assert period["condition"] == "policy"

    def test_accept_no_denial_needs_a_basis_while_suspended(self, open_case, engine):
        """No case closes with liquidation silently left suspended; the label says so."""
        steps = suspended(open_case)
        steps.fire("respondent_finds_no_denial", "respondent")
        version = steps.case.version
        with pytest.raises(rrm.GuardRejected, match="basis"):
            steps.fire("complainant_accepts_no_denial", "ustr")
        assert engine.get(steps.case.case_id).version == version
        spec = engine.workflows.get("usmca-31a", 2)
        label = next(
            t.label
            for t in spec.transitions
            if t.event == "complainant_accepts_no_denial"
        )
        assert "still suspended" not in label
        assert "basis" in label
