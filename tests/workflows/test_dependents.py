"""Deadlines anchored on another deadline move when it is extended or tolled."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

import rrm

FLOW = """
[workflow]
id = "chain"
version = 1
title = "A test flow whose second clock counts from the first one's due date"
annex = "31-A"

[calendars]
US = "us-federal"
MX = "mx-federal"

[roles]
officer = "Case officer"

[[directions]]
complainant = "US"
respondent = "MX"
openings = ["start"]

[states.waiting]
label = "Waiting"

[states.done]
label = "Done"
terminal = true

[openings.start]
event = "started"
state = "waiting"
roles = ["officer"]
label = "Start"
citation = "Test rule 1"
evidence = "V"

[deadlines.first]
label = "First answer"
actor = "officer"
days = 10
anchor_label = "the start"
opened_by = ["started"]
active_in = ["waiting"]
met_by = ["finished"]
citation = "Test rule 2"
evidence = "V"

[deadlines.second]
label = "Follow-up, five business days after the first answer was due"
actor = "officer"
days = 5
counting = "business"
anchor = "deadline:first"
anchor_label = "the first answer's due date"
opened_by = ["started"]
active_in = ["waiting"]
met_by = ["finished"]
citation = "Test rule 3"
evidence = "R"

[deadlines.third]
label = "Close-out, two days after the follow-up"
actor = "officer"
days = 2
anchor = "deadline:second"
anchor_label = "the follow-up's due date"
opened_by = ["started"]
active_in = ["waiting"]
met_by = ["finished"]
citation = "Test rule 4"
evidence = "R"

[[transitions]]
event = "finished"
source = ["waiting"]
dest = "done"
roles = ["officer"]
label = "Finish"
citation = "Test rule 5"
evidence = "V"
"""


@pytest.fixture(name="chain_engine")
def _chain_engine(tmp_path: Path, clock, sql_engine_for) -> rrm.CaseEngine:
    folder = tmp_path / "flows"
    (folder / "chain").mkdir(parents=True)
    (folder / "chain" / "v1.toml").write_text(FLOW)
    return rrm.bootstrap(
        sql_engine_for(f"sqlite:///{tmp_path / 'c.sqlite'}"),
        clock=clock,
        workflows=folder,
        upgrade=True,
    )


def open_chain(engine: rrm.CaseEngine) -> rrm.Case:
    return engine.open_case(
        rrm.OpenCase(
            workflow="chain",
            initiation="start",
            complainant="US",
            respondent="MX",
            facility=rrm.Facility(
                facility_id="F", name="F", owner="O", country=rrm.Party.MX
            ),
            claim=rrm.Claim(basis="annex_23a_legislation", sector_category="mining"),
            external_ref="C-1",
            actor="a",
            role="officer",
        )
    )


class TestDependents:
    def test_anchored_deadlines_count_from_due_dates(self, chain_engine):
        """A deadline anchored on another counts from that deadline's due date."""
        case = open_chain(chain_engine)
        d = case.open_deadlines
        assert d["first"].due_date == date(2025, 1, 16)
        assert d["second"].due_date == date(2025, 1, 23)
        assert d["third"].due_date == date(2025, 1, 25)

    def test_extension_recomputes_the_chain(self, chain_engine, clock):
        """Extending the first deadline moves the second and, through it, the third."""
        case = open_chain(chain_engine)
        clock.advance(timedelta(days=2))
        case = chain_engine.extend(
            rrm.ExtendDeadline(
                case_id=case.case_id,
                key="first",
                new_date=date(2025, 1, 30),
                actor="a",
                role="officer",
                reason="Parties agreed more time",
            )
        )
        d = case.open_deadlines
        assert d["first"].due_date == date(2025, 1, 30)
        # Five Mexican business days after 30 January skip Constitution Day (3 Feb).
        assert d["second"].due_date == date(2025, 2, 7)
        assert d["third"].due_date == date(2025, 2, 9)
        entry = chain_engine.history(case.case_id)[-1]
        assert entry.reason == "Parties agreed more time"
        assert entry.payload == {
            "deadline": "first",
            "previous_due": "2025-01-16",
            "new_due": "2025-01-30",
            "moved": {"second": "2025-02-07", "third": "2025-02-09"},
        }

    def test_tolling_recomputes_the_chain(self, chain_engine, clock):
        """Pausing and resuming the first deadline moves its dependents by the same days."""
        case = open_chain(chain_engine)
        common = {
            "case_id": case.case_id,
            "key": "first",
            "actor": "a",
            "role": "officer",
            "reason": "Secretariat closed",
        }
        clock.advance(timedelta(days=1))
        chain_engine.pause(rrm.PauseDeadline(**common))
        clock.advance(timedelta(days=3))
        case = chain_engine.resume(rrm.ResumeDeadline(**common))
        d = case.open_deadlines
        assert d["first"].due_date == date(2025, 1, 19)
        assert d["second"].due_date == date(2025, 1, 24)
        assert d["third"].due_date == date(2025, 1, 26)


class TestCycles:
    def test_anchor_cycle_is_rejected(self, tmp_path):
        """Two deadlines anchored on each other are rejected at load time."""
        folder = tmp_path / "flows"
        (folder / "chain").mkdir(parents=True)
        text = FLOW.replace(
            'anchor_label = "the start"',
            'anchor = "deadline:third"\nanchor_label = "the start"',
        )
        (folder / "chain" / "v1.toml").write_text(text)
        with pytest.raises(rrm.InvalidWorkflow, match="cycle"):
            rrm.load_workflows(folder)


class TestAgreedDependents:
    def test_moving_the_anchor_never_shortens_an_agreed_extension(
        self, chain_engine, clock
    ):
        """A dependent extended by agreement keeps its date when its anchor moves slightly."""
        case = open_chain(chain_engine)
        common = {
            "case_id": case.case_id,
            "actor": "a",
            "role": "officer",
            "reason": "agreed",
        }
        chain_engine.extend(
            rrm.ExtendDeadline(key="second", new_date=date(2025, 3, 31), **common)
        )
        case = chain_engine.extend(
            rrm.ExtendDeadline(key="first", new_date=date(2025, 1, 17), **common)
        )
        assert case.open_deadlines["second"].due_date == date(2025, 3, 31)
