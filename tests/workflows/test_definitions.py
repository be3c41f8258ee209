"""Bundled definitions load, are locked, cite every rule, and broken ones are rejected."""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import pytest

import rrm
from rrm._resources import workflows_dir
from rrm.workflow.registry import check_released_lock, load_workflows

BUNDLED = workflows_dir()


def copy_tree(tmp_path: Path) -> Path:
    target = tmp_path / "workflows"
    shutil.copytree(BUNDLED, target)
    return target


def edit(path: Path, old: str, new: str, count: int = 1) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, count))


class TestBundled:
    def test_every_bundled_workflow_loads(self, workflows):
        """The three bundled workflows load and validate."""
        assert workflows.ids() == ["usmca-31a", "usmca-31a-mx", "usmca-31b"]

    def test_released_lock_matches(self):
        """Every released definition is listed in released.lock with its current hash."""
        assert check_released_lock() == []

    def test_every_deadline_and_transition_cites_with_evidence(self, workflows):
        """Each deadline and transition carries a citation and an evidence level."""
        for spec in workflows.specs.values():
            for d in spec.deadlines.values():
                assert d.citation
                assert d.evidence.value in {"V", "S", "R"}
            for t in spec.transitions:
                assert t.citation
                assert t.roles

    def test_recalled_numbers_are_nominal(self, workflows):
        """Panel-phase clocks rest on recalled text and are flagged nominal.

        v2's panel confirmation (5 business days) is a secondary source: IELP
        quotes the treaty's words (second primary-text pass, issue #11).
        """
        spec = workflows.get("usmca-31a")
        nominal = {k for k, d in spec.deadlines.items() if d.nominal}
        assert not spec.deadlines["panel_confirmation"].nominal
        assert workflows.get("usmca-31a", 1).deadlines["panel_confirmation"].nominal
        assert nominal == {
            "panel_composition",
            "verification_answer",
            "verification_period",
            "panel_determination",
            "remedy_notice",
            "remedy_consultations",
        }
        assert (
            spec.parameters["repeat_threshold_prior_determinations"].evidence.value
            == "R"
        )

    def test_statutory_us_clocks_are_verified(self, workflows):
        """The U.S. statutory clocks (30 and 60 days) are verified law."""
        spec = workflows.get("usmca-31a")
        for key in (
            "ilc_determination",
            "ustr_panel_decision",
            "ustr_enforcement_decision",
        ):
            assert spec.deadlines[key].evidence.value == "V"
            assert spec.deadlines[key].citation.startswith("19 U.S.C.")


class TestLock:
    def test_edited_release_is_detected(self, tmp_path):
        """Changing a released file without a new version is reported."""
        root = copy_tree(tmp_path)
        edit(root / "usmca-31a" / "v1.toml", "days = 45", "days = 46")
        assert any("changed" in p for p in check_released_lock(root))

    def test_unlisted_release_is_detected(self, tmp_path):
        """A released definition missing from the lock is reported."""
        root = copy_tree(tmp_path)
        lock = root / "released.lock"
        # Drop only v1's line: usmca-31b v2 is released too, and removing every
        # "31b" line would now report two files.
        lock.write_text(
            "\n".join(
                x for x in lock.read_text().splitlines() if "31b/v1.toml" not in x
            )
        )
        assert check_released_lock(root) == [
            "usmca-31b/v1.toml: released but not in released.lock"
        ]

    def test_lock_hashes_are_sha256(self):
        """The lock stores real SHA-256 digests of the files."""
        for line in (BUNDLED / "released.lock").read_text().splitlines():
            if line.startswith("#") or not line.strip():
                continue
            digest, name = line.split()
            assert digest == hashlib.sha256((BUNDLED / name).read_bytes()).hexdigest()


BROKEN = [
    ("days = 45", "days = -3", "deadlines.respondent_review.days"),
    (
        'citation = "USMCA Annex 31-A, Arts. 31-A.3 and 31-A.5"\nalerts = "short"\nevidence = "R"\nnote = "3 business',
        'alerts = "short"\nevidence = "R"\nnote = "3 business',
        "deadlines.panel_composition.citation",
    ),
    (
        'guards = ["liquidation_not_suspended"]',
        'guards = ["eval_anything"]',
        "guards[0]",
    ),
    ('dest = "petition_declined"', 'dest = "limbo"', "dest"),
    (
        'roles = ["ilc"]\nlabel = "ILC finds insufficient',
        'roles = ["wizard"]\nlabel = "ILC finds insufficient',
        "roles[0]",
    ),
    ('counting = "business"', 'counting = "lunar"', "counting"),
    ('MX = "mx-federal"', 'MX = "mx-atlantis"', "calendars.MX"),
    ('evidence = "V"', 'evidence = "probably"', "evidence"),
    (
        "[states.petition_received]",
        "[states.petition_received]\nsparkle = true",
        "states.petition_received.sparkle",
    ),
]


