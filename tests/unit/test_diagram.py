"""Workflow pictures as text: Mermaid state diagrams and Graphviz DOT."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
from functools import cache

import pytest

import rrm
from rrm.workflow.diagram import dot, mermaid
from rrm.workflow.spec import WorkflowSpec

HOSTILE = 'Evil "label" [*] --> x : y; %% c\n  note right of z <b>#1</b> {`q`} \\N'
HOSTILE_EVENT = 'boom"; "[*] start" -> "x'
IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
# Every line mermaid() writes after the front matter has one of these shapes; a
# label that broke out of its quotes or ended early would not match.
# (``;`` appears only to end a ``#NN;`` entity code.)
SAFE_TEXT = r"(?:[^\"\n:;%<>\[\]{}`#\\]|#\d+;)*"
LINE_SHAPES = [
    re.compile(r"stateDiagram-v2\Z"),
    re.compile(rf'    state "(?:[^"\n%<>`#\\]|#\d+;)*" as {IDENT}\Z'),
    re.compile(rf"    \[\*\] --> {IDENT} : {SAFE_TEXT}\Z"),
    re.compile(rf"    {IDENT} --> {IDENT} : {SAFE_TEXT}\Z"),
    re.compile(rf"    {IDENT} --> \[\*\]\Z"),
    re.compile(rf"    note right of {IDENT} : {SAFE_TEXT}\Z"),
]
needs_dot = pytest.mark.skipif(
    shutil.which("dot") is None, reason="Graphviz (dot) is not installed"
)


@cache
def specs() -> dict[str, WorkflowSpec]:
    return {s.workflow_id: s for s in rrm.load_workflows().latest()}


def bundled() -> list[str]:
    return sorted(specs())


def hostile_spec() -> WorkflowSpec:
    """usmca-31a with a hostile state label, outcome and transition event."""
    spec = specs()["usmca-31a"]
    states = dict(spec.states)
    states["closed"] = dataclasses.replace(
        states["closed"], label=HOSTILE, outcome=HOSTILE
    )
    first = dataclasses.replace(spec.transitions[0], event=HOSTILE_EVENT)
    return dataclasses.replace(
        spec, title=HOSTILE, states=states, transitions=(first, *spec.transitions[1:])
    )


def body(text: str) -> list[str]:
    lines = text.splitlines()
    assert lines[0] == "---"
    end = lines.index("---", 1)
    return lines[end + 1 :]


def test_bundled_workflows_are_three() -> None:
    assert bundled() == ["usmca-31a", "usmca-31a-mx", "usmca-31b"]


@pytest.mark.parametrize("workflow_id", bundled())
def test_mermaid_shows_every_state_and_transition_event(workflow_id: str) -> None:
    spec = specs()[workflow_id]
    text = mermaid(spec)
    assert "stateDiagram-v2" in text
    for name in spec.states:
        assert re.search(rf'^    state "[^"]*" as {name}$', text, re.MULTILINE), name
    for opening in spec.openings.values():
        assert f"    [*] --> {opening.state} : {opening.event}\n" in text
    for t in spec.transitions:
        if t.internal:
            continue
        for source in t.sources:
            assert re.search(
                rf"^    {source} --> {t.dest} : {re.escape(t.event)}( \(|$)",
                text,
                re.MULTILINE,
            ), (source, t.event)
    for state in spec.states.values():
        assert (f"    {state.name} --> [*]\n" in text) is state.terminal


@pytest.mark.parametrize("workflow_id", bundled())
def test_mermaid_lines_have_only_known_shapes(workflow_id: str) -> None:
    for internal in (False, True):
        for line in body(mermaid(specs()[workflow_id], internal=internal)):
            assert any(p.match(line) for p in LINE_SHAPES), line


def test_lapse_transitions_are_marked() -> None:
    text = mermaid(specs()["usmca-31a"])
    assert (
        "    review_requested --> panel_eligible : respondent_answer_lapsed (on lapse)\n"
        in text
    )
    assert "remedies_imposed (on lapse)" in text


def test_internal_events_are_omitted_unless_asked() -> None:
    spec = specs()["usmca-31a"]
    plain, full = mermaid(spec), mermaid(spec, internal=True)
    assert "suspend_liquidation" not in plain
    assert "note right of" not in plain
    assert re.search(
        r"^    note right of review_requested : records .*suspend_liquidation",
        full,
        re.MULTILINE,
    )
    assert "suspend_liquidation" not in dot(spec)
    assert "suspend_liquidation" in dot(spec, internal=True)


def test_mermaid_escapes_quotes_brackets_and_newlines() -> None:
    text = mermaid(hostile_spec(), internal=True)
    lines = body(text)
    for line in lines:
        assert any(p.match(line) for p in LINE_SHAPES), line
    [closed] = [line for line in lines if line.endswith(" as closed")]
    assert closed.count('"') == 2
    assert "#34;label#34;" in closed
    assert "#91;*#93;" in closed
    assert "#60;b#62;" in closed
    assert "#35;1" in closed
    assert "\\" not in closed
    assert "note right of z" in closed  # the newline became a space, inside quotes
    # The hostile event stays one label on one arrow.
    [arrow] = [line for line in lines if "boom" in line]
    assert arrow.startswith(
        "    petition_received --> request_authorized : boom#34;#59;"
    )
    # The title is a quoted YAML scalar on one line.
    title = text.splitlines()[1]
    assert title.startswith('title: "') and title.endswith('"')
    assert json.loads(title.removeprefix("title: ")).startswith("usmca-31a v2: Evil")


def test_unsafe_state_names_get_neutral_ids() -> None:
    spec = specs()["usmca-31a"]
    states = {
        ("end" if k == "closed" else k): (
            dataclasses.replace(v, name="end") if k == "closed" else v
        )
        for k, v in spec.states.items()
    }
    transitions = tuple(
        dataclasses.replace(t, dest="end") if t.dest == "closed" else t
        for t in spec.transitions
    )
    text = mermaid(dataclasses.replace(spec, states=states, transitions=transitions))
    assert " as end\n" not in text
    assert re.search(
        r'state "Closed by the complainant" as state_\d+$', text, re.MULTILINE
    )


@pytest.mark.parametrize("workflow_id", bundled())
def test_output_is_deterministic(workflow_id: str) -> None:
    spec = specs()[workflow_id]
    assert mermaid(spec) == mermaid(spec)
    assert dot(spec, internal=True) == dot(spec, internal=True)


@pytest.mark.parametrize("workflow_id", bundled())
def test_dot_names_every_state_and_event(workflow_id: str) -> None:
    spec = specs()[workflow_id]
    text = dot(spec)
    assert text.startswith(f'digraph "{workflow_id} v{spec.version}" {{')
    for name in spec.states:
        assert f'    "{name}" [label="' in text
    for t in spec.transitions:
        if not t.internal:
            assert f'[label="{t.event}' in text
    assert "style=dashed" in text  # lapse transitions


def test_dot_escapes_quotes_and_backslashes() -> None:
    text = dot(hostile_spec())
    assert 'Evil \\"label\\"' in text
    assert "\\\\N" in text  # a literal backslash-N, not Graphviz's node-name escape
    assert '"boom\\"; \\"[*] start\\" -> \\"x"' in text


def graphviz_json(text: str) -> dict[str, object]:
    done = subprocess.run(
        ["dot", "-Tjson"], input=text.encode(), capture_output=True, check=False
    )
    assert done.returncode == 0, done.stderr.decode()
    result: dict[str, object] = json.loads(done.stdout)
    return result


@needs_dot
@pytest.mark.parametrize("workflow_id", bundled())
@pytest.mark.parametrize("internal", [False, True])
def test_dot_parses(workflow_id: str, internal: bool) -> None:
    spec = specs()[workflow_id]
    graph = graphviz_json(dot(spec, internal=internal))
    names = {o["name"] for o in graph["objects"]}  # type: ignore[attr-defined]
    assert set(spec.states) <= names


@needs_dot
def test_hostile_labels_add_no_nodes_or_edges() -> None:
    spec = specs()["usmca-31a"]
    plain, hostile = graphviz_json(dot(spec)), graphviz_json(dot(hostile_spec()))
    assert len(hostile["objects"]) == len(plain["objects"])  # type: ignore[arg-type]
    assert len(hostile["edges"]) == len(plain["edges"])  # type: ignore[arg-type]
    [closed] = [o for o in hostile["objects"] if o["name"] == "closed"]  # type: ignore[attr-defined]
    assert closed["label"].startswith('Evil "label" [*] --> x : y; %% c')
