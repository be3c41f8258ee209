"""Case import and export: whole records out, real histories in, on both backends.

Exports are made on an in-memory SQLite engine and imported into the ``engine``
fixture, a fresh database of the backend under test (SQLite, and PostgreSQL when
``--rrm-postgres`` is given).
"""

from __future__ import annotations

import copy
import importlib.util
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest

import rrm
from rrm.service.transfer import export_case, import_cases
from rrm.testing import FakeClock, skip

REPO = Path(__file__).resolve().parents[2]
PUBLIC = REPO / "tests" / "data" / "public-cases"
SCHEMA = json.loads((REPO / "rrm" / "schemas" / "case.schema.json").read_text())
START = datetime(2025, 1, 6, 15, 0, tzinfo=UTC)

# The same expectations as tests/workflows/test_public_cases.py.
EXPECTED = {
    "US-MX-2021-01": "closed_remediated",
    "US-MX-2023-01": "closed_facility_closed",
    "US-MX-2023-06": "closed_no_dor",
    "US-MX-2024-01": "dor_determined",
    "CA-MX-2023-01": "closed",
    "US-PET-2022-01": "petition_declined",
}


def load(name: str) -> dict[str, Any]:
    return json.loads((PUBLIC / f"{name}.json").read_text())


def public_replay_module() -> Any:
    """The replay of tests/workflows/test_public_cases.py, loaded by path."""
    path = REPO / "tests" / "workflows" / "test_public_cases.py"
    spec = importlib.util.spec_from_file_location("public_cases_replay", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def facts(entries: list[rrm.HistoryEntry]) -> list[tuple[Any, ...]]:
    return [(e.event, e.occurred_at, e.role, dict(e.payload)) for e in entries]


def procedural(entries: list[rrm.HistoryEntry]) -> list[tuple[Any, ...]]:
    """History facts an import reproduces in place (lapses too; not assignments)."""
    return facts([e for e in entries if e.event != "officers_assigned"])


def deadline_facts(case: rrm.Case) -> list[tuple[Any, ...]]:
    return sorted(
        (
            d.key,
            d.status,
            d.due_date,
            d.due_at,
            d.opened_at,
            d.closed_at,
            d.extensions,
            d.lapsed_at,
        )
        for d in case.deadlines
    )


@pytest.fixture(name="late_clock")
def _late_clock(clock: Any) -> Any:
    clock.set(datetime(2026, 1, 5, tzinfo=UTC))
    return clock


@pytest.fixture(name="source")
def _source(workflows: Any) -> tuple[rrm.CaseEngine, FakeClock]:
    """An engine holding one case with every kind of entry the engine writes."""
    clock = FakeClock(START)
    engine = rrm.bootstrap("sqlite://", clock=clock, workflows=workflows, upgrade=True)
    case = engine.open_case(
        rrm.OpenCase(
            workflow="usmca-31a",
            initiation="request",
            complainant="US",
            respondent="MX",
            facility=rrm.Facility(
                facility_id="MX-001",
                name="Planta Norte",
                owner="Grupo Ejemplo",
                country=rrm.Party.MX,
            ),
            claim=rrm.Claim(
                basis="annex_23a_legislation", sector_category="manufacturing"
            ),
            petitioners=(rrm.Petitioner(name="Local union", confidential=True),),
            officers=(
                rrm.Officer(officer_id="ana", role="ustr", email="ana@example.gov"),
            ),
            external_ref="USTR-2025-001",
            actor="officer:ana",
            role="ustr",
        )
    )
    ana = {"case_id": case.case_id, "actor": "officer:ana", "role": "ustr"}
    clock.advance(timedelta(days=1))
    engine.fire(
        rrm.FireEvent(event="suspend_liquidation", idempotency_key="ustr-17", **ana)
    )
    engine.pause(
        rrm.PauseDeadline(key="respondent_review", reason="Secretariat closed", **ana)
    )
    clock.advance(timedelta(days=2))
    engine.resume(rrm.ResumeDeadline(key="respondent_review", reason="open", **ana))
    engine.assign(
        rrm.AssignOfficers(
            assign=(
                rrm.Officer(officer_id="sam", role="supervisor", email="s@ex.gov"),
            ),
            **ana,
        )
    )
    engine.extend(
        rrm.ExtendDeadline(
            key="respondent_answer",
            new_date=date(2025, 1, 20),
            reason="agreed by both Parties",
            **ana,
        )
    )
    # Mexico stays silent: the engine records the lapse and makes the case
    # panel-eligible as the role "system".
    skip(engine, clock, by=timedelta(days=20))
    return engine, clock


class TestExport:
    def test_export_holds_the_whole_record(self, source):
        """An export names its format and carries case, history, deadlines and alerts."""
        engine, _ = source
        doc = export_case(engine, "USTR-2025-001")
        assert doc["format"] == "rrm-case/1"
        assert doc["case"]["workflow"] == "usmca-31a"
        assert doc["case"]["workflow_version"] == 2
        assert doc["case"]["claim"]["basis"] == "annex_23a_legislation"
        assert doc["case"]["petitioners"][0]["confidential"] is True
        events = [e["event"] for e in doc["history"]]
        assert "deadline_missed" in events and "respondent_answer_lapsed" in events
        assert doc["history"][0]["occurred_at"] == "2025-01-06T15:00:00+00:00"
        assert {d["key"] for d in doc["deadlines"]} >= {"respondent_answer"}
        assert doc["alerts"] and "status" in doc["alerts"][0]
        json.dumps(doc)  # nothing but JSON values

    def test_export_validates_against_the_schema(self, source):
        """An exported record satisfies the published JSON Schema."""
        engine, _ = source
        jsonschema.validate(export_case(engine, "USTR-2025-001"), SCHEMA)


class TestRoundTrip:
    def test_import_reproduces_states_deadlines_and_history(self, engine, source):
        """Exporting and importing into a fresh engine gives the same case record."""
        origin, clock = source
        engine.clock.set(clock.now())
        doc = export_case(origin, "USTR-2025-001")

        report = import_cases(engine, [doc], sources=["ustr-2025-001.json"])

        assert [
            (c.outcome, c.events_skipped, c.unknown_steps) for c in report.cases
        ] == [("imported", 0, ())]
        before, after = origin.get("USTR-2025-001"), engine.get("USTR-2025-001")
        assert after.state == before.state == "panel_eligible"
        assert deadline_facts(after) == deadline_facts(before)
        assert set(after.officers) == set(before.officers)
        assert after.petitioners == before.petitioners
        assert after.attributes == before.attributes
        old, new = origin.history(before.case_id), engine.history(after.case_id)
        assert procedural(new) == procedural(old)
        assigned = [
            (e.role, dict(e.payload)) for e in new if e.event == "officers_assigned"
        ]
        assert assigned == [
            (e.role, dict(e.payload)) for e in old if e.event == "officers_assigned"
        ]
        assert engine.verify(after.case_id).ok

    def test_importing_twice_changes_nothing(self, engine, source):
        """A second import of the same record reports it unchanged and writes nothing."""
        origin, clock = source
        engine.clock.set(clock.now())
        doc = export_case(origin, "USTR-2025-001")
        import_cases(engine, [doc])
        history = engine.history("USTR-2025-001")

        report = import_cases(engine, [doc])

        assert [c.outcome for c in report.cases] == ["unchanged"]
        assert report.imported == 0 and report.unchanged == 1
        assert engine.history("USTR-2025-001") == history

    def test_a_different_history_for_a_known_reference_is_refused(
        self, engine, late_clock
    ):
        """A document whose history differs from the stored case's is refused, naming the event."""
        import_cases(engine, [load("US-MX-2023-06")])
        changed = load("US-MX-2023-06")
        changed["events"][4]["at"] = "2023-07-30T17:00:00+00:00"

        with pytest.raises(rrm.InvalidInput) as caught:
            import_cases(engine, [changed])

        assert caught.value.field == "events[4]"
        assert "event 5 (respondent_finds_no_denial)" in str(caught.value)
        assert "different history" in str(caught.value)


class TestAtomicity:
    def test_an_illegal_step_rejects_the_whole_file(self, engine, late_clock):
        """An event the state machine refuses rejects the file, naming its position, and writes nothing."""
        doc = load("US-MX-2023-06")
        doc["events"].insert(
            6,
            {
                "at": "2023-08-22T17:00:00+00:00",
                "event": "respondent_agrees",
                "role": "respondent",
            },
        )

        with pytest.raises(rrm.InvalidInput) as caught:
            import_cases(engine, [doc], sources=["san-martin.json"])

        assert caught.value.field == "events[6]"
        message = str(caught.value)
        assert "event 7 (respondent_agrees) of san-martin.json" in message
        assert "panel_eligible" in message
        with pytest.raises(rrm.CaseNotFound):
            engine.get("US-MX-2023-06")

    def test_one_bad_document_keeps_the_whole_batch_out(self, engine, late_clock):
        """When one document of a batch is refused, none of the others is written."""
        bad = load("US-MX-2024-01")
        bad["events"][3]["role"] = "panel"

        with pytest.raises(rrm.InvalidInput) as caught:
            import_cases(engine, [load("US-MX-2023-06"), bad])

        assert caught.value.field == "events[3]"
        assert engine.find() == []


MALFORMED = [
    ("format", lambda d: d.update(format="rrm-history/9")),
    ("extra", lambda d: d.update(extra=1)),
    ("case", lambda d: d.update(case=[])),
    ("case.external_ref", lambda d: d["case"].pop("external_ref")),
    ("case.facility.name", lambda d: d["case"]["facility"].update(name=7)),
    ("case.facility.country", lambda d: d["case"]["facility"].update(country="FR")),
    (
        "case.claim.alleged_conduct_from",
        lambda d: d["case"]["claim"].update(alleged_conduct_from="May 2023"),
    ),
    (
        "case.petitioners[0].confidential",
        lambda d: d["case"]["petitioners"][0].update(confidential="yes"),
    ),
    ("case.workflow", lambda d: d["case"].update(workflow="usmca-99")),
    ("events", lambda d: d.update(events={})),
    ("events", lambda d: d.update(events=[])),
    ("events[2].at", lambda d: d["events"][2].update(at="2023-06-16T17:00:00")),
    ("events[2].at", lambda d: d["events"][2].update(at="16/06/2023")),
    ("events[2].role", lambda d: d["events"][2].pop("role")),
    ("events[2].payload", lambda d: d["events"][2].update(payload=[1])),
    ("events[2].paylod", lambda d: d["events"][2].update(paylod={})),
    ("events[0].event", lambda d: d["events"][0].update(event="request_for_review")),
]


class TestMalformed:
    @pytest.mark.parametrize(
        ("path", "damage"), MALFORMED, ids=[m[0] for m in MALFORMED]
    )
    def test_malformed_documents_name_the_json_path(
        self, engine, late_clock, path, damage
    ):
        """A malformed document raises InvalidInput naming the JSON path, and writes nothing."""
        doc = load("US-MX-2023-06")
        damage(doc)

        with pytest.raises(rrm.InvalidInput) as caught:
            import_cases(engine, [doc], sources=["san-martin.json"])

        assert caught.value.field == path
        assert "san-martin.json" in str(caught.value)
        assert engine.find() == []

    def test_a_document_that_is_not_an_object_is_refused(self, engine):
        """A document that is not a JSON object is refused as such."""
        with pytest.raises(rrm.InvalidInput) as caught:
            import_cases(engine, [["not", "a", "case"]])  # type: ignore[list-item]
        assert caught.value.field == "(document)"


class TestPublicCases:
    @pytest.mark.parametrize("name", sorted(EXPECTED))
    def test_public_case_file_ends_in_the_recorded_state(
        self, engine, late_clock, name
    ):
        """Every public case file imports and ends where its record shows, with the replay's history."""
        report = import_cases(engine, [load(name)], sources=[f"{name}.json"])

        case = engine.get(name)
        assert report.cases[0].outcome == "imported"
        assert case.state == EXPECTED[name]
        assert engine.verify(case.case_id).ok
        module = public_replay_module()
        reference = rrm.bootstrap(
            "sqlite://",
            clock=FakeClock(late_clock.now()),
            workflows=engine.workflows,
            upgrade=True,
        )
        replayed = module.replay(reference, name, 1)
        assert facts(engine.history(case.case_id)) == facts(
            reference.history(replayed.case_id)
        )

    def test_every_public_case_has_a_file(self):
        """The folder holds exactly one file per case of public-cases.json."""
        records = json.loads(
            (REPO / "tests" / "data" / "public-cases.json").read_text()
        )
        assert sorted(p.stem for p in PUBLIC.glob("*.json")) == sorted(
            r["case_id"] for r in records
        )

    def test_san_martin_review_met_on_day_45(self, engine, late_clock):
        """The imported San Martin case met the 45-day review clock on 2023-07-31."""
        import_cases(engine, [load("US-MX-2023-06")])
        review = engine.get("US-MX-2023-06").deadline("respondent_review")
        assert review is not None
        assert review.due_date == date(2023, 7, 31)
        assert review.status is rrm.DeadlineStatus.MET

    def test_the_same_file_twice_in_one_batch_imports_once(self, engine, late_clock):
        """A document repeated within one import creates one case and reports the copy unchanged."""
        report = import_cases(engine, [load("CA-MX-2023-01"), load("CA-MX-2023-01")])
        assert [c.outcome for c in report.cases] == ["imported", "unchanged"]
        assert report.cases[0].case_id == report.cases[1].case_id

    @pytest.mark.parametrize("name", sorted(EXPECTED))
    def test_public_case_file_validates_against_the_schema(self, name):
        """Each example history file satisfies the published JSON Schema."""
        jsonschema.validate(load(name), SCHEMA)

    def test_the_schema_refuses_a_naive_time(self):
        """The schema, like the importer, refuses a date and time without an offset."""
        doc = copy.deepcopy(load("US-MX-2023-06"))
        doc["events"][1]["at"] = "2023-06-16T17:00:00"
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(doc, SCHEMA)


def _second_request_doc(ref: str, follows: str | None = None) -> dict[str, Any]:
    payload = {} if follows is None else {"follows": follows}
    return {
        "format": "rrm-history/1",
        "case": {
            "external_ref": ref,
            "workflow": "usmca-31a",
            "initiation": "request",
            "complainant": "US",
            "respondent": "MX",
            "facility": {
                "facility_id": "MX-FOL-1",
                "name": "Planta Seguida",
                "owner": "Grupo Ejemplo",
                "country": "MX",
            },
            "claim": {
                "basis": "annex_23a_legislation",
                "sector_category": "manufacturing",
            },
        },
        "events": [
            {
                "at": "2025-01-06T17:00:00+00:00" if follows is None else
                "2025-02-03T17:00:00+00:00",
                "event": "request_for_review",
                "role": "ustr",
                "payload": payload,
            }
        ],
    }  # fmt: skip


class TestSecondRequest:
    def test_a_second_request_imports_after_the_first_is_stored(self, engine, clock):
        """A document that follows a case already in the database links to it."""
        clock.set(datetime(2025, 3, 1, tzinfo=UTC))
        import_cases(engine, [_second_request_doc("FOL-A")])
        report = import_cases(engine, [_second_request_doc("FOL-B", follows="FOL-A")])
        assert [c.outcome for c in report.cases] == ["imported"]
        first = engine.get("FOL-A")
        assert engine.get("FOL-B").attributes["follows"] == {
            "case_id": first.case_id,
            "external_ref": "FOL-A",
        }
        # Importing it again changes nothing; the earlier case is untouched.
        again = import_cases(engine, [_second_request_doc("FOL-B", follows="FOL-A")])
        assert [c.outcome for c in again.cases] == ["unchanged"]
        assert engine.get("FOL-A").version == first.version

    def test_a_second_request_naming_no_stored_case_is_refused(self, engine, clock):
        """`follows` naming a case nowhere (database or document) imports nothing."""
        clock.set(datetime(2025, 3, 1, tzinfo=UTC))
        with pytest.raises(rrm.InvalidInput, match="no case 'FOL-X'"):
            import_cases(engine, [_second_request_doc("FOL-C", follows="FOL-X")])
        assert engine.find() == []