class TestRejected:
    @pytest.mark.parametrize(("old", "new", "key"), BROKEN, ids=[b[2] for b in BROKEN])
    def test_broken_definition_names_file_and_key(self, tmp_path, old, new, key):
        """A definition breaking a rule is rejected with the file and key named."""
        root = copy_tree(tmp_path)
        path = root / "usmca-31a" / "v1.toml"
        edit(path, old, new)
        with pytest.raises(rrm.InvalidWorkflow) as info:
            load_workflows(root)
        assert str(path) in str(info.value)
        assert key in info.value.key

    def test_unreachable_state_is_rejected(self, tmp_path):
        """A state no event leads to is rejected."""
        root = copy_tree(tmp_path)
        edit(
            root / "usmca-31a" / "v1.toml",
            "[states.closed]\n",
            '[states.orphan]\nlabel = "nobody comes here"\nterminal = true\n\n[states.closed]\n',
        )
        with pytest.raises(rrm.InvalidWorkflow, match="cannot be reached"):
            load_workflows(root)

    def test_not_toml_is_rejected(self, tmp_path):
        """A file that is not TOML is rejected, naming the file."""
        root = copy_tree(tmp_path)
        (root / "usmca-31a" / "v1.toml").write_text("[workflow\n")
        with pytest.raises(rrm.InvalidWorkflow, match="not valid TOML"):
            load_workflows(root)

    def test_file_name_must_match_version(self, tmp_path):
        """A definition stored under the wrong version file name is rejected."""
        root = copy_tree(tmp_path)
        shutil.move(root / "usmca-31a" / "v1.toml", root / "usmca-31a" / "v2.toml")
        with pytest.raises(rrm.InvalidWorkflow, match="does not match"):
            load_workflows(root)

    def test_opened_deadline_must_be_active_in_destination(self, tmp_path):
        """A deadline opened by an event that leads outside its states is rejected."""
        root = copy_tree(tmp_path)
        edit(
            root / "usmca-31a" / "v1.toml",
            'active_in = ["petition_received"]',
            'active_in = ["self_initiated"]',
        )
        with pytest.raises(rrm.InvalidWorkflow, match="not listed"):
            load_workflows(root)


class TestVersionPinning:
    def test_case_stays_on_its_version(self, tmp_path, clock, sql_engine_for, samples):
        """A case opened under v2 keeps v2's rules after v3 is added."""
        root = copy_tree(tmp_path)
        engine = rrm.bootstrap(
            sql_engine_for(f"sqlite:///{tmp_path / 'a.sqlite'}"),
            clock=clock,
            workflows=root,
            upgrade=True,
        )
        case = engine.open_case(
            rrm.OpenCase(
                workflow="usmca-31a",
                initiation="request",
                complainant="US",
                respondent="MX",
                facility=samples.FACILITY_MX,
                claim=samples.MX_CLAIM,
                external_ref="P-1",
                actor="a",
                role="ustr",
            )
        )
        v3 = root / "usmca-31a" / "v3.toml"
        shutil.copy(root / "usmca-31a" / "v2.toml", v3)
        edit(v3, "version = 2", "version = 3")
        edit(v3, "days = 45", "days = 60")
        engine2 = rrm.bootstrap(
            sql_engine_for(f"sqlite:///{tmp_path / 'a.sqlite'}"),
            clock=clock,
            workflows=root,
        )
        assert engine2.workflows.get("usmca-31a").version == 3
        reloaded = engine2.get(case.case_id)
        assert reloaded.workflow_version == 2
        new = engine2.open_case(
            rrm.OpenCase(
                workflow="usmca-31a",
                initiation="request",
                complainant="US",
                respondent="MX",
                facility=samples.FACILITY_MX,
                claim=samples.MX_CLAIM,
                external_ref="P-2",
                actor="a",
                role="ustr",
            )
        )
        assert new.workflow_version == 3
        old_due = reloaded.open_deadlines["respondent_review"].due_date
        new_due = new.open_deadlines["respondent_review"].due_date
        assert (new_due - old_due).days == 15
        assert re.search(
            r"60 calendar days", new.open_deadlines["respondent_review"].explanation
        )
