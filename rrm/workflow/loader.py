"""Read workflow definitions (TOML) into validated ``WorkflowSpec`` values.

Validation covers the whole file: unknown keys, states that cannot be reached,
transitions to undeclared states, unknown guards, effects, roles or calendars, and
deadlines or transitions without a citation. Every error names the file and the key.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from itertools import accumulate
from typing import TYPE_CHECKING, Any, Literal, cast

from rrm.domain.alerts import AlertLadder
from rrm.domain.case import Party
from rrm.domain.deadlines import Counting, Evidence
from rrm.errors import InvalidInput, InvalidWorkflow
from rrm.workflow.effects import EFFECT_ARGS
from rrm.workflow.guards import GUARDS
from rrm.workflow.spec import (
    DeadlineSpec,
    Direction,
    OpeningSpec,
    ParameterSpec,
    PayloadField,
    StateSpec,
    TransitionSpec,
    WorkflowSpec,
)

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

__all__ = [
    "MAX_TOML_BYTES",
    "MAX_TOML_DEPTH",
    "PAYLOAD_TYPES",
    "RESERVED_ROLES",
    "parse_workflow",
    "read_toml",
    "read_workflow",
    "toml_nesting",
]

PAYLOAD_TYPES = frozenset(
    {"str", "int", "bool", "date", "list[str]", "milestones", "enum"}
)
# Roles every workflow knows without declaring them: the engine's own lapse actions.
RESERVED_ROLES = frozenset({"system"})

_LADDER_KEYS = {
    "before",
    "before_business",
    "on_due",
    "overdue_every",
    "recipients",
    "supervisor_on_lapse",
    "hour",
}
_TOP = {
    "workflow",
    "calendars",
    "roles",
    "directions",
    "states",
    "openings",
    "transitions",
    "deadlines",
    "parameters",
    "alert_ladders",
    "facts",
}


class _Ctx:
    """Carries the file name so every error can name it."""

    def __init__(self, file: str) -> None:
        self.file = file

    def fail(self, key: str, reason: str) -> InvalidWorkflow:
        return InvalidWorkflow(self.file, key, reason)

    def table(self, data: Mapping[str, Any], key: str, path: str) -> dict[str, Any]:
        value = data.get(key)
        if not isinstance(value, dict):
            raise self.fail(f"{path}{key}", "a table is required here")
        return value

    def text(
        self,
        data: Mapping[str, Any],
        key: str,
        path: str,
        *,
        required: bool = True,
        default: str = "",
    ) -> str:
        value = data.get(key, None)
        if value is None:
            if required:
                raise self.fail(f"{path}{key}", "is required")
            return default
        if not isinstance(value, str) or (required and not value.strip()):
            raise self.fail(f"{path}{key}", "must be a non-empty string")
        return value

    def names(self, data: Mapping[str, Any], key: str, path: str) -> tuple[str, ...]:
        value = data.get(key, [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(f"{path}{key}", "must be a list of names")
        return tuple(value)

    def only(self, data: Mapping[str, Any], allowed: set[str], path: str) -> None:
        if not isinstance(data, dict):
            raise self.fail(path.rstrip(".") or "(file)", "a table is required here")
        for key in data:
            if key not in allowed:
                raise self.fail(f"{path}{key}", "unknown key")

    def evidence(self, data: Mapping[str, Any], path: str) -> Evidence:
        value = data.get("evidence")
        try:
            return Evidence(str(value))
        except ValueError:
            raise self.fail(
                f"{path}evidence", "must be V (verified), S (secondary) or R (recalled)"
            ) from None


#: Bytes of one TOML file (a workflow definition, a calendar, a migration map, a
#: settings file): about twenty times the largest bundled definition (56 kB).
MAX_TOML_BYTES = 1024 * 1024
#: Levels of tables, arrays and inline tables in one TOML file; the bundled
#: definitions use four.
MAX_TOML_DEPTH = 64

# What hides brackets from the nesting count: TOML's four kinds of string, and
# comments. An unterminated one runs to the end of its line (or of the text), and
# every alternative can always go on, so the scan never backtracks.
_TOML_OPAQUE = re.compile(
    r'"""(?:[^"\\]|\\[\s\S]?|"(?!""))*(?:"""(?:""?)?|\Z)'
    r"|'''[\s\S]*?(?:'''(?:''?)?|\Z)"
    r'|"(?:[^"\\\n]|\\[^\n]?)*(?:"|(?=\n)|\Z)'
    r"|'[^'\n]*(?:'|(?=\n)|\Z)"
    r"|#[^\n]*"
)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def toml_nesting(text: str) -> int:
    """Return how deeply *text* nests ``[``/``{`` outside strings and comments.

    Counted without recursion, before ``tomllib`` (which recurses once per level
    of arrays and inline tables) sees the text.
    """
    brackets = _NOT_BRACKET.sub("", _TOML_OPAQUE.sub("", text))
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def _too_deep(file: str, found: int | None) -> InvalidWorkflow:
    depth = f"{found:,}" if found else f"more than {MAX_TOML_DEPTH}"
    return InvalidWorkflow(
        file,
        "(file)",
        f"is nested {depth} levels deep; at most {MAX_TOML_DEPTH} levels of tables, "
        "arrays and inline tables are accepted",
    )


def _check_depth(file: str, data: object) -> None:
    """Refuse parsed data nested past the limit (dotted keys nest without brackets)."""
    level = [data]
    for _ in range(MAX_TOML_DEPTH):
        level = [
            child
            for item in level
            if isinstance(item, dict | list)
            for child in (item.values() if isinstance(item, dict) else item)
        ]
        if not level:
            return
    if any(isinstance(item, dict | list) for item in level):
        raise _too_deep(file, None)


def read_toml(path: Path) -> tuple[dict[str, Any], bytes]:
    """Parse a definition file; the only place RRM reads TOML.

    A file may take at most :data:`MAX_TOML_BYTES` and nest at most
    :data:`MAX_TOML_DEPTH` levels.

    Raises:
        InvalidWorkflow: If the file is not UTF-8 TOML, or breaks a limit.
    """
    file = str(path)
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_TOML_BYTES + 1)
    except OSError as exc:
        raise InvalidWorkflow(
            file, "(file)", f"cannot be read: {exc.strerror}"
        ) from None
    if len(raw) > MAX_TOML_BYTES:
        raise InvalidWorkflow(
            file,
            "(file)",
            f"is larger than {MAX_TOML_BYTES:,} bytes (1 MiB), the most a TOML "
            "file may take",
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidWorkflow(file, "(file)", f"not valid TOML: {exc}") from None
    depth = toml_nesting(text)
    if depth > MAX_TOML_DEPTH:
        raise _too_deep(file, depth)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidWorkflow(file, "(file)", f"not valid TOML: {exc}") from None
    except RecursionError:  # the last resort, should the count above miss a way
        raise _too_deep(file, None) from None
    _check_depth(file, data)
    return data, raw


def read_workflow(path: Path, *, calendar_ids: frozenset[str]) -> WorkflowSpec:
    """Read and validate one workflow definition file.

    Args:
        path: The TOML file.
        calendar_ids: Ids of the business-day calendars that are loaded.

    Raises:
        InvalidWorkflow: If the file breaks any rule; names the file and key.
    """
    data, raw = read_toml(path)
    sha = hashlib.sha256(raw).hexdigest()
    return parse_workflow(data, file=str(path), sha256=sha, calendar_ids=calendar_ids)


def parse_workflow(
    data: Mapping[str, Any], *, file: str, sha256: str, calendar_ids: frozenset[str]
) -> WorkflowSpec:
    """Validate parsed TOML data and build the ``WorkflowSpec`` (pure).

    Raises:
        InvalidWorkflow: If the data breaks any rule; names the file and key.
    """
    ctx = _Ctx(file)
    ctx.only(data, _TOP, "")
    head = ctx.table(data, "workflow", "")
    ctx.only(head, {"id", "version", "title", "annex", "status"}, "workflow.")
    version = head.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ctx.fail("workflow.version", "must be a whole number from 1")
    status = head.get("status", "draft")
    if not isinstance(status, str) or status not in {"draft", "released"}:
        raise ctx.fail("workflow.status", "must be 'draft' or 'released'")
    roles = _roles(ctx, data)
    states = _states(ctx, data)
    calendars = _calendars(ctx, data, calendar_ids)
    openings = _openings(ctx, data, states, roles)
    transitions = _transitions(ctx, data, states, roles)
    events = {t.event for t in transitions} | {o.event for o in openings.values()}
    facts = _facts(ctx, data, roles, events)
    ladders = _ladders(ctx, data, roles)
    deadlines = _deadlines(ctx, data, states, events, ladders)
    _check_lapses(ctx, transitions, deadlines)
    _check_openers(ctx, openings, transitions, deadlines)
    directions = _directions(ctx, data, openings, calendars)
    _check_graph(ctx, states, openings, transitions)
    return WorkflowSpec(
        workflow_id=ctx.text(head, "id", "workflow."),
        version=version,
        title=ctx.text(head, "title", "workflow."),
        annex=ctx.text(head, "annex", "workflow."),
        status=cast("Literal['draft', 'released']", status),
        source_file=file,
        sha256=sha256,
        directions=directions,
        calendars=calendars,
        roles=roles,
        states=states,
        openings=openings,
        transitions=transitions,
        deadlines=deadlines,
        parameters=_parameters(ctx, data),
        facts=facts,
    )


def _roles(ctx: _Ctx, data: Mapping[str, Any]) -> dict[str, str]:
    roles = ctx.table(data, "roles", "")
    for name, label in roles.items():
        if not isinstance(label, str) or not label:
            raise ctx.fail(f"roles.{name}", "must describe the role in words")
        if name in RESERVED_ROLES:
            raise ctx.fail(f"roles.{name}", "is reserved for the engine")
    return dict(roles)


def _states(ctx: _Ctx, data: Mapping[str, Any]) -> dict[str, StateSpec]:
    out: dict[str, StateSpec] = {}
    for name, body in ctx.table(data, "states", "").items():
        path = f"states.{name}."
        if not isinstance(body, dict):
            raise ctx.fail(f"states.{name}", "a table is required here")
        ctx.only(body, {"label", "terminal", "outcome"}, path)
        terminal = body.get("terminal", False)
        if not isinstance(terminal, bool):
            raise ctx.fail(f"{path}terminal", "must be true or false")
        out[name] = StateSpec(
            name=name,
            label=ctx.text(body, "label", path),
            terminal=terminal,
            outcome=ctx.text(body, "outcome", path, required=False),
        )
    if not out:
        raise ctx.fail("states", "declares no state")
    return out


def _calendars(
    ctx: _Ctx, data: Mapping[str, Any], calendar_ids: frozenset[str]
) -> dict[Party, str]:
    out: dict[Party, str] = {}
    for party, cal in ctx.table(data, "calendars", "").items():
        try:
            key = Party(party)
        except ValueError:
            raise ctx.fail(
                f"calendars.{party}", "is not a Party (US, MX, CA)"
            ) from None
        if not isinstance(cal, str) or cal not in calendar_ids:
            raise ctx.fail(f"calendars.{party}", f"unknown calendar {cal!r}")
        out[key] = cal
    return out


def _payload(ctx: _Ctx, body: Mapping[str, Any], path: str) -> tuple[PayloadField, ...]:
    fields = body.get("payload", {})
    if not isinstance(fields, dict):
        raise ctx.fail(f"{path}payload", "a table is required here")
    out = []
    for name, decl in fields.items():
        if not isinstance(decl, str):
            raise ctx.fail(f"{path}payload.{name}", "must be a type name")
        required = not decl.endswith("?")
        kind = decl.rstrip("?")
        choices: tuple[str, ...] = ()
        if kind.startswith("enum:"):
            kind, choices = "enum", tuple(kind[5:].split("|"))
        if kind not in PAYLOAD_TYPES or (kind == "enum" and not all(choices)):
            raise ctx.fail(f"{path}payload.{name}", f"unknown payload type {decl!r}")
        out.append(
            PayloadField(name=name, type=kind, required=required, choices=choices)
        )
    return tuple(out)


def _checks(
    ctx: _Ctx, body: Mapping[str, Any], path: str
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    guards = ctx.names(body, "guards", path)
    for i, g in enumerate(guards):
        if g not in GUARDS:
            raise ctx.fail(f"{path}guards[{i}]", f"unknown guard {g!r}")
    effects = ctx.names(body, "effects", path)
    for i, e in enumerate(effects):
        name, _, arg = e.partition(":")
        if name not in EFFECT_ARGS:
            raise ctx.fail(f"{path}effects[{i}]", f"unknown effect {name!r}")
        allowed = EFFECT_ARGS[name]
        if arg and allowed is not None and arg not in allowed:
            raise ctx.fail(f"{path}effects[{i}]", f"effect {name!r} takes no {arg!r}")
    return guards, effects


def _role_list(
    ctx: _Ctx, body: Mapping[str, Any], path: str, roles: Mapping[str, str]
) -> tuple[str, ...]:
    names = ctx.names(body, "roles", path)
    if not names:
        raise ctx.fail(f"{path}roles", "name at least one role allowed to fire it")
    for i, r in enumerate(names):
        if r not in roles and r not in RESERVED_ROLES:
            raise ctx.fail(f"{path}roles[{i}]", f"undeclared role {r!r}")
    return names


_OPENING_KEYS = {
    "event",
    "state",
    "roles",
    "label",
    "citation",
    "evidence",
    "guards",
    "effects",
    "payload",
}


def _openings(
    ctx: _Ctx,
    data: Mapping[str, Any],
    states: Mapping[str, StateSpec],
    roles: Mapping[str, str],
) -> dict[str, OpeningSpec]:
    out: dict[str, OpeningSpec] = {}
    for name, body in ctx.table(data, "openings", "").items():
        path = f"openings.{name}."
        ctx.only(body, _OPENING_KEYS, path)
        state = ctx.text(body, "state", path)
        if state not in states:
            raise ctx.fail(f"{path}state", f"undeclared state {state!r}")
        guards, effects = _checks(ctx, body, path)
        out[name] = OpeningSpec(
            name=name,
            event=ctx.text(body, "event", path),
            state=state,
            roles=_role_list(ctx, body, path, roles),
            label=ctx.text(body, "label", path),
            citation=ctx.text(body, "citation", path),
            evidence=ctx.evidence(body, path),
            guards=guards,
            effects=effects,
            payload=_payload(ctx, body, path),
        )
    if not out:
        raise ctx.fail("openings", "declares no way to open a case")
    return out


_TRANSITION_KEYS = {
    "event",
    "source",
    "dest",
    "roles",
    "label",
    "citation",
    "evidence",
    "guards",
    "effects",
    "payload",
    "flags",
    "after_lapse_of",
}


def _sources(
    ctx: _Ctx, body: Mapping[str, Any], path: str, states: Mapping[str, StateSpec]
) -> tuple[str, ...]:
    sources = ctx.names(body, "source", path)
    if sources == ("*",):
        # "*" means every state where the case is still open.
        return tuple(s for s, spec in states.items() if not spec.terminal)
    if not sources:
        raise ctx.fail(f"{path}source", "name at least one source state")
    for i, s in enumerate(sources):
        if s not in states:
            raise ctx.fail(f"{path}source[{i}]", f"undeclared state {s!r}")
        if states[s].terminal:
            raise ctx.fail(f"{path}source[{i}]", f"state {s!r} is terminal")
    return sources


def _transitions(
    ctx: _Ctx,
    data: Mapping[str, Any],
    states: Mapping[str, StateSpec],
    roles: Mapping[str, str],
) -> tuple[TransitionSpec, ...]:
    items = data.get("transitions")
    if not isinstance(items, list) or not items:
        raise ctx.fail("transitions", "an array of tables is required")
    out: list[TransitionSpec] = []
    for i, body in enumerate(items):
        path = f"transitions[{i}]."
        ctx.only(body, _TRANSITION_KEYS, path)
        dest = ctx.text(body, "dest", path)
        if dest not in states and dest != "=":
            raise ctx.fail(f"{path}dest", f"undeclared state {dest!r}")
        flags = body.get("flags", {})
        if not isinstance(flags, dict) or not all(
            isinstance(v, str) for v in flags.values()
        ):
            raise ctx.fail(f"{path}flags", "must map names to text")
        guards, effects = _checks(ctx, body, path)
        lapse = body.get("after_lapse_of")
        if lapse is not None and not isinstance(lapse, str):
            raise ctx.fail(f"{path}after_lapse_of", "must name a deadline")
        sources = _sources(ctx, body, path, states)
        # dest "=" records the event without changing state: one internal
        # transition per source state.
        pairs = [((s,), s) for s in sources] if dest == "=" else [(sources, dest)]
        out.extend(
            TransitionSpec(
                event=ctx.text(body, "event", path),
                sources=srcs,
                dest=target,
                roles=_role_list(ctx, body, path, roles),
                label=ctx.text(body, "label", path),
                citation=ctx.text(body, "citation", path),
                evidence=ctx.evidence(body, path),
                guards=guards,
                effects=effects,
                payload=_payload(ctx, body, path),
                flags=dict(flags),
                after_lapse_of=lapse,
                index=i,
            )
            for srcs, target in pairs
        )
    return tuple(out)


_FACT_KEYS = {"label", "roles", "citation", "evidence", "payload", "effects"}


def _facts(
    ctx: _Ctx,
    data: Mapping[str, Any],
    roles: Mapping[str, str],
    events: set[str],
) -> dict[str, TransitionSpec]:
    """Read ``[facts.<event>]``: dated facts recordable in every state.

    A fact never moves the case and never opens or meets a deadline; its own
    date is the payload field ``on`` (a fact learnt late is recorded late).
    """
    raw = data.get("facts", {})
    if not isinstance(raw, dict):
        raise ctx.fail("facts", "a table is required here")
    out: dict[str, TransitionSpec] = {}
    for event, body in raw.items():
        path = f"facts.{event}."
        ctx.only(body, _FACT_KEYS, path)
        if event in events:
            raise ctx.fail(
                f"facts.{event}", "is already an event of a transition or opening"
            )
        payload = _payload(ctx, body, path)
        on = next((f for f in payload if f.name == "on"), None)
        if on is None or on.type != "date" or not on.required:
            raise ctx.fail(
                f"{path}payload.on", 'a fact needs its own date: on = "date"'
            )
        _, effects = _checks(ctx, {"effects": body.get("effects", [])}, path)
        out[event] = TransitionSpec(
            event=event,
            sources=(),
            dest="",
            roles=_role_list(ctx, body, path, roles),
            label=ctx.text(body, "label", path),
            citation=ctx.text(body, "citation", path),
            evidence=ctx.evidence(body, path),
            effects=("fact", *effects),
            payload=payload,
            is_fact=True,
        )
    return out


_DEADLINE_KEYS = {
    "label",
    "actor",
    "party",
    "calendar",
    "days",
    "counting",
    "roll_forward",
    "anchor",
    "anchor_label",
    "opened_by",
    "active_in",
    "met_by",
    "citation",
    "evidence",
    "note",
    "agreed_from",
    "agreed_list",
    "anchor_from",
    "reanchored_by",
    "on_lapse",
    "alerts",
}


def _choice(
    ctx: _Ctx, body: Mapping[str, Any], key: str, path: str, allowed: tuple[str, ...]
) -> str:
    value = body.get(key, allowed[0])
    if value not in allowed:
        options = " or ".join(repr(a) for a in allowed)
        raise ctx.fail(f"{path}{key}", f"must be {options}")
    return str(value)


def _days(ctx: _Ctx, body: Mapping[str, Any], path: str) -> int | None:
    days = body.get("days")
    for key in ("agreed_from", "agreed_list"):
        if body.get(key) is not None and not isinstance(body[key], str):
            raise ctx.fail(f"{path}{key}", "must name a payload field")
    if days is None and body.get("agreed_from") is None and not body.get("agreed_list"):
        raise ctx.fail(f"{path}days", "give days, agreed_from or agreed_list")
    if days is not None and (
        not isinstance(days, int) or isinstance(days, bool) or days < 1
    ):
        raise ctx.fail(f"{path}days", "must be a whole number from 1")
    return days


def _anchor(ctx: _Ctx, body: Mapping[str, Any], path: str) -> str | None:
    anchor = body.get("anchor", "event")
    if isinstance(anchor, str) and anchor.startswith("deadline:"):
        return anchor.removeprefix("deadline:")
    if anchor != "event":
        raise ctx.fail(f"{path}anchor", "must be 'event' or 'deadline:<key>'")
    return None


def _anchor_from(
    ctx: _Ctx, body: Mapping[str, Any], path: str, anchor_deadline: str | None
) -> str | None:
    value = body.get("anchor_from")
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ctx.fail(f"{path}anchor_from", "must name a date field of the payload")
    if anchor_deadline is not None:
        raise ctx.fail(
            f"{path}anchor_from", "a deadline anchored on another deadline has no date"
        )
    return value


def _reanchored_by(
    ctx: _Ctx, body: Mapping[str, Any], path: str, events: set[str]
) -> tuple[str, ...]:
    names = ctx.names(body, "reanchored_by", path)
    if names and body.get("anchor_from") is None:
        raise ctx.fail(f"{path}reanchored_by", "needs anchor_from (the date field)")
    for i, e in enumerate(names):
        if e not in events:
            raise ctx.fail(f"{path}reanchored_by[{i}]", f"no event {e!r}")
    return names


def _refs(
    ctx: _Ctx,
    body: Mapping[str, Any],
    path: str,
    states: Mapping[str, StateSpec],
    events: set[str],
) -> tuple[tuple[str, ...], tuple[str, ...], frozenset[str]]:
    opened_by = ctx.names(body, "opened_by", path)
    met_by = ctx.names(body, "met_by", path)
    for field_name, names in (("opened_by", opened_by), ("met_by", met_by)):
        for i, e in enumerate(names):
            if e not in events:
                raise ctx.fail(f"{path}{field_name}[{i}]", f"no event {e!r}")
    if not opened_by:
        raise ctx.fail(f"{path}opened_by", "name the events that open the deadline")
    active_in = ctx.names(body, "active_in", path)
    for i, s in enumerate(active_in):
        if s not in states:
            raise ctx.fail(f"{path}active_in[{i}]", f"undeclared state {s!r}")
    return opened_by, met_by, frozenset(active_in)


def _ladders(
    ctx: _Ctx, data: Mapping[str, Any], roles: Mapping[str, str]
) -> dict[str, AlertLadder]:
    raw = data.get("alert_ladders", {})
    if not isinstance(raw, dict):
        raise ctx.fail("alert_ladders", "a table is required here")
    out: dict[str, AlertLadder] = {}
    for name, body in raw.items():
        path = f"alert_ladders.{name}."
        ctx.only(body, _LADDER_KEYS, path)
        recipients = ctx.names(body, "recipients", path)
        for i, role in enumerate(recipients):
            if role not in roles and role != "supervisor":
                raise ctx.fail(f"{path}recipients[{i}]", f"undeclared role {role!r}")
        try:
            out[name] = AlertLadder(
                before=tuple(body.get("before", (7, 3, 1))),
                before_business=bool(body.get("before_business", True)),
                on_due=bool(body.get("on_due", True)),
                overdue_every=body.get("overdue_every", 2),
                recipients=recipients,
                supervisor_on_lapse=bool(body.get("supervisor_on_lapse", True)),
                hour=int(body.get("hour", 8)),
            )
        except (InvalidInput, TypeError, ValueError) as exc:
            raise ctx.fail(
                path.rstrip("."), f"not a valid alert ladder: {exc}"
            ) from None
    return out


def _ladder_of(
    ctx: _Ctx, body: Mapping[str, Any], path: str, ladders: Mapping[str, AlertLadder]
) -> AlertLadder | None:
    name = body.get("alerts", "standard" if "standard" in ladders else None)
    if name is None or name == "none":
        return None
    if name not in ladders:
        raise ctx.fail(f"{path}alerts", f"unknown alert ladder {name!r}")
    return ladders[name]


def _deadline(
    ctx: _Ctx,
    key: str,
    body: Mapping[str, Any],
    *,
    states: Mapping[str, StateSpec],
    events: set[str],
    ladders: Mapping[str, AlertLadder],
) -> DeadlineSpec:
    path = f"deadlines.{key}."
    ctx.only(body, _DEADLINE_KEYS, path)
    opened_by, met_by, active_in = _refs(ctx, body, path, states, events)
    roll = body.get("roll_forward", False)
    if not isinstance(roll, bool):
        raise ctx.fail(f"{path}roll_forward", "must be true or false")
    anchor_deadline = _anchor(ctx, body, path)
    return DeadlineSpec(
        key=key,
        label=ctx.text(body, "label", path),
        actor=ctx.text(body, "actor", path),
        party=cast(
            "Literal['complainant', 'respondent']",
            _choice(ctx, body, "party", path, ("respondent", "complainant")),
        ),
        calendar=cast(
            "Literal['party', 'both']",
            _choice(ctx, body, "calendar", path, ("party", "both")),
        ),
        days=_days(ctx, body, path),
        counting=Counting(
            _choice(ctx, body, "counting", path, ("calendar", "business"))
        ),
        roll_forward=roll,
        anchor="event" if anchor_deadline is None else "deadline",
        anchor_deadline=anchor_deadline,
        anchor_label=ctx.text(body, "anchor_label", path),
        opened_by=opened_by,
        active_in=active_in,
        met_by=met_by,
        citation=ctx.text(body, "citation", path),
        evidence=ctx.evidence(body, path),
        note=ctx.text(body, "note", path, required=False),
        agreed_from=body.get("agreed_from"),
        agreed_list=body.get("agreed_list"),
        anchor_from=_anchor_from(ctx, body, path, anchor_deadline),
        reanchored_by=_reanchored_by(ctx, body, path, events),
        on_lapse=cast(
            "Literal['flag', 'advance']",
            _choice(ctx, body, "on_lapse", path, ("flag", "advance")),
        ),
        ladder=_ladder_of(ctx, body, path, ladders),
    )


def _deadlines(
    ctx: _Ctx,
    data: Mapping[str, Any],
    states: Mapping[str, StateSpec],
    events: set[str],
    ladders: Mapping[str, AlertLadder],
) -> dict[str, DeadlineSpec]:
    raw = data.get("deadlines", {})
    if not isinstance(raw, dict):
        raise ctx.fail("deadlines", "a table is required here")
    out = {
        k: _deadline(ctx, k, v, states=states, events=events, ladders=ladders)
        for k, v in raw.items()
    }
    for key, spec in out.items():
        if spec.anchor_deadline is not None and spec.anchor_deadline not in out:
            raise ctx.fail(f"deadlines.{key}.anchor", "anchors on an unknown deadline")
    for key, spec in out.items():
        seen, current = {key}, spec.anchor_deadline
        while current is not None:
            if current in seen:
                raise ctx.fail(
                    f"deadlines.{key}.anchor", "deadline anchors form a cycle"
                )
            seen.add(current)
            current = out[current].anchor_deadline
    return out


def _check_lapses(
    ctx: _Ctx,
    transitions: tuple[TransitionSpec, ...],
    deadlines: Mapping[str, DeadlineSpec],
) -> None:
    for t in transitions:
        if t.after_lapse_of is not None and t.after_lapse_of not in deadlines:
            raise ctx.fail(
                f"transitions[{t.index}].after_lapse_of",
                f"unknown deadline {t.after_lapse_of!r}",
            )
    for key, spec in deadlines.items():
        if spec.on_lapse != "advance":
            continue
        # The engine advances a lapsed deadline as the role "system": some
        # transition waiting for that lapse must admit it (in a state without one,
        # the lapse is only flagged).
        if not any(
            t.after_lapse_of == key and "system" in t.roles for t in transitions
        ):
            raise ctx.fail(
                f"deadlines.{key}.on_lapse",
                f"'advance' needs a transition after_lapse_of = {key!r} that the "
                "role 'system' may fire",
            )


def _check_openers(
    ctx: _Ctx,
    openings: Mapping[str, OpeningSpec],
    transitions: tuple[TransitionSpec, ...],
    deadlines: Mapping[str, DeadlineSpec],
) -> None:
    # A deadline opened by an event must be active in the state that event leads
    # to; otherwise it would be open in a state it does not belong to.
    arrivals = [(o.event, o.state) for o in openings.values()]
    arrivals += [(t.event, t.dest) for t in transitions]
    for key, spec in deadlines.items():
        for event, dest in arrivals:
            if event in spec.opened_by and dest not in spec.active_in:
                raise ctx.fail(
                    f"deadlines.{key}.active_in",
                    f"{event!r} opens it but leads to {dest!r}, which is not listed",
                )


def _directions(
    ctx: _Ctx,
    data: Mapping[str, Any],
    openings: Mapping[str, OpeningSpec],
    calendars: Mapping[Party, str],
) -> tuple[Direction, ...]:
    items = data.get("directions")
    if not isinstance(items, list) or not items:
        raise ctx.fail("directions", "an array of tables is required")
    out: list[Direction] = []
    for i, body in enumerate(items):
        path = f"directions[{i}]."
        ctx.only(
            body, {"complainant", "respondent", "openings", "guards", "note"}, path
        )
        try:
            pair = Party(body.get("complainant")), Party(body.get("respondent"))
        except ValueError:
            raise ctx.fail(path.rstrip("."), "Parties must be US, MX or CA") from None
        for p in pair:
            if p not in calendars:
                raise ctx.fail(f"{path}complainant", f"no calendar for Party {p}")
        names = ctx.names(body, "openings", path)
        for j, n in enumerate(names):
            if n not in openings:
                raise ctx.fail(f"{path}openings[{j}]", f"unknown opening {n!r}")
        guards, _ = _checks(ctx, body, path)
        out.append(
            Direction(
                complainant=pair[0],
                respondent=pair[1],
                openings=names,
                guards=guards,
                note=ctx.text(body, "note", path, required=False),
            )
        )
    return tuple(out)


def _check_graph(
    ctx: _Ctx,
    states: Mapping[str, StateSpec],
    openings: Mapping[str, OpeningSpec],
    transitions: tuple[TransitionSpec, ...],
) -> None:
    reached = {o.state for o in openings.values()}
    frontier = list(reached)
    while frontier:
        state = frontier.pop()
        for t in transitions:
            if state in t.sources and t.dest not in reached:
                reached.add(t.dest)
                frontier.append(t.dest)
    for name in states:
        if name not in reached:
            raise ctx.fail(f"states.{name}", "cannot be reached from any opening")
    for name, spec in states.items():
        if not spec.terminal and not any(name in t.sources for t in transitions):
            raise ctx.fail(f"states.{name}", "is not terminal but has no way out")


def _parameters(ctx: _Ctx, data: Mapping[str, Any]) -> dict[str, ParameterSpec]:
    raw = data.get("parameters", {})
    if not isinstance(raw, dict):
        raise ctx.fail("parameters", "a table is required here")
    out = {}
    for name, body in raw.items():
        path = f"parameters.{name}."
        ctx.only(body, {"value", "citation", "evidence", "note"}, path)
        value = body.get("value")
        if not isinstance(value, int) or isinstance(value, bool):
            raise ctx.fail(f"{path}value", "must be a whole number")
        out[name] = ParameterSpec(
            name=name,
            value=value,
            citation=ctx.text(body, "citation", path),
            evidence=ctx.evidence(body, path),
            note=ctx.text(body, "note", path, required=False),
        )
    return out
