"""The real public cases, replayed at their recorded dates, end where their record says.

Each replay takes its dates from ``tests/data/public-cases.json``. Where a record has no
date for a step the procedure requires (for example the ILC determination, which is not
public), the step is recorded on the latest date it can have had and its payload says
so (``date_precision``); nothing is invented silently.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

import rrm

RECORDS = {
    r["case_id"]: r
    for r in json.loads(
        (Path(__file__).parent.parent / "data" / "public-cases.json").read_text()
    )
}

# (expected final state, words the record's status must contain)
EXPECTED = {
    "US-MX-2021-01": ("closed_remediated", "closed"),
    "US-MX-2023-01": ("closed_facility_closed", "facility closure"),
    "US-MX-2023-06": ("closed_no_dor", "panel determination against complainant"),
    "US-MX-2024-01": ("dor_determined", "open after panel determination"),
    "CA-MX-2023-01": ("closed", "closed"),
    "US-PET-2022-01": ("petition_declined", "not pursued"),
}

Step = tuple[str, str, str, dict[str, Any]]  # (date, event, role, payload)


def on(rec: dict[str, Any], kind: str) -> str:
    """The day-precision date of the record's first event of *kind*."""
    for e in rec["events"]:
        if e["type"] == kind and e["date"] and len(e["date"]) == 10:
            return str(e["date"])
    raise LookupError(f"{rec['case_id']}: no dated {kind}")


def derived(why: str) -> dict[str, Any]:
    return {"date_precision": "derived", "note": why}


def gm(rec: dict[str, Any]) -> list[Step]:
    req = on(rec, "request_for_review")
    plan = rec["published_deadlines"]
    return [
        (
            req,
            "ustr_initiates",
            "ustr",
            derived("decision date not public; request date"),
        ),
        (req, "request_for_review", "ustr", {}),
        (on(rec, "liquidation_suspended"), "suspend_liquidation", "ustr", {}),
        (req, "respondent_agrees", "respondent", {"date_precision": "approx"}),
        (
            rec["respondent_determination_date"],
            "respondent_finds_denial",
            "respondent",
            {"date_precision": "derived"},
        ),
        (
            on(rec, "remediation_plan_agreed"),
            "remediation_plan_agreed",
            "ustr",
            {
                "due": plan["agreed_remediation_end_date"],
                "milestones": [
                    {
                        "label": "new legitimation vote",
                        "due": plan["new_legitimation_vote_by"],
                    }
                ],
            },
        ),
        (
            "2022-05-27",
            "remediation_reported_complete",
            "ustr",
            derived("USTR statement after workers approved the new CBA"),
        ),
        (
            "2022-05-27",
            "remediation_verified",
            "ustr",
            derived("USTR statement after workers approved the new CBA"),
        ),
    ]


def vu(rec: dict[str, Any]) -> list[Step]:
    plan = rec["published_deadlines"]
    return [
        (on(rec, "liquidation_suspended"), "suspend_liquidation", "ustr", {}),
        (on(rec, "respondent_agreed_review"), "respondent_agrees", "respondent", {}),
        (
            on(rec, "respondent_determination"),
            "respondent_finds_denial",
            "respondent",
            {},
        ),
        (
            on(rec, "remediation_plan_agreed"),
            "remediation_plan_agreed",
            "ustr",
            {
                "due": plan["agreed_remediation_date"],
                "milestones": [
                    {
                        "label": "first company actions",
                        "due": plan["first_company_action_deadline"],
                    }
                ],
            },
        ),
        (
            "2023-10-10",
            "facility_closed",
            "ustr",
            {
                "date_precision": "approx",
                "note": "Warren News ref 2310100066",
                "basis": "matter terminated by the Parties (USTR to monitor payments)",
            },
        ),
    ]


def san_martin(rec: dict[str, Any]) -> list[Step]:
    req = on(rec, "request_for_review")
    panel = rec["panel"]
    return [
        (
            req,
            "ilc_affirmative",
            "ilc",
            derived("ILC date not public; latest possible"),
        ),
        (req, "request_for_review", "ustr", {}),
        (on(rec, "liquidation_suspended"), "suspend_liquidation", "ustr", {}),
        (
            on(rec, "respondent_determination"),
            "respondent_finds_no_denial",
            "respondent",
            {"grounds": rec["respondent_determination"]},
        ),
        (
            panel["requested_date"],
            "complainant_disputes_no_denial",
            "ustr",
            derived("disagreement shown by the panel request"),
        ),
        (panel["requested_date"], "panel_requested", "ustr", {}),
        (
            panel["constituted_date"],
            "panel_constituted",
            "secretariat",
            {"panelists": panel["panelists"]},
        ),
        (
            panel["determination_date"],
            "panel_finds_no_denial",
            "panel",
            {
                "published_on": panel["determination_published_date"],
                "grounds": panel["outcome"],
            },
        ),
    ]


def atento(rec: dict[str, Any]) -> list[Step]:
    req = on(rec, "request_for_review")
    panel = rec["panel"]
    return [
        (
            req,
            "ilc_affirmative",
            "ilc",
            derived("ILC date not public; latest possible"),
        ),
        (req, "request_for_review", "ustr", {}),
        (on(rec, "respondent_agreed_review"), "respondent_agrees", "respondent", {}),
        (
            "2024-03-31",
            "respondent_finds_denial",
            "respondent",
            {"date_precision": "month", "note": rec["respondent_determination"]},
        ),
        (
            panel["requested_date"],
            "remediation_not_agreed",
            "ustr",
            derived("shown by the panel request"),
        ),
        (
            panel["requested_date"],
            "panel_requested",
            "ustr",
            {"panel_ref": panel["case_number"]},
        ),
        (
            panel["determination_date"],
            "panel_constituted",
            "secretariat",
            derived("constitution date not found; latest possible"),
        ),
        (
            panel["determination_date"],
            "panel_finds_denial",
            "panel",
            {"published_on": panel["determination_published_date"]},
        ),
    ]


