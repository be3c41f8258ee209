"""Load a host's own workflow definition next to the bundled calendars and run it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import rrm
from rrm.testing import FakeClock

folder = Path(__file__).parent
workflows = rrm.load_workflows(folder)  # validates my-flow/v1.toml; bundled calendars
clock = FakeClock(datetime(2025, 7, 1, 14, tzinfo=UTC))
engine = rrm.bootstrap("sqlite://", clock=clock, workflows=workflows, upgrade=True)

case = engine.open_case(
    rrm.OpenCase(
        workflow="my-flow",
        initiation="intake",
        complainant="US",
        respondent="MX",
        facility=rrm.Facility(
            facility_id="F-9", name="Plant 9", owner="Owner 9", country=rrm.Party.MX
        ),
        claim=rrm.Claim(basis="annex_23a_legislation", sector_category="agriculture"),
        external_ref="SCREEN-1",
        actor="officer:sam",
        role="screener",
    )
)
due = case.open_deadlines["screening_done"]
print("screening due", due.due_date, "-", due.explanation)

clock.advance(timedelta(days=2))
try:
    engine.fire(
        rrm.FireEvent(
            case_id=case.case_id, event="forward", actor="officer:sam", role="screener"
        )
    )
except rrm.GuardRejected as refused:
    print("refused:", refused)
case = engine.fire(
    rrm.FireEvent(
        case_id=case.case_id,
        event="return_to_petitioner",
        actor="officer:sam",
        role="screener",
        payload={"missing": "facility's sector"},
    )
)
print("final state:", case.state)
assert case.state == "returned"
