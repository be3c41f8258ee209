"""Pictures of a workflow as text: Mermaid ``stateDiagram-v2`` and Graphviz DOT.

Both functions are pure: they read a validated ``WorkflowSpec`` and return text,
the same input always giving the same output. Every label taken from a definition
is escaped, so no state label, event name or citation can inject diagram syntax.

What the pictures show:

* an arrow from the start point to the state of each opening, labelled with the
  opening's event;
* one arrow per transition and source state, labelled with the event; a transition
  the engine fires when a deadline lapses is marked ``(on lapse)``, one only the
  ``system`` role fires is marked ``(system)``;
* an arrow from each terminal state to the end point;
* each state shown with its human label;
* internal (record-only) events, which never change the state, only when asked
  (``internal=True``): as a note beside each state that records them.
"""

from __future__ import annotations

import json
import re
import textwrap
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from rrm.workflow.spec import TransitionSpec, WorkflowSpec

__all__ = ["dot", "mermaid"]

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# Words the Mermaid state-diagram grammar treats as keywords; a state of that name
# gets a neutral identifier instead.
_MERMAID_RESERVED = frozenset(
    {"state", "note", "as", "end", "direction", "class", "classdef", "style",
     "left", "right", "of", "hide", "scale", "click", "accdescr", "acctitle"}
)  # fmt: skip
# Characters escaped in Mermaid text as numeric entity codes (``#34;``). Mermaid
# swaps such codes out before it parses a diagram and back when it draws it, so the
# escaped characters can never end a label, open a comment or form markup. Inside a
# quoted state description ``:`` and ``;`` are plain text; after ``:`` on an arrow or
# a note they would end the label, so there they are escaped too.
_MERMAID_QUOTED = frozenset('#"%&<>[]{}`\\')
_MERMAID_BARE = _MERMAID_QUOTED | frozenset(";:|")
_WRAP = 36


class _Edge(NamedTuple):
    source: str
    dest: str
    label: str
    lapse: bool


def _one_line(text: str) -> str:
    """Return *text* on one line: white space runs and control characters as a space."""
    text = "".join(ch if ch.isprintable() or ch.isspace() else " " for ch in text)
    return " ".join(text.split())


def _mermaid_text(text: str, *, quoted: bool = False) -> str:
    escaped = _MERMAID_QUOTED if quoted else _MERMAID_BARE
    return "".join(f"#{ord(ch)};" if ch in escaped else ch for ch in _one_line(text))


def _dot_text(text: str, *, wrap: int | None = None) -> str:
    r"""Return *text* as the body of a DOT quoted string (without the quotes).

    Backslashes are doubled so Graphviz's own escapes (``\\N``, ``\\G``, ``\\l``)
    cannot be smuggled in; quotes are escaped; long text is wrapped with ``\\n``.
    """
    line = _one_line(text)
    parts = textwrap.wrap(line, wrap) if wrap and line else [line]
    return "\\n".join(p.replace("\\", "\\\\").replace('"', '\\"') for p in parts)


def _edge_label(t: TransitionSpec) -> str:
    if t.after_lapse_of is not None:
        return f"{t.event} (on lapse)"
    if t.roles == ("system",):
        return f"{t.event} (system)"
    return t.event


def _edges(spec: WorkflowSpec) -> list[_Edge]:
    """One edge per transition and source state; exact repeats shown once."""
    seen: set[_Edge] = set()
    out: list[_Edge] = []
    for t in spec.transitions:
        if t.internal:
            continue
        for source in t.sources:
            edge = _Edge(source, t.dest, _edge_label(t), t.after_lapse_of is not None)
            if edge not in seen:
                seen.add(edge)
                out.append(edge)
    return out


def _internal_events(spec: WorkflowSpec) -> dict[str, list[str]]:
    """Internal event names by the state that records them, in definition order."""
    out: dict[str, list[str]] = {}
    for t in spec.transitions:
        if not t.internal:
            continue
        events = out.setdefault(t.dest, [])
        if t.event not in events:
            events.append(t.event)
    return out


def _mermaid_ids(spec: WorkflowSpec) -> dict[str, str]:
    """Map state names to Mermaid identifiers: the name itself whenever it is safe."""
    ids: dict[str, str] = {}
    taken: set[str] = set()
    for n, name in enumerate(_all_states(spec)):
        ok = _IDENT.match(name) and name.lower() not in _MERMAID_RESERVED
        ident = name if ok else f"state_{n}"
        while ident in taken:
            ident = f"{ident}_"
        taken.add(ident)
        ids[name] = ident
    return ids