def canada(rec: dict[str, Any]) -> list[Step]:
    req = on(rec, "request_for_review")
    return [
        (req, "nao_finds_basis", "nao", derived("NAO finding shown by the request")),
        (req, "request_for_review", "complainant", {}),
        (
            on(rec, "case_closed"),
            "case_closed",
            "complainant",
            {"outcome": rec["outcome"]},
        ),
    ]


def bbb(rec: dict[str, Any]) -> list[Step]:
    return [("2022-09-06", "ilc_negative", "ilc", {"date_precision": "approx"})]


# case id -> (workflow, opening, opening role, opening date, complainant, steps)
REPLAYS = {
    "US-MX-2021-01": ("usmca-31a", "self_initiated", "ilc", "request_date", "US", gm),
    "US-MX-2023-01": ("usmca-31a", "request", "ustr", "request_date", "US", vu),
    "US-MX-2023-06": (
        "usmca-31a",
        "petition",
        "dol",
        "petition_date",
        "US",
        san_martin,
    ),
    "US-MX-2024-01": ("usmca-31a", "petition", "dol", "petition_date", "US", atento),
    "CA-MX-2023-01": ("usmca-31b", "claim", "nao", "petition_date", "CA", canada),
    "US-PET-2022-01": ("usmca-31a", "petition", "dol", "2022-08-01", "US", bbb),
}


def instant(day: str) -> datetime:
    return datetime.combine(date.fromisoformat(day), datetime.min.time(), UTC).replace(
        hour=17
    )


def opening_payload(rec: dict[str, Any], opening: str, when: str) -> dict[str, Any]:
    payload: dict[str, Any] = {}
    if not rec.get(when):
        payload.update(
            date_precision="month", note="petition filed early in that month"
        )
    if opening == "claim":
        # Unifor, the first petitioner, is a union established in Canada.
        payload["submitter_category"] = "organization_in_canada"
    return payload


def replay(engine: rrm.CaseEngine, case_id: str) -> rrm.Case:
    rec = RECORDS[case_id]
    workflow, opening, role, when, complainant, steps = REPLAYS[case_id]
    opened_on = rec.get(when) or when
    case = engine.open_case(
        rrm.OpenCase(
            workflow=workflow,
            initiation=opening,
            complainant=complainant,
            respondent="MX",
            facility=rrm.Facility(
                facility_id=case_id,
                name=rec["facility"],
                owner=rec["company"],
                country=rrm.Party.MX,
                city=rec["city"],
                region=rec["state"],
                sector=rec["sector"],
            ),
            claim=rrm.Claim(
                basis="annex_23a_legislation",
                sector_category=(
                    "services"
                    if "call" in rec["sector"] or "telecom" in rec["sector"]
                    else "mining"
                    if "mining" in rec["sector"]
                    else "manufacturing"
                ),
            ),
            petitioners=tuple(rrm.Petitioner(name=p) for p in rec["petitioners"]),
            external_ref=case_id,
            actor=f"import:{role}",
            role=role,
            at=instant(opened_on),
            payload=opening_payload(rec, opening, when),
        )
    )
    for day, event, actor_role, payload in steps(rec):
        case = engine.fire(
            rrm.FireEvent(
                case_id=case.case_id,
                event=event,
                actor=f"import:{actor_role}",
                role=actor_role,
                payload=payload,
                at=instant(day),
            )
        )
    return case


@pytest.fixture(name="late_clock")
def _late_clock(clock: Any) -> Any:
    clock.set(datetime(2026, 1, 5, tzinfo=UTC))
    return clock


class TestPublicCases:
    @pytest.mark.parametrize("case_id", sorted(REPLAYS))
    def test_replay_ends_in_recorded_state(self, engine, late_clock, case_id):
        """Replaying the record at its real dates ends in the state its status shows."""
        state, words = EXPECTED[case_id]
        assert words in RECORDS[case_id]["status"]
        case = replay(engine, case_id)
        assert case.state == state
        assert engine.verify(case.case_id).ok

    def test_san_martin_review_met_on_day_45(self, engine, late_clock):
        """Mexico's San Martin answer of 2023-07-31 met the 45-day review clock exactly."""
        case = replay(engine, "US-MX-2023-06")
        review = case.deadline("respondent_review")
        assert review.due_date == date(2023, 7, 31)
        assert review.status is rrm.DeadlineStatus.MET
        assert review.closed_at is not None and review.closed_at < review.due_at
        composition = case.deadline("panel_composition")
        assert (
            composition.closed_at is not None
            and composition.closed_at > composition.due_at
        )

    def test_atento_review_result_came_late(self, engine, late_clock):
        """Atento's review result (end of March 2024) came after day 45 (2024-03-03)."""
        case = replay(engine, "US-MX-2024-01")
        review = case.deadline("respondent_review")
        assert review.due_date == date(2024, 3, 3)
        assert review.closed_at is not None and review.closed_at > review.due_at

    def test_gm_liquidation_resumed_as_otherwise_remedied(self, engine, late_clock):
        """GM Silao's remediation, verified after the agreed date, resumed liquidation under 4692(b)(3)."""
        case = replay(engine, "US-MX-2021-01")
        period = case.attributes["liquidation"]["periods"][-1]
        assert period["suspended_at"].startswith("2021-05-12")
        assert period["condition"] == "otherwise_remedied"
