"""Validated workflow definitions: states, openings, transitions and deadlines.

A ``WorkflowSpec`` is what a TOML definition becomes after validation; every other
part of RRM reads workflows only through these frozen values.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal

from rrm.domain.deadlines import Counting, Evidence

if TYPE_CHECKING:
    from collections.abc import Mapping

    from rrm.domain.alerts import AlertLadder
    from rrm.domain.case import Party

__all__ = [
    "DeadlineSpec",
    "Direction",
    "OpeningSpec",
    "ParameterSpec",
    "PayloadField",
    "StateSpec",
    "TransitionSpec",
    "WorkflowSpec",
]

AnchorKind = Literal["event", "deadline"]


@dataclass(frozen=True, slots=True, kw_only=True)
class PayloadField:
    """One field an event's payload may or must carry."""

    name: str
    type: str
    required: bool
    choices: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class StateSpec:
    """A state of the procedure."""

    name: str
    label: str
    terminal: bool = False
    outcome: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Direction:
    """A complainant → respondent pairing the workflow accepts."""

    complainant: Party
    respondent: Party
    openings: tuple[str, ...]
    guards: tuple[str, ...] = ()
    note: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class OpeningSpec:
    """How a case enters the workflow (a petition, self-initiation, a request)."""

    name: str
    event: str
    state: str
    roles: tuple[str, ...]
    label: str
    citation: str
    evidence: Evidence
    guards: tuple[str, ...] = ()
    effects: tuple[str, ...] = ()
    payload: tuple[PayloadField, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class TransitionSpec:
    """An event that moves a case from one of ``sources`` to ``dest``."""

    event: str
    sources: tuple[str, ...]
    dest: str
    roles: tuple[str, ...]
    label: str
    citation: str
    evidence: Evidence
    guards: tuple[str, ...] = ()
    effects: tuple[str, ...] = ()
    payload: tuple[PayloadField, ...] = ()
    flags: Mapping[str, str] = field(default_factory=dict)
    after_lapse_of: str | None = None
    index: int = 0
    is_fact: bool = False

    @property
    def internal(self) -> bool:
        """True when the event records something without changing the state."""
        return len(self.sources) == 1 and self.sources[0] == self.dest


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadlineSpec:
    """A clock: who owes what by when, what opens it and what closes it."""

    key: str
    label: str
    actor: str
    party: Literal["complainant", "respondent"]
    calendar: Literal["party", "both"]
    days: int | None
    counting: Counting
    roll_forward: bool
    anchor: AnchorKind
    anchor_deadline: str | None
    anchor_label: str
    opened_by: tuple[str, ...]
    active_in: frozenset[str]
    met_by: tuple[str, ...]
    citation: str
    evidence: Evidence
    note: str = ""
    agreed_from: str | None = None
    agreed_list: str | None = None
    anchor_from: str | None = None
    reanchored_by: tuple[str, ...] = ()
    on_lapse: Literal["flag", "advance"] = "flag"
    ladder: AlertLadder | None = None

    @property
    def nominal(self) -> bool:
        """True when the number rests on recalled, unverified text."""
        return self.evidence is Evidence.RECALLED


@dataclass(frozen=True, slots=True, kw_only=True)
class ParameterSpec:
    """A configurable legal number (for example the repeat-offender threshold)."""

    name: str
    value: int
    citation: str
    evidence: Evidence
    note: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowSpec:
    """A whole, validated workflow definition of one version."""

    workflow_id: str
    version: int
    title: str
    annex: str
    status: Literal["draft", "released"]
    source_file: str
    sha256: str
    directions: tuple[Direction, ...]
    calendars: Mapping[Party, str]
    roles: Mapping[str, str]
    states: Mapping[str, StateSpec]
    openings: Mapping[str, OpeningSpec]
    transitions: tuple[TransitionSpec, ...]
    deadlines: Mapping[str, DeadlineSpec]
    parameters: Mapping[str, ParameterSpec]
    # Dated facts recordable in every state, closed ones included, without moving
    # the case (a legitimation vote, a published determination): one template
    # per event, with no sources; ``transitions_from`` expands them per state.
    facts: Mapping[str, TransitionSpec] = field(default_factory=dict)
    # Transitions by source state, in definition order (every fire asks).
    _from: Mapping[str, tuple[TransitionSpec, ...]] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        index: dict[str, list[TransitionSpec]] = {}
        for t in self.transitions:
            for source in dict.fromkeys(t.sources):
                index.setdefault(source, []).append(t)
        for state in self.states:
            index.setdefault(state, []).extend(
                replace(f, sources=(state,), dest=state) for f in self.facts.values()
            )
        by_state = {state: tuple(ts) for state, ts in index.items()}
        object.__setattr__(self, "_from", by_state)

    def expanded_transitions(self) -> tuple[TransitionSpec, ...]:
        """Return the transitions and every fact expanded to each state."""
        facts = tuple(t for ts in self._from.values() for t in ts if t.is_fact)
        return (*self.transitions, *facts)

    def is_fact(self, event: str) -> bool:
        """True when *event* records a dated fact, possible in every state."""
        return event in self.facts

    def transitions_from(self, state: str) -> tuple[TransitionSpec, ...]:
        """Return the transitions whose sources include *state*."""
        return self._from.get(state, ())

    def direction(self, complainant: Party, respondent: Party) -> Direction | None:
        """Return the direction for this pair of Parties, if the workflow has it."""
        for d in self.directions:
            if d.complainant is complainant and d.respondent is respondent:
                return d
        return None

    def parameter(self, name: str) -> int:
        """Return the value of a legal parameter declared in the definition."""
        return self.parameters[name].value