def _all_states(spec: WorkflowSpec) -> list[str]:
    """Declared states, then any state only a transition or opening names."""
    names = list(spec.states)
    extra = [o.state for o in spec.openings.values()]
    for t in spec.transitions:
        extra.extend((*t.sources, t.dest))
    for name in extra:
        if name not in names:
            names.append(name)
    return names


def _title(spec: WorkflowSpec) -> str:
    return f"{spec.workflow_id} v{spec.version}: {spec.title}"


def mermaid(spec: WorkflowSpec, *, internal: bool = False) -> str:
    """Return the workflow as a Mermaid ``stateDiagram-v2``.

    Args:
        spec: The workflow definition.
        internal: Also list each state's internal (record-only) events as a note.

    Returns:
        Mermaid source text, ending with a newline.
    """
    ids = _mermaid_ids(spec)
    lines = [
        "---",
        f"title: {json.dumps(_one_line(_title(spec)), ensure_ascii=False)}",
        "---",
        "stateDiagram-v2",
    ]
    for name in _all_states(spec):
        state = spec.states.get(name)
        label = state.label if state is not None and state.label else name
        lines.append(f'    state "{_mermaid_text(label, quoted=True)}" as {ids[name]}')
    lines.extend(
        f"    [*] --> {ids[o.state]} : {_mermaid_text(o.event)}"
        for o in spec.openings.values()
    )
    lines.extend(
        f"    {ids[e.source]} --> {ids[e.dest]} : {_mermaid_text(e.label)}"
        for e in _edges(spec)
    )
    for name in _all_states(spec):
        state = spec.states.get(name)
        if state is not None and state.terminal:
            lines.append(f"    {ids[name]} --> [*]")
    if internal:
        for name, events in _internal_events(spec).items():
            text = _mermaid_text("records " + ", ".join(events))
            lines.append(f"    note right of {ids[name]} : {text}")
    return "\n".join(lines) + "\n"


def _q(text: str, *, wrap: int | None = None) -> str:
    return f'"{_dot_text(text, wrap=wrap)}"'


def dot(spec: WorkflowSpec, *, internal: bool = False) -> str:
    """Return the workflow as a Graphviz DOT ``digraph``, ready for ``dot -Tsvg``.

    Every identifier and label is a quoted, escaped DOT string. Arrows fired on a
    lapse are dashed; terminal states have a double border.

    Args:
        spec: The workflow definition.
        internal: Also show each state's internal (record-only) events as a note.

    Returns:
        DOT source text, ending with a newline.
    """
    lines = [
        f"digraph {_q(f'{spec.workflow_id} v{spec.version}')} {{",
        (
            f"    graph [label={_q(_title(spec))}, labelloc=t, rankdir=TB, "
            'fontname="Helvetica"];'
        ),
        '    node [shape=box, style=rounded, fontname="Helvetica", fontsize=10];',
        '    edge [fontname="Helvetica", fontsize=9];',
        (
            '    "[*] start" [shape=circle, style=filled, fillcolor=black, '
            'label="", width=0.2];'
        ),
        (
            '    "[*] end" [shape=doublecircle, style=filled, fillcolor=black, '
            'label="", width=0.15];'
        ),
    ]
    for name in _all_states(spec):
        state = spec.states.get(name)
        label = state.label if state is not None and state.label else name
        text = f"{_dot_text(label, wrap=_WRAP)}\\n[{_dot_text(name)}]"
        extra = ", peripheries=2" if state is not None and state.terminal else ""
        tooltip = _q(state.outcome if state is not None and state.outcome else name)
        lines.append(f'    {_q(name)} [label="{text}", tooltip={tooltip}{extra}];')
    lines.extend(
        f'    "[*] start" -> {_q(o.state)} [label={_q(o.event)}];'
        for o in spec.openings.values()
    )
    for edge in _edges(spec):
        style = ", style=dashed" if edge.lapse else ""
        lines.append(
            f"    {_q(edge.source)} -> {_q(edge.dest)} [label={_q(edge.label)}{style}];"
        )
    for name in _all_states(spec):
        state = spec.states.get(name)
        if state is not None and state.terminal:
            lines.append(f'    {_q(name)} -> "[*] end";')
    if internal:
        for name, events in _internal_events(spec).items():
            note = f"[note] {name}"
            text = _q("records " + ", ".join(events), wrap=_WRAP)
            lines.append(
                f"    {_q(note)} [shape=note, style=filled, fillcolor=lightyellow, "
                f"fontsize=9, label={text}];"
            )
            lines.append(
                f"    {_q(name)} -> {_q(note)} [style=dotted, arrowhead=none];"
            )
    lines.append("}")
    return "\n".join(lines) + "\n"
