"""Moving live cases from one workflow version to the next (issue #11, item 5).

A v1 case is driven into every state of its workflow by searching the v1 graph
through the engine itself (each step is a real fire, refused steps are skipped),
then the whole population moves to v2 by the reviewed mapping: each case's state,
deadlines, chain and version pin are checked, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

import rrm
from rrm.cli import main
from rrm.domain.case import DeadlineStatus
from rrm.service.transfer import export_case, import_cases
from rrm.testing import FakeClock
from rrm.workflow.registry import load_workflows

if TYPE_CHECKING:
    from rrm.workflow.spec import PayloadField, TransitionSpec, WorkflowSpec

Step = tuple[str, str, dict[str, Any], int]  # event, role, payload, days after

FACILITY = rrm.Facility(
    facility_id="MX-MIG-1",
    name="Planta Migrada",
    owner="Grupo Ejemplo",
    country=rrm.Party.MX,
    city="Silao",
    region="Guanajuato",
    sector="auto parts",
)
CLAIM = rrm.Claim(
    basis="annex_23a_legislation",
    sector_category="manufacturing",
    legal_provisions=("LFT Art. 390 Bis",),
)


def _value(f: PayloadField, today: date) -> Any:
    later = (today + timedelta(days=90)).isoformat()
    if f.type == "enum":
        return f.choices[0]
    return {
        "str": "recorded for the test",
        "int": 1,
        "bool": True,
        "date": later,
        "list[str]": ["suspension_of_preferences"],
        "milestones": [{"label": "vote", "due": later}],
    }[f.type]


def _payload(t: TransitionSpec, today: date) -> dict[str, Any]:
    out = {f.name: _value(f, today) for f in t.payload if f.required}
    names = {f.name for f in t.payload}
    if "condition" in names:
        out["condition"] = "otherwise_remedied"
    if t.event == "milestone_met":
        out["milestone"] = 1
    return out


def _steps_for(t: TransitionSpec, spec: WorkflowSpec, today: date) -> list[Step]:
    role = next((r for r in t.roles if r != "system"), "system")
    # A lapse action waits for its clock: wait out the longest one.
    days = 400 if t.after_lapse_of is not None else 1
    if (
        t.event == "remediation_verified"
        and "remediation_completed_on_time" in t.guards
    ):
        return []  # reached through the late variant; on time needs its own plan
    return [(t.event, role, _payload(t, today), days)]


class Driver:
    """Opens v1 cases of one workflow and replays recipes of fires on them."""

    def __init__(
        self,
        engine: rrm.CaseEngine,
        clock: Any,
        workflow: str = "usmca-31a",
        parties: tuple[str, str] = ("US", "MX"),
        facility: rrm.Facility = FACILITY,
        claim: rrm.Claim = CLAIM,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.workflow = workflow
        self.parties = parties
        self.facility = facility
        self.claim = claim
        self.count = 0

    def open(self, initiation: str = "request") -> rrm.Case:
        self.count += 1
        opening = self.engine.workflows.get(self.workflow, 1).openings[initiation]
        role = opening.roles[0]
        today = self.clock.now().date()
        return self.engine.open_case(
            rrm.OpenCase(
                workflow=self.workflow,
                workflow_version=1,
                initiation=initiation,
                complainant=self.parties[0],
                respondent=self.parties[1],
                facility=self.facility,
                claim=self.claim,
                external_ref=f"MIG-{self.workflow}-{self.count}",
                actor=f"officer:{role}",
                role=role,
                payload={
                    f.name: _value(f, today) for f in opening.payload if f.required
                },
            )
        )

    def run(self, recipe: list[Step], initiation: str = "request") -> rrm.Case | None:
        case = self.open(initiation)
        for event, role, payload, days in recipe:
            self.clock.advance(timedelta(days=days))
            try:
                case = self.engine.fire(
                    rrm.FireEvent(
                        case_id=case.case_id,
                        event=event,
                        actor=f"officer:{role}",
                        role=role,
                        payload=payload,
                        at=self.clock.now(),
                    )
                )
            except rrm.RRMError:
                return None
        return case


def every_state(driver: Driver, spec: WorkflowSpec) -> dict[str, rrm.Case]:
    """Breadth-first over the v1 graph: one live case in each reachable state."""
    found: dict[str, tuple[str, list[Step], rrm.Case]] = {}
    frontier = []
    for initiation in spec.openings:
        first = driver.run([], initiation)
        assert first is not None
        found[first.state] = (initiation, [], first)
        frontier.append(first.state)
    while frontier:
        state = frontier.pop(0)
        initiation, recipe, case = found[state]
        today = case.last_event_at.date()
        for t in spec.transitions_from(state):
            if t.dest in found or t.dest == state:
                continue
            for step in _steps_for(t, spec, today):
                reached = driver.run([*recipe, step], initiation)
                if reached is not None and reached.state not in found:
                    found[reached.state] = (initiation, [*recipe, step], reached)
                    frontier.append(reached.state)
    return {state: case for state, (_, _, case) in found.items()}


@pytest.fixture(name="population")
def _population(engine: rrm.CaseEngine, clock: Any) -> dict[str, rrm.Case]:
    spec = engine.workflows.get("usmca-31a", 1)
    return every_state(Driver(engine, clock), spec)


class TestEveryState:
    def test_every_v1_state_is_populated(self, population, engine):
        """The search reaches every state of usmca-31a v1 with a live v1 case."""
        v1 = engine.workflows.get("usmca-31a", 1)
        assert set(population) == set(v1.states)
        assert all(c.workflow_version == 1 for c in population.values())

    def test_dry_run_writes_nothing_and_says_what_would_change(
        self, population, engine
    ):
        """A dry run reports every case and its deadlines, and changes no row."""
        before = {c.case_id: engine.get(c.case_id) for c in population.values()}
        report = engine.migrate(
            "usmca-31a", from_version=1, to_version=2, actor="admin:sam", dry_run=True
        )
        assert report.dry_run
        assert report.moved == 0
        assert {c.case_id for c in report.cases} == set(before)
        for case_id, case in before.items():
            assert engine.get(case_id) == case
            assert engine.history(case_id)[-1].event != "workflow_migrated"
        by_id = {c.case_id: c for c in report.cases}
        for case in before.values():
            planned = by_id[case.case_id]
            assert {m.key for m in planned.deadlines} == set(case.open_deadlines)

    def test_every_case_moves_with_state_deadlines_chain_and_pin(
        self, population, engine
    ):
        """Each v1 case lands in its mapped state on v2, deadlines re-derived and explained."""
        mapping = engine.workflows.migration("usmca-31a", 1, 2)
        v2 = engine.workflows.get("usmca-31a", 2)
        before = {c.case_id: engine.get(c.case_id) for c in population.values()}
        report = engine.migrate(
            "usmca-31a",
            from_version=1,
            to_version=2,
            actor="admin:sam",
            reason="v2 released (issue #11)",
        )
        assert report.moved == len(before)
        for case_id, old in before.items():
            new = engine.get(case_id)
            assert new.workflow_version == 2
            assert new.state == mapping.target(old.state)
            assert new.version == old.version + 1
            entry = engine.history(case_id)[-1]
            assert entry.event == "workflow_migrated"
            assert (entry.from_state, entry.to_state) == (old.state, new.state)
            assert entry.actor == "admin:sam"
            assert entry.reason == "v2 released (issue #11)"
            assert entry.payload["mapping_sha256"] == mapping.sha256
            assert engine.verify(case_id).ok
            # Every open deadline is one v2 holds in the new state, explained.
            for key, d in new.open_deadlines.items():
                rule = v2.deadlines[key.split(".")[0]]
                assert new.state in rule.active_in
                assert d.citation == rule.citation
                assert d.evidence == rule.evidence.value
                assert "usmca-31a v2" in d.explanation
            # Every old open deadline is closed; the kept ones reopen under v2.
            for key, d in old.open_deadlines.items():
                stored = {x.deadline_id: x for x in new.deadlines}[d.deadline_id]
                assert stored.status is DeadlineStatus.CANCELLED
                assert entry.payload["deadlines"][key]["was_due"] == (
                    d.due_date.isoformat()
                )
        settled = population["withdrawn_settled"]
        assert engine.get(settled.case_id).state == "closed_by_agreement"

    def test_a_migrated_case_follows_v2_rules(self, population, engine, clock):
        """After the move the case takes v2 events (and refuses v1's 'policy')."""
        engine.migrate("usmca-31a", from_version=1, to_version=2, actor="admin:sam")
        case = population["review_requested"]
        clock.advance(timedelta(days=1))
        moved = engine.fire(
            rrm.FireEvent(
                case_id=case.case_id,
                event="respondent_reports_remediated",
                actor="officer:mx",
                role="respondent",
            )
        )
        assert moved.state == "review_remediation_reported"
        closed = population["closed_no_dor"]
        fact = engine.fire(
            rrm.FireEvent(
                case_id=closed.case_id,
                event="determination_published",
                actor="officer:ustr",
                role="ustr",
                payload={"on": "2025-01-10"},
            )
        )
        assert fact.state == "closed_no_dor"

    def test_running_it_again_moves_nothing(self, population, engine):
        """A second run finds no v1 case: an interrupted migration is finished by rerunning."""
        engine.migrate("usmca-31a", from_version=1, to_version=2, actor="admin:sam")
        again = engine.migrate(
            "usmca-31a", from_version=1, to_version=2, actor="admin:sam"
        )
        assert again.cases == ()


class TestRecomputedDeadlines:
    def test_an_open_clock_is_recomputed_from_its_opening_event(self, engine, clock):
        """The 10-day clock of a v1 case is re-derived under v2 and says so."""
        case = Driver(engine, clock).run([])
        assert case is not None
        report = engine.migrate(
            "usmca-31a", from_version=1, to_version=2, actor="admin:sam"
        )
        [moved] = report.cases
        answer = next(m for m in moved.deadlines if m.key == "respondent_answer")
        due = case.open_deadlines["respondent_answer"].due_date
        assert answer.was_due == answer.now_due == due
        assert answer.change == "unchanged"
        assert "no receipt date recorded" in answer.explanation
        stored = engine.get(case.case_id).open_deadlines["respondent_answer"]
        assert stored.opened_seq == case.version + 1
        assert stored.anchor_at == case.opened_at

    def test_an_extended_clock_keeps_the_agreed_date(self, engine, clock):
        """A clock the Parties extended keeps the date they agreed."""
        case = Driver(engine, clock).run([])
        assert case is not None
        engine.assign(
            rrm.AssignOfficers(
                case_id=case.case_id,
                assign=(rrm.Officer(officer_id="sup", role="supervisor"),),
                actor="admin:sam",
                role="admin",
                reason="team lead",
            )
        )
        engine.extend(
            rrm.ExtendDeadline(
                case_id=case.case_id,
                key="respondent_review",
                new_date=case.open_deadlines["respondent_review"].due_date
                + timedelta(days=14),
                actor="sup",
                role="supervisor",
                reason="agreed by the Parties",
            )
        )
        report = engine.migrate(
            "usmca-31a", from_version=1, to_version=2, actor="admin:sam"
        )
        review = next(
            m for m in report.cases[0].deadlines if m.key == "respondent_review"
        )
        assert review.now_due == review.was_due
        assert review.now_due == case.open_deadlines[
            "respondent_review"
        ].due_date + timedelta(days=14)
        assert "kept as agreed" in review.explanation
        assert (
            engine.get(case.case_id).open_deadlines["respondent_review"].extensions == 1
        )

    def test_a_lapse_already_handled_is_not_taken_again(self, engine, clock):
        """A flagged lapse stays handled after the move: the next tick records nothing new."""
        driver = Driver(engine, clock)
        case = driver.run([("respondent_agrees", "respondent", {}, 1)])
        assert case is not None
        clock.advance(timedelta(days=60))
        engine.tick()
        lapsed = engine.get(case.case_id)
        assert lapsed.state == "panel_eligible"  # review_lapsed took the case on
        engine.migrate("usmca-31a", from_version=1, to_version=2, actor="admin:sam")
        versions = engine.get(case.case_id).version
        engine.tick()
        assert engine.get(case.case_id).version == versions


class TestRefusals:
    def test_an_unmapped_state_refuses_the_whole_migration(
        self, tmp_path, clock, sql_engine_for, db_url
    ):
        """A mapping that leaves a populated state out moves no case at all."""
        import shutil

        from rrm._resources import workflows_dir

        root = tmp_path / "workflows"
        shutil.copytree(workflows_dir(), root)
        path = root / "usmca-31a" / "migrate-v1-to-v2.toml"
        path.write_text(
            path.read_text().replace('panel_eligible = "panel_eligible"\n', "")
        )
        engine = rrm.bootstrap(
            sql_engine_for(db_url), clock=clock, workflows=root, upgrade=True
        )
        driver = Driver(engine, clock)
        plain = driver.run([])
        eligible = driver.run([("respondent_declines", "respondent", {}, 1)])
        assert plain is not None and eligible is not None
        with pytest.raises(rrm.InvalidInput, match=r"refused whole.*panel_eligible"):
            engine.migrate("usmca-31a", from_version=1, to_version=2, actor="a")
        for case in (plain, eligible):
            assert engine.get(case.case_id) == case

    def test_no_mapping_file_is_a_typed_error(self, engine):
        """Versions no reviewed mapping joins are refused with the file to add."""
        with pytest.raises(rrm.InvalidInput, match="migrate-v2-to-v1"):
            engine.migrate("usmca-31a", from_version=2, to_version=1, actor="a")
        with pytest.raises(rrm.WorkflowNotFound):
            engine.migrate("usmca-31a", from_version=1, to_version=9, actor="a")

    def test_a_mapping_naming_an_unknown_state_does_not_load(self, tmp_path):
        """A mapping to a state the new version lacks is rejected when loaded."""
        import shutil

        from rrm._resources import workflows_dir

        root = tmp_path / "workflows"
        shutil.copytree(workflows_dir(), root)
        path = root / "usmca-31a" / "migrate-v1-to-v2.toml"
        path.write_text(
            path.read_text().replace('closed = "closed"', 'closed = "no_such_state"')
        )
        with pytest.raises(rrm.InvalidWorkflow, match="no state 'no_such_state'"):
            load_workflows(root)


class TestCommandLine:
    def test_dry_run_then_migrate(self, tmp_path, clock, capsys):
        """`rrm workflows migrate --dry-run` prints the plan; without it, cases move."""
        db = f"sqlite:///{tmp_path / 'rrm.sqlite'}"
        engine = rrm.bootstrap(db, clock=clock, upgrade=True)
        case = Driver(engine, clock).run([])
        assert case is not None
        due = case.open_deadlines["respondent_answer"].due_date.isoformat()
        args = [
            "workflows", "migrate", "--from", "usmca-31a@1", "--to", "usmca-31a@2",
            "--db", db, "--actor", "admin:sam",
        ]  # fmt: skip
        assert main([*args, "--dry-run"]) == 0
        out = capsys.readouterr().out
        assert "would move 1 case(s)" in out
        assert f"respondent_answer: {due} -> {due} (unchanged)" in out
        assert "Dry run: nothing was written." in out
        assert engine.get(case.case_id).workflow_version == 1
        assert main([*args, "--json"]) == 0
        assert '"moved": 1' in capsys.readouterr().out
        assert engine.get(case.case_id).workflow_version == 2

    def test_bad_version_text_is_refused(self, tmp_path, capsys):
        """A --from without @version is a readable error, not a traceback."""
        db = f"sqlite:///{tmp_path / 'rrm.sqlite'}"
        code = main(
            ["workflows", "migrate", "--from", "usmca-31a", "--to", "usmca-31a@2",
             "--db", db, "--actor", "a"]
        )  # fmt: skip
        captured = capsys.readouterr()
        assert code != 0
        assert "usmca-31a@1" in captured.err
        assert "Traceback" not in captured.err + captured.out


class TestOneCase:
    def test_one_case_moves_at_a_given_time(self, engine, clock):
        """engine.migrate_case moves one case (as an import replays it), dated as told."""
        driver = Driver(engine, clock)
        case = driver.run([])
        other = driver.run([])
        assert case is not None and other is not None
        clock.advance(timedelta(days=2))
        at = clock.now() - timedelta(hours=1)
        moved = engine.migrate_case(
            case.external_ref, to_version=2, actor="admin:sam", at=at
        )
        assert moved.workflow_version == 2
        assert engine.history(case.case_id)[-1].occurred_at == at
        assert engine.get(other.case_id).workflow_version == 1
        with pytest.raises(rrm.WorkflowNotFound):
            engine.migrate_case(case.case_id, to_version=3, actor="admin:sam")
        with pytest.raises(rrm.InvalidInput, match="migrate-v2-to-v1"):
            engine.migrate_case(case.case_id, to_version=1, actor="admin:sam")
        with pytest.raises(rrm.CaseNotFound):
            engine.migrate_case("NO-SUCH", to_version=2, actor="admin:sam")


@pytest.mark.parametrize(
    ("workflow", "parties"),
    [("usmca-31a-mx", ("MX", "US")), ("usmca-31b", ("CA", "MX"))],
)
def test_other_workflows_move_from_every_state(
    engine, clock, samples, workflow, parties
):
    """usmca-31a-mx and usmca-31b v1 cases in every state move to v2 by their maps."""
    facility, claim = {
        "usmca-31a-mx": (samples.FACILITY_US, samples.NLRB_CLAIM),
        "usmca-31b": (samples.FACILITY_MX, samples.MX_CLAIM),
    }[workflow]
    driver = Driver(engine, clock, workflow, parties, facility, claim)
    v1 = engine.workflows.get(workflow, 1)
    population = every_state(driver, v1)
    assert set(population) == set(v1.states)
    mapping = engine.workflows.migration(workflow, 1, 2)
    v2 = engine.workflows.get(workflow, 2)
    before = {c.case_id: engine.get(c.case_id) for c in population.values()}
    report = engine.migrate(
        workflow, from_version=1, to_version=2, actor="admin:sam", reason="v2"
    )
    assert report.moved == len(before)
    for case_id, old in before.items():
        new = engine.get(case_id)
        assert (new.workflow_version, new.state) == (2, mapping.target(old.state))
        assert engine.history(case_id)[-1].event == "workflow_migrated"
        assert engine.verify(case_id).ok
        for key, d in new.open_deadlines.items():
            assert new.state in v2.deadlines[key.split(".")[0]].active_in
            assert f"{workflow} v2" in d.explanation
    settled = population["withdrawn_settled"]
    assert engine.get(settled.case_id).state == "closed_by_agreement"


class TestImportOfAMigratedHistory:
    """A history that moved to v2 imports as it happened: opened on v1, moved, v2."""

    @pytest.fixture(name="moved")
    def _moved(self, workflows: Any) -> tuple[rrm.CaseEngine, rrm.Case]:
        clock = FakeClock(datetime(2025, 1, 6, 15, tzinfo=UTC))
        source = rrm.bootstrap(
            "sqlite://", clock=clock, workflows=workflows, upgrade=True
        )
        driver = Driver(source, clock)
        case = driver.run([("respondent_agrees", "respondent", {}, 3)])
        assert case is not None
        clock.advance(timedelta(days=5))
        source.migrate(
            "usmca-31a",
            from_version=1,
            to_version=2,
            actor="admin:sam",
            reason="v2 released (issue #11)",
        )
        clock.advance(timedelta(days=1))
        source.fire(
            rrm.FireEvent(
                case_id=case.case_id,
                event="respondent_reports_remediated",
                actor="officer:respondent",
                role="respondent",
                payload={"actions": "workers reinstated"},
            )
        )
        return source, source.get(case.case_id)

    def test_the_move_is_replayed_at_its_time(self, engine, clock, moved):
        """Import opens on v1, replays workflow_migrated, and ends where the source is."""
        source, case = moved
        clock.set(source.clock.now())
        report = import_cases(engine, [export_case(source, case.external_ref)])
        assert [c.outcome for c in report.cases] == ["imported"]
        got = engine.get(case.external_ref)
        assert (got.workflow_version, got.state) == (2, "review_remediation_reported")
        ours = [
            (e.event, e.from_state, e.to_state) for e in source.history(case.case_id)
        ]
        theirs = [
            (e.event, e.from_state, e.to_state) for e in engine.history(got.case_id)
        ]
        assert theirs == ours
        moved_entry = next(
            e for e in engine.history(got.case_id) if e.event == "workflow_migrated"
        )
        original = next(
            e for e in source.history(case.case_id) if e.event == "workflow_migrated"
        )
        assert moved_entry.occurred_at == original.occurred_at
        assert moved_entry.payload == original.payload
        assert sorted((d.key, d.status, d.due_date) for d in got.deadlines) == sorted(
            (d.key, d.status, d.due_date) for d in case.deadlines
        )
        assert engine.verify(got.case_id).ok

    def test_a_move_by_another_mapping_is_refused(self, engine, clock, moved):
        """A record moved by a mapping other than the reviewed one here imports nothing."""
        source, case = moved
        clock.set(source.clock.now())
        doc = export_case(source, case.external_ref)
        for entry in doc["history"]:
            if entry["event"] == "workflow_migrated":
                entry["payload"]["mapping_sha256"] = "0" * 64
        with pytest.raises(rrm.InvalidInput, match="another mapping"):
            import_cases(engine, [doc])
        assert engine.find(limit=10) == []
