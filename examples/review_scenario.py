"""Walk one U.S. case through review and the panel stage on an embedded database.

Run it with a folder for the SQLite file (default: a new temporary folder):

    python examples/review_scenario.py [FOLDER]

Simulated time moves with a fake clock; every deadline prints with its plain-language
explanation, and numbers that rest on recalled, unverified treaty text say "nominal".
"""

from __future__ import annotations

import logging
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import structlog

import rrm
from rrm.testing import FakeClock

FACILITY = rrm.Facility(
    facility_id="MX-MINE-7",
    name="Mina Ejemplo (fictional)",
    owner="Grupo Minero Ejemplo",
    country=rrm.Party.MX,
    city="Cananea",
    region="Sonora",
    sector="copper mining",
)


def show(case: rrm.Case) -> None:
    print(f"\n== {case.external_ref}: state {case.state} (version {case.version})")
    for d in case.deadlines:
        mark = " [NOMINAL]" if d.nominal else ""
        print(f"   {d.status.value:9} {d.key:22} due {d.due_date}{mark}")
        print(f"             {d.explanation}")


def main(folder: Path) -> int:
    # The host decides what RRM's structured logs do; here: warnings and above only.
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING)
    )
    clock = FakeClock(datetime(2025, 3, 3, 16, tzinfo=UTC))
    db = f"sqlite:///{folder / 'rrm.sqlite'}"
    engine = rrm.bootstrap(db, clock=clock, upgrade=True)
    case = engine.open_case(
        rrm.OpenCase(
            workflow="usmca-31a",
            initiation="petition",
            complainant="US",
            respondent="MX",
            facility=FACILITY,
            claim=rrm.Claim(
                basis="annex_23a_legislation",
                sector_category="mining",
                legal_provisions=("LFT Art. 133",),
            ),
            petitioners=(rrm.Petitioner(name="(confidential)", confidential=True),),
            officers=(rrm.Officer(officer_id="ana", role="ustr"),),
            external_ref="DEMO-2025-01",
            actor="officer:otla",
            role="dol",
        )
    )
    show(case)
    steps = [
        (20, "ilc_affirmative", "ilc", {}),
        (7, "request_for_review", "ustr", {}),
        (0, "suspend_liquidation", "ustr", {"basis": "19 U.S.C. 4692(a)"}),
        (5, "respondent_agrees", "respondent", {}),
        (40, "respondent_finds_no_denial", "respondent", {"grounds": "outside scope"}),
        (14, "complainant_disputes_no_denial", "ustr", {}),
        (1, "panel_requested", "ustr", {}),
        (6, "panel_constituted", "secretariat", {"panelists": ["A", "B", "C"]}),
        (4, "verification_requested", "panel", {}),
        (5, "verification_agreed", "respondent", {}),
        (25, "verification_completed", "panel", {}),
        (120, "panel_finds_no_denial", "panel", {"report_ref": "MEX-USA-2025-31A-99"}),
    ]
    for days, event, role, payload in steps:
        clock.advance(timedelta(days=days))
        overdue = [d.key for d in engine.overdue()]
        if overdue:
            print(f"\n   overdue on {clock.now().date()}: {', '.join(overdue)}")
        case = engine.fire(
            rrm.FireEvent(
                case_id=case.case_id,
                event=event,
                actor=f"officer:{role}",
                role=role,
                payload=payload,
                expected_version=case.version,
            )
        )
        print(f"\n-> {clock.now().date()} {event}")
    show(case)
    print("\nLiquidation:", case.attributes["liquidation"])
    report = engine.verify(case.case_id)
    print(f"History: {report.entries} entries, chain intact: {report.ok}")
    return 0 if report.ok and case.state == "closed_no_dor" else 1


if __name__ == "__main__":
    if len(sys.argv) > 1:
        target = Path(sys.argv[1])
        target.mkdir(parents=True, exist_ok=True)
        sys.exit(main(target))
    with tempfile.TemporaryDirectory() as tmp:
        sys.exit(main(Path(tmp)))
