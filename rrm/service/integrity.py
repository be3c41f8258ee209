"""Damage: what a stored case row cannot be, and the register of damaged cases.

Two findings make a case damaged. The structural one is cheap and made on every
read: a state or a deadline its pinned workflow version does not have. The full
one is the verification (``CaseEngine.verify``): the chain broken, or a stored
row that is not what replaying the history gives. ``rrm audit verify`` and the
worker's nightly verification keep the damaged cases in a register
(``rrm_damage``): reads name a registered case, the deadline sweep skips it, and
the administrator is told once per distinct damage. A verification that finds
the case whole again takes it off the register.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING

import structlog

from rrm.domain.alerts import Alert, AlertKind
from rrm.errors import CaseDamaged, RRMError
from rrm.service.ports import Damage
from rrm.workflow.clocks import spec_key

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from rrm.domain.case import Case
    from rrm.service.alerting import AlertSettings
    from rrm.service.ports import UnitOfWork
    from rrm.workflow.registry import Workflows

__all__ = [
    "damage_notice",
    "raise_if_damaged",
    "register",
    "structural_damage",
]

log = structlog.get_logger("rrm.integrity")

#: The recipient id of the administrator's notices.
ADMIN = "rrm:admin"


def structural_damage(case: Case, workflows: Workflows) -> tuple[str, str] | None:
    """Return (field, what is wrong) when the row cannot be its workflow's, else None.

    A workflow the host did not load is not damage.
    """
    try:
        spec = workflows.get(case.workflow_id, case.workflow_version)
    except RRMError:
        return None
    version = f"{case.workflow_id} v{case.workflow_version}"
    if case.state not in spec.states:
        return "state", f"{case.state!r} is not a state of {version}"
    for d in case.deadlines:
        if spec_key(d.key) not in spec.deadlines:
            return (
                f"deadline {d.deadline_id}",
                f"{d.key!r} is not a deadline of {version}",
            )
    return None


def raise_if_damaged(case: Case, workflows: Workflows, known: Damage | None) -> Case:
    """Return *case*, or raise ``CaseDamaged`` naming the field.

    *known* is the case's entry in the damage register, if any.
    """
    found = structural_damage(case, workflows)
    if found is not None:
        raise CaseDamaged(case.case_id, *found, ref=case.external_ref)
    if known is not None:
        more = len(known.problems) - 1
        detail = known.problems[0] if known.problems else "differs from its history"
        if more > 0:
            detail += f" (and {more} more)"
        detail = detail.removeprefix(f"{known.field}: ").removeprefix(f"{known.field} ")
        raise CaseDamaged(
            case.case_id,
            known.field,
            f"{detail}; found by the verification of "
            f"{known.found_at.isoformat(timespec='seconds')}",
            ref=case.external_ref,
        )
    return case


def _fingerprint(problems: Sequence[str]) -> str:
    text = json.dumps(sorted(problems), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def register(
    uow: UnitOfWork,
    case_id: str,
    *,
    field: str,
    problems: Sequence[str],
    now: datetime,
    settings: AlertSettings | None,
) -> bool:
    """Register *case_id* as damaged (or whole again, with no *problems*).

    A new or changed damage queues one notice to the administrator (when
    *settings* name one). Returns True when the register changed.
    """
    if not problems:
        cleared = uow.cases.clear_damage(case_id)
        if cleared:
            log.info("case_damage_cleared", case_id=case_id)
        return cleared
    damage = Damage(
        case_id=case_id,
        found_at=now,
        field=field,
        problems=tuple(problems),
        fingerprint=_fingerprint(problems),
    )
    changed = uow.cases.record_damage(damage)
    if changed:
        # Identifiers and counts only: a problem may quote a stored value.
        log.error("case_damaged", case_id=case_id, problems=len(problems))
        notice = damage_notice(damage, now=now, settings=settings)
        if notice is not None:
            uow.outbox.add_alerts([notice])
    return changed


def damage_notice(
    damage: Damage, *, now: datetime, settings: AlertSettings | None
) -> Alert | None:
    """The one e-mail telling the administrator a case is damaged (None: no address).

    One per case and distinct damage: the outbox's key (deadline, step,
    recipient) makes a second notice of the same damage a no-op.
    """
    if settings is None or not settings.admin_address:
        return None
    short = damage.fingerprint[:16]
    return Alert(
        alert_id=f"damage:{damage.case_id}:{short}",
        deadline_id=f"damage:{damage.case_id}",
        case_id=damage.case_id,
        step=f"damaged:{short}",
        kind=AlertKind.CASE_DAMAGED,
        recipient_id=ADMIN,
        recipient_email=settings.admin_address,
        recipient_role="admin",
        language="en",
        timezone="UTC",
        owed_at=now,
        created_at=now,
        late=False,
    )
