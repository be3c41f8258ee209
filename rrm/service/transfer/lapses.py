"""Lapses on import: a recorded lapse replayed, a step the record lacks marked unknown.

A ``deadline_missed`` entry of a document is the sweep's audited record of a lapse:
it is replayed as the sweep wrote it (same entry, the deadline marked lapsed at its
due instant), so an imported case and the case lived through with ticks agree and
the next tick records no second lapse. A deadline still open and past due after the
replay, that the record never lapsed, is a step the record lacks: it is marked
unknown (see :mod:`rrm.domain.unknown`), one audited entry per deadline, and the
sweep alerts the officers about it instead of taking its lapse action.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC
from typing import TYPE_CHECKING

from rrm.domain.case import (
    Case,
    Deadline,
    DeadlineStatus,
    HistoryEntry,
    JSONValue,
    entry_hash,
)
from rrm.domain.unknown import STEP_UNKNOWN, UNKNOWN_STEPS, unknown_steps
from rrm.errors import CaseNotFound, InvalidInput
from rrm.service import handlers
from rrm.service.ports import CaseChange
from rrm.workflow.clocks import scheduled, spec_key

if TYPE_CHECKING:
    from datetime import date, datetime

    from rrm.service.ports import UnitOfWork
    from rrm.workflow.registry import Workflows

__all__: list[str] = []  # package-private: used by the import

#: The sweep's audited record of a lapse.
LAPSED = "deadline_missed"
#: Who marks a step unknown.
IMPORT_ACTOR = "rrm:import"


def lapse_change(
    uow: UnitOfWork,
    workflows: Workflows,
    case_id: str,
    *,
    key: str,
    due: date | None,
    at: datetime,
    now: datetime,
) -> CaseChange:
    """Build the change that replays a recorded lapse of deadline *key*.

    The entry is the one the sweep writes (``handlers.record_lapse``), dated at the
    recorded instant; the deadline is marked lapsed at its due instant, and alerts
    are owed from *now* on (the import does not replay old ones).

    Raises:
        CaseNotFound: If the case is not there.
        InvalidInput: If no open deadline *key* can have lapsed at *at*.
    """
    case = uow.cases.get(case_id, lock=True)
    if case is None:
        raise CaseNotFound(case_id)
    deadline = case.open_deadlines.get(key)
    if deadline is None or deadline.status is not DeadlineStatus.OPEN:
        raise InvalidInput(
            "payload.deadline",
            f"no running deadline {key!r} can lapse in state {case.state!r}",
        )
    if deadline.lapsed_at is not None:
        raise InvalidInput(
            "payload.deadline",
            f"{key!r} lapsed already (due {deadline.due_date.isoformat()})",
        )
    if due is not None and due != deadline.due_date:
        raise InvalidInput(
            "payload.due_date",
            f"the record says {key!r} was due on {due.isoformat()}, the replay "
            f"gives {deadline.due_date.isoformat()}",
        )
    if at < deadline.due_at:
        raise InvalidInput(
            "at",
            f"{at.isoformat()} is before {key!r} ran out "
            f"({deadline.due_at.astimezone(UTC).isoformat()}, the end of its due "
            f"date {deadline.due_date.isoformat()} in {deadline.timezone})",
        )
    if at < case.last_event_at:
        raise InvalidInput(
            "at",
            f"{at.isoformat()} is before the case's last event "
            f"({case.last_event_at.isoformat()}); record events in the order "
            "they happened",
        )
    spec = workflows.get(case.workflow_id, case.workflow_version)
    marked = scheduled(
        dataclasses.replace(deadline, alerts_through=now, lapsed_at=deadline.due_at),
        spec.deadlines[spec_key(key)],
        workflows.calendar(deadline.calendar_id),
    )
    # The sweep dates its entry at the lapse, or at the case's last event if that
    # came later; the record's instant is one of those, so it is taken as given.
    return handlers.record_lapse(
        uow, dataclasses.replace(case, last_event_at=at), marked, now=now
    )


def unknown_change(
    uow: UnitOfWork,
    case_id: str,
    *,
    key: str,
    due: date | None,
    at: datetime,
    since: datetime | None,
    now: datetime,
) -> CaseChange:
    """Build the change that marks deadline *key*'s step unknown.

    One audited ``step_unknown`` entry (role ``system``, actor ``rrm:import``),
    dated *at* (the record's last event: the officer may still record the step at
    its real date), and the mark in ``attributes["unknown_steps"]``, holding from
    *since* (the import; when ``None``, *at* or the deadline's end if later). The
    deadline is owed to the sweep at once, which alerts the officers about it and
    takes no lapse action.

    Raises:
        CaseNotFound: If the case is not there.
        InvalidInput: If no running deadline *key* has passed by *now*.
    """
    case = uow.cases.get(case_id, lock=True)
    if case is None:
        raise CaseNotFound(case_id)
    d = case.open_deadlines.get(key)
    if d is None or d.status is not DeadlineStatus.OPEN or d.lapsed_at is not None:
        raise InvalidInput(
            "payload.deadline",
            f"no running deadline {key!r} in state {case.state!r} whose step "
            "could be unknown",
        )
    if due is not None and due != d.due_date:
        raise InvalidInput(
            "payload.due_date",
            f"the record says {key!r} was due on {due.isoformat()}, the replay "
            f"gives {d.due_date.isoformat()}",
        )
    since = max(at, d.due_at) if since is None else since
    if now < d.due_at or since < d.due_at:
        raise InvalidInput(
            "payload.deadline",
            f"{key!r} runs until {d.due_at.astimezone(UTC).isoformat()}: a step "
            "is unknown only once its deadline has passed",
        )
    if at < case.last_event_at:
        raise InvalidInput(
            "at",
            f"{at.isoformat()} is before the case's last event "
            f"({case.last_event_at.isoformat()}); record events in the order "
            "they happened",
        )
    marks = case.attributes.get(UNKNOWN_STEPS)
    merged: dict[str, JSONValue] = dict(marks) if isinstance(marks, dict) else {}
    merged[key] = {
        "due_date": d.due_date.isoformat(),
        "since": since.astimezone(UTC).isoformat(),
    }
    # Owed to the sweep at once: it alerts the officers (no lapse, no action).
    marked = dataclasses.replace(d, alerts_through=now, next_action_at=now)
    seq = case.version + 1
    by_id = {x.deadline_id: x for x in case.deadlines}
    by_id[d.deadline_id] = marked
    after = dataclasses.replace(
        case,
        version=seq,
        updated_at=now,
        last_event_at=at,
        attributes={**case.attributes, UNKNOWN_STEPS: merged},
        deadlines=tuple(sorted(by_id.values(), key=lambda x: (x.opened_seq, x.key))),
    )
    payload: dict[str, JSONValue] = {
        "deadline": key,
        "due_date": d.due_date.isoformat(),
        "nominal": d.nominal,
    }
    fields: dict[str, object] = {
        "case_id": case.case_id,
        "seq": seq,
        "event": STEP_UNKNOWN,
        "from_state": case.state,
        "to_state": after.state,
        "actor": IMPORT_ACTOR,
        "role": "system",
        "reason": (
            f"{d.label}: due {d.due_date.isoformat()}; the imported record shows "
            "neither this step nor its lapse, so no lapse action is taken. Record "
            "the step with its date, or the lapse action."
        ),
        "payload": payload,
        "occurred_at": at,
        "recorded_at": now,
        "idempotency_key": None,
        "via": "",
    }
    prev = uow.cases.last_hash(case.case_id)
    digest = entry_hash(prev_hash=prev, **fields)  # type: ignore[arg-type]
    entry = HistoryEntry(prev_hash=prev, hash=digest, **fields)  # type: ignore[arg-type]
    return CaseChange(
        case=after, expected_version=case.version, entry=entry, deadlines=(marked,)
    )


def lacking(case: Case, *, now: datetime) -> list[Deadline]:
    """Return the deadlines of a replayed case whose step the record lacks.

    Those still running past their due instant that the record neither met nor
    lapsed, and not marked already, earliest first.
    """
    marked = unknown_steps(case)
    return sorted(
        (
            d
            for d in case.deadlines
            if d.status is DeadlineStatus.OPEN
            and d.lapsed_at is None
            and d.due_at <= now
            and d.key not in marked
        ),
        key=lambda d: (d.due_at, d.key),
    )
