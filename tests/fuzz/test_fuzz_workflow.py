"""Fuzz the workflow loader with mutated definitions: only InvalidWorkflow comes out.

Each bundled definition is parsed (TOML to dict) once, then every example mutates
the dict (deletes keys, changes types, adds unknown keys, points transitions,
openings and deadlines at unknown states, guards, effects, roles, calendars and
events) and hands it to ``rrm.workflow.loader.parse_workflow``. The result is either
a ``WorkflowSpec`` or an ``InvalidWorkflow`` whose message names the file. A folder
with a broken file, through ``load_workflows``, behaves the same.

Examples per test come from ``RRM_FUZZ_EXAMPLES`` (default 200; the full run uses
``RRM_FUZZ_EXAMPLES=10000``). Named broken definitions are in
``tests/workflows/test_definitions.py``; this file does not repeat them.
"""

from __future__ import annotations

import copy
import hashlib
import shutil
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import rrm
from rrm.workflow.loader import parse_workflow

from .conftest import FUZZ, anything, hostile_text, mutate

# A 100 kB example makes Hypothesis warn about its repr; the suite turns warnings
# into errors, and the size is the point here.
pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")

ROOT = Path(__file__).resolve().parents[2] / "workflows"
FILES = sorted(ROOT.glob("*/v*.toml"))
SEEDS = {p.parent.name: tomllib.loads(p.read_text("utf-8")) for p in FILES}
CALENDARS = frozenset(rrm.load_workflows().calendars)
FILE = "fuzzed/usmca-fuzz/v1.toml"
BAD_NAMES = st.one_of(
    st.sampled_from(["nowhere", "", "=", "system", "closed ", "__class__"]),
    hostile_text,
)


def parse(data: Any) -> None:
    try:
        parse_workflow(data, file=FILE, sha256="0" * 64, calendar_ids=CALENDARS)
    except rrm.InvalidWorkflow as exc:
        message, reason = str(exc), exc.reason
        assert FILE in message, message
        assert reason, message
    except Exception as exc:  # noqa: BLE001 - the point is to see what escapes
        pytest.fail(f"{type(exc).__name__} escaped: {exc!r}")


def retarget(draw: Any, data: dict[str, Any]) -> None:
    """Point one reference of one table at something undeclared or mistyped."""
    where = draw(
        st.sampled_from(["transitions", "openings", "deadlines", "alert_ladders"])
    )
    table = data.get(where)
    if isinstance(table, list) and table:
        entry = table[draw(st.integers(0, len(table) - 1))]
    elif isinstance(table, dict) and table:
        entry = table[draw(st.sampled_from(list(table)))]
    else:
        return
    if not isinstance(entry, dict):
        return
    field = draw(
        st.sampled_from(
            [
                *entry,
                *("source", "dest", "roles", "guards", "effects", "state"),
                "calendar",
            ]
        )
    )
    entry[field] = draw(st.one_of(BAD_NAMES, st.lists(BAD_NAMES, max_size=3), anything))


@FUZZ
@given(data=st.data())
def test_mutated_definition(data: st.DataObject) -> None:
    doc = copy.deepcopy(SEEDS[data.draw(st.sampled_from(sorted(SEEDS)))])
    for _ in range(data.draw(st.integers(1, 3))):
        if data.draw(st.booleans()):
            retarget(data.draw, doc)
        elif data.draw(st.booleans()) and doc:
            # TOML always yields a table at the top: mutate below it.
            top = data.draw(st.sampled_from(list(doc)))
            doc[top] = mutate(data.draw, doc[top])
        else:
            doc = {data.draw(hostile_text): data.draw(anything), **doc}
    parse(doc)


@FUZZ
@given(doc=st.dictionaries(hostile_text, anything, max_size=4))
def test_random_definition(doc: Any) -> None:
    parse(doc)


def test_broken_file_in_a_folder_names_the_file(tmp_path: Path) -> None:
    """load_workflows on a folder with a broken file raises InvalidWorkflow naming it."""
    folder = tmp_path / "defs"
    shutil.copytree(ROOT / "usmca-31a", folder / "usmca-31a")
    path = folder / "usmca-31a" / "v1.toml"
    text = path.read_text("utf-8").replace('dest = "request_authorized"', "dest = 7", 1)
    path.write_text(text, "utf-8")
    with pytest.raises(rrm.InvalidWorkflow) as info:
        rrm.load_workflows(folder)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "raw",
    [b"\xff\xfe not utf-8", b"[workflow\n", b"workflow = 1\nworkflow = 2\n", b""],
    ids=["latin", "unclosed", "duplicate", "empty"],
)
def test_unreadable_file_names_the_file(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "usmca-x" / "v1.toml"
    path.parent.mkdir()
    path.write_bytes(raw)
    with pytest.raises(rrm.InvalidWorkflow) as info:
        rrm.load_workflows(tmp_path)
    assert str(path) in str(info.value)


def test_seed_is_the_bundled_file() -> None:
    """Sanity: unmutated seeds parse, so the fuzz starts from valid definitions."""
    for path in FILES:
        spec = parse_workflow(
            SEEDS[path.parent.name],
            file=str(path),
            sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
            calendar_ids=CALENDARS,
        )
        assert spec.workflow_id == path.parent.name


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("openings", "self_initiated"), 5),
        (("openings", "petition"), [["x"]]),
        (("parameters",), 5),
        (("parameters", "repeat_threshold_prior_determinations"), 5),
        (("directions",), [5]),
        (("calendars", "US"), ["x"]),
        (("deadlines", "ilc_determination"), 5),
        (("transitions",), [5]),
        (("alert_ladders", "standard"), 5),
    ],
    ids=[
        "opening-5",
        "opening-list",
        "parameters-5",
        "parameter-5",
        "direction-5",
        "calendar-list",
        "deadline-5",
        "transition-5",
        "ladder-5",
    ],
)
def test_non_table_values_are_refused_by_name(
    path: tuple[str, ...], value: Any
) -> None:
    doc = copy.deepcopy(SEEDS["usmca-31a"])
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    with pytest.raises(rrm.InvalidWorkflow) as info:
        parse_workflow(doc, file=FILE, sha256="0" * 64, calendar_ids=CALENDARS)
    assert FILE in str(info.value)


def test_non_table_parameter_in_a_file(tmp_path: Path) -> None:
    folder = tmp_path / "defs" / "usmca-31a"
    shutil.copytree(ROOT / "usmca-31a", folder)
    path = folder / "v1.toml"
    path.write_text(
        path.read_text("utf-8").replace(
            "[parameters.repeat_threshold_prior_determinations]",
            "[parameters]\nbroken = 5\n[parameters.repeat_threshold_prior_determinations]",
        ),
        "utf-8",
    )
    with pytest.raises(rrm.InvalidWorkflow) as info:
        rrm.load_workflows(tmp_path / "defs")
    assert str(path) in str(info.value)


@pytest.mark.parametrize("status", [[], {}, ["released"]])
def test_non_text_status_is_refused_by_name(status: Any) -> None:
    """Found by the 10,000-example run: a list as ``workflow.status`` raised
    TypeError (unhashable) instead of InvalidWorkflow."""
    doc = copy.deepcopy(SEEDS["usmca-31a"])
    doc["workflow"]["status"] = status
    with pytest.raises(rrm.InvalidWorkflow, match=r"workflow\.status"):
        parse_workflow(doc, file=FILE, sha256="0" * 64, calendar_ids=CALENDARS)
