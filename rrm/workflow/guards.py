"""Named guards: preconditions referenced by name from workflow data, never eval'd.

A guard is a pure function of a ``GuardContext`` returning ``None`` when the
condition holds, or a ``Rejection`` whose reason an officer can read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rrm.domain.case import Case, JSONValue

__all__ = [
    "GUARDS",
    "PRIORITY_SECTORS",
    "GuardContext",
    "Rejection",
    "register",
]

PRIORITY_SECTORS = frozenset({"manufacturing", "services", "mining"})
REMEDY_TYPES = frozenset({"suspension_of_preferences", "penalties", "denial_of_entry"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Rejection:
    """Why a guard refused."""

    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class GuardContext:
    """What a guard may look at: the case before the event, the event and its time."""

    case: Case
    event: str
    payload: Mapping[str, JSONValue]
    at: datetime
    prior_determinations: int
    parameters: Mapping[str, int]


Guard = Callable[[GuardContext], Rejection | None]
GUARDS: dict[str, Guard] = {}


def register(name: str) -> Callable[[Guard], Guard]:
    """Register a guard under *name* so workflow files can refer to it."""

    def deco(fn: Guard) -> Guard:
        GUARDS[name] = fn
        return fn

    return deco


def _claim(ctx: GuardContext) -> Mapping[str, JSONValue]:
    claim = ctx.case.attributes.get("claim")
    return claim if isinstance(claim, dict) else {}


@register("covered_facility")
def _covered_facility(ctx: GuardContext) -> Rejection | None:
    sector = _claim(ctx).get("sector_category")
    if sector in PRIORITY_SECTORS:
        return None
    return Rejection(
        reason="a Covered Facility must be in a Priority Sector (manufacturing, "
        f"services or mining); the claim says {sector!r}. (The trade prong of the "
        "definition is not checked by RRM.)",
    )


@register("claim_under_annex_23a_law")
def _annex_23a(ctx: GuardContext) -> Rejection | None:
    if _claim(ctx).get("basis") == "annex_23a_legislation":
        return None
    return Rejection(
        reason="a claim against a facility in Mexico must allege a denial of rights "
        "under legislation that complies with Annex 23-A "
        "(claim basis 'annex_23a_legislation')",
    )


@register("claim_under_enforced_nlrb_order")
def _nlrb(ctx: GuardContext) -> Rejection | None:
    claim = _claim(ctx)
    if claim.get("basis") == "enforced_nlrb_order" and claim.get("nlrb_order"):
        return None
    return Rejection(
        reason="a claim against a facility in the United States must rest on an "
        "enforced order of the National Labor Relations Board (claim basis "
        "'enforced_nlrb_order' with the order's reference)",
    )


@register("remedies_allowed")
def _remedies_allowed(ctx: GuardContext) -> Rejection | None:
    remedies = ctx.payload.get("remedies")
    if not isinstance(remedies, list) or not remedies:
        return Rejection(reason="name at least one remedy")
    unknown = [r for r in remedies if r not in REMEDY_TYPES]
    if unknown:
        return Rejection(
            reason=f"unknown remedy {unknown[0]!r}; use one of "
            f"{', '.join(sorted(REMEDY_TYPES))}",
        )
    threshold = ctx.parameters.get("repeat_threshold_prior_determinations", 2)
    if "denial_of_entry" in remedies and ctx.prior_determinations < threshold:
        return Rejection(
            reason="denial of entry is available only against a repeat offender: "
            f"the facility or its owner has {ctx.prior_determinations} prior "
            f"denial-of-rights determination(s), the threshold is {threshold} "
            "(nominal)",
        )
    return None


def _remediation_due(ctx: GuardContext) -> datetime | None:
    plan = ctx.case.attributes.get("remediation_plan")
    if not isinstance(plan, dict):
        return None
    deadline = ctx.case.deadline("remediation_due")
    return deadline.due_at if deadline is not None else None


def _completed_at(ctx: GuardContext) -> datetime | None:
    plan = ctx.case.attributes.get("remediation_plan")
    if isinstance(plan, dict) and isinstance(plan.get("reported_complete_at"), str):
        return datetime.fromisoformat(str(plan["reported_complete_at"]))
    return None


@register("remediation_completed_on_time")
def _on_time(ctx: GuardContext) -> Rejection | None:
    due, done = _remediation_due(ctx), _completed_at(ctx)
    if due is not None and done is not None and done < due:
        return None
    return Rejection(reason="remediation was not reported complete by the agreed date")


@register("remediation_completed_late")
def _late(ctx: GuardContext) -> Rejection | None:
    if _on_time(ctx) is None:
        return Rejection(reason="remediation was completed by the agreed date")
    return None


def _liquidation_status(ctx: GuardContext) -> str | None:
    liq = ctx.case.attributes.get("liquidation")
    if isinstance(liq, dict) and isinstance(liq.get("status"), str):
        return str(liq["status"])
    return None


@register("liquidation_not_suspended")
def _not_suspended(ctx: GuardContext) -> Rejection | None:
    if _liquidation_status(ctx) == "suspended":
        return Rejection(reason="liquidation is already suspended for this facility")
    return None


@register("liquidation_suspended")
def _suspended(ctx: GuardContext) -> Rejection | None:
    if _liquidation_status(ctx) == "suspended":
        return None
    return Rejection(reason="liquidation is not suspended for this facility")


@register("milestone_open")
def _milestone_open(ctx: GuardContext) -> Rejection | None:
    plan = ctx.case.attributes.get("remediation_plan")
    milestones = plan.get("milestones") if isinstance(plan, dict) else None
    index = ctx.payload.get("milestone")
    count = len(milestones) if isinstance(milestones, list) else 0
    if not isinstance(index, int) or not 1 <= index <= count:
        return Rejection(
            reason=f"the course of remediation has {count} milestone(s); "
            f"milestone {index!r} does not exist",
        )
    item = milestones[index - 1] if isinstance(milestones, list) else None
    if isinstance(item, dict) and item.get("status") == "met":
        return Rejection(reason=f"milestone {index} is already recorded as met")
    return None


@register("liquidation_basis_given")
def _basis_given(ctx: GuardContext) -> Rejection | None:
    # A case must not close with liquidation (or settlement) silently left
    # suspended: the officer says on which basis it resumes.
    if _liquidation_status(ctx) != "suspended":
        return None
    if ctx.payload.get("condition") or ctx.payload.get("basis"):
        return None
    return Rejection(
        reason="liquidation is suspended for this facility; say on which basis it "
        "resumes (payload 'condition' or 'basis') before closing",
    )


@register("remediation_due_unknown")
def _due_unknown(ctx: GuardContext) -> Rejection | None:
    plan = ctx.case.attributes.get("remediation_plan")
    if isinstance(plan, dict) and plan.get("due_unknown"):
        return None
    return Rejection(
        reason="the course of remediation already has its completion date; "
        "extend the deadline to move it"
    )
