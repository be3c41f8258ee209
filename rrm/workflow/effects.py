"""Named effects: pure updates of a case's attributes, referenced from workflow data.

An effect never performs I/O. It returns the attribute keys it replaces, and may ask
the service to record a denial-of-rights determination against the facility (so
repeat offenders can be counted across cases).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datetime import datetime

    from rrm.domain.case import JSONValue

__all__ = ["EFFECTS", "LIQUIDATION_CONDITIONS", "EffectContext", "EffectOutcome"]

# 19 U.S.C. 4692(b): the three statutory conditions on which suspended liquidation
# resumes, plus "policy" for a resumption no statutory condition fits (for example
# after the respondent's own no-denial finding is accepted).
LIQUIDATION_CONDITIONS = (
    "no_dor_by_panel",
    "agreed_remediation_completed_on_time",
    "otherwise_remedied",
    "policy",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class EffectContext:
    """What an effect sees: the attributes before the event, the event, its time."""

    attributes: Mapping[str, JSONValue]
    event: str
    payload: Mapping[str, JSONValue]
    at: datetime
    citation: str
    arg: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class EffectOutcome:
    """Attribute keys to replace, and whether a DoR determination is recorded."""

    updates: dict[str, JSONValue] = field(default_factory=dict)
    determination: bool = False


Effect = Callable[[EffectContext], EffectOutcome]
EFFECTS: dict[str, Effect] = {}
# Effects that take an argument after a colon, with the values they accept.
EFFECT_ARGS: dict[str, tuple[str, ...] | None] = {}


def _register(
    name: str, args: tuple[str, ...] | None = ()
) -> Callable[[Effect], Effect]:
    def deco(fn: Effect) -> Effect:
        EFFECTS[name] = fn
        EFFECT_ARGS[name] = args
        return fn

    return deco


def _dict(ctx: EffectContext, key: str) -> dict[str, JSONValue]:
    value = ctx.attributes.get(key)
    return copy.deepcopy(value) if isinstance(value, dict) else {}


def _iso(at: datetime) -> str:
    return at.isoformat()


@_register("liquidation_suspended")
def _suspend(ctx: EffectContext) -> EffectOutcome:
    liq = _dict(ctx, "liquidation")
    periods = liq.get("periods")
    periods = list(periods) if isinstance(periods, list) else []
    basis = ctx.payload.get("basis") or ctx.citation
    periods.append({"suspended_at": _iso(ctx.at), "basis": basis})
    return EffectOutcome(
        updates={"liquidation": {"status": "suspended", "periods": periods}}
    )


@_register("liquidation_resumed", args=None)
def _resume(ctx: EffectContext) -> EffectOutcome:
    liq = _dict(ctx, "liquidation")
    periods = liq.get("periods")
    if liq.get("status") != "suspended" or not isinstance(periods, list):
        # Nothing to resume: liquidation was never suspended in this case.
        return EffectOutcome()
    condition = ctx.arg or ctx.payload.get("condition")
    basis = ctx.payload.get("basis")
    if condition is None and basis is None:
        # Nothing said about resuming; the guard liquidation_basis_given makes
        # closing transitions say it whenever liquidation is suspended.
        return EffectOutcome()
    last = dict(periods[-1]) if isinstance(periods[-1], dict) else {}
    last.update(
        resumed_at=_iso(ctx.at),
        condition=condition,
        resumption_basis=basis or ctx.citation,
    )
    periods[-1] = last
    return EffectOutcome(
        updates={"liquidation": {"status": "resumed", "periods": periods}}
    )


def _set_remedies(ctx: EffectContext, old: str, new: str, stamp: str) -> EffectOutcome:
    remedies = ctx.attributes.get("remedies")
    items = copy.deepcopy(remedies) if isinstance(remedies, list) else []
    for item in items:
        if isinstance(item, dict) and item.get("status") == old:
            item["status"] = new
            item[stamp] = _iso(ctx.at)
    return EffectOutcome(updates={"remedies": items})


@_register("remedies_noticed")
def _remedies_noticed(ctx: EffectContext) -> EffectOutcome:
    remedies = ctx.payload.get("remedies")
    kinds = remedies if isinstance(remedies, list) else []
    items: list[JSONValue] = [
        {"type": k, "status": "noticed", "noticed_at": _iso(ctx.at)} for k in kinds
    ]
    return EffectOutcome(updates={"remedies": items})


@_register("remedies_in_force")
def _remedies_in_force(ctx: EffectContext) -> EffectOutcome:
    return _set_remedies(ctx, "noticed", "in_force", "in_force_since")


@_register("remedies_lifted")
def _remedies_lifted(ctx: EffectContext) -> EffectOutcome:
    return _set_remedies(ctx, "in_force", "lifted", "lifted_at")


@_register("dor_determined")
def _dor(ctx: EffectContext) -> EffectOutcome:
    return EffectOutcome(
        updates={"panel_determination": {"result": "denial", "at": _iso(ctx.at)}},
        determination=True,
    )


@_register("no_dor_determined")
def _no_dor(ctx: EffectContext) -> EffectOutcome:
    return EffectOutcome(
        updates={"panel_determination": {"result": "no_denial", "at": _iso(ctx.at)}}
    )


@_register("remediation_plan_agreed")
def _plan(ctx: EffectContext) -> EffectOutcome:
    milestones = ctx.payload.get("milestones")
    items: list[JSONValue] = [
        {**m, "status": "open"}
        for m in (milestones if isinstance(milestones, list) else [])
        if isinstance(m, dict)
    ]
    plan: dict[str, JSONValue] = {
        "agreed_at": _iso(ctx.at),
        "due": ctx.payload.get("due"),
        "milestones": items,
    }
    if ctx.payload.get("due") is None:
        # The end date was never published (or is not yet known): flagged, and
        # no completion clock runs until the date is recorded.
        plan["due_unknown"] = True
    return EffectOutcome(updates={"remediation_plan": plan})


@_register("remediation_reported_complete")
def _reported(ctx: EffectContext) -> EffectOutcome:
    plan = _dict(ctx, "remediation_plan")
    plan["reported_complete_at"] = _iso(ctx.at)
    return EffectOutcome(updates={"remediation_plan": plan})


@_register("milestone_met")
def _milestone(ctx: EffectContext) -> EffectOutcome:
    plan = _dict(ctx, "remediation_plan")
    milestones = plan.get("milestones")
    index = ctx.payload.get("milestone")
    if isinstance(milestones, list) and isinstance(index, int):
        item = milestones[index - 1]
        if isinstance(item, dict):
            item["status"] = "met"
            item["met_at"] = _iso(ctx.at)
    return EffectOutcome(updates={"remediation_plan": plan})


@_register("record", args=None)
def _record(ctx: EffectContext) -> EffectOutcome:
    # Generic bookkeeping: keep the event's payload under attributes[arg], stamped.
    key = ctx.arg or ctx.event
    record = _dict(ctx, key)
    record.update(ctx.payload)
    record[f"{ctx.event}_at"] = _iso(ctx.at)
    return EffectOutcome(updates={key: record})


@_register("fact")
def _fact(ctx: EffectContext) -> EffectOutcome:
    # A dated fact that is not a procedural step: kept in date order with the
    # instant it was recorded, so a fact learnt late keeps its own date.
    facts = ctx.attributes.get("facts")
    items = copy.deepcopy(facts) if isinstance(facts, list) else []
    item: dict[str, JSONValue] = {"fact": ctx.event, **ctx.payload}
    item["recorded_at"] = _iso(ctx.at)
    items.append(item)
    items.sort(key=lambda f: str(f.get("on", "")) if isinstance(f, dict) else "")
    return EffectOutcome(updates={"facts": items})


@_register("milestone_added")
def _milestone_added(ctx: EffectContext) -> EffectOutcome:
    # An unscheduled milestone the Parties add to an agreed course of
    # remediation: numbered after the existing ones, like the deadline it opens.
    plan = _dict(ctx, "remediation_plan")
    milestones = plan.get("milestones")
    items = list(milestones) if isinstance(milestones, list) else []
    items.append(
        {
            "label": ctx.payload.get("label"),
            "due": ctx.payload.get("due"),
            "status": "open",
            "added_at": _iso(ctx.at),
        }
    )
    plan["milestones"] = items
    return EffectOutcome(updates={"remediation_plan": plan})


@_register("remediation_due_recorded")
def _due_recorded(ctx: EffectContext) -> EffectOutcome:
    plan = _dict(ctx, "remediation_plan")
    plan["due"] = ctx.payload.get("due")
    plan.pop("due_unknown", None)
    return EffectOutcome(updates={"remediation_plan": plan})
