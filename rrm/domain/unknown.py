"""Steps an imported record lacks: told apart from lapses RRM saw happen.

An import replays a case's recorded history. A deadline still open and already past
due afterwards, that the record did not lapse, is a step the record does not show
(Mexico's answer, the finding, the panel's constitution): the step may well have
happened and simply not been recorded, so it is not a lapse. The import marks it
*unknown* with an audited ``step_unknown`` entry and a mark in
``attributes["unknown_steps"]`` (deadline key to ``{"due_date", "since"}``). The
deadline sweep then records no lapse and takes no lapse action on it; it alerts the
officers once instead.

A mark holds while a deadline of its key is open, not lapsed, and due no later than
the instant of the mark (``since``): recording the step (an event that meets the
deadline or moves the case past it), or agreeing a later date (an extension), ends
it. The mark itself stays in the attributes as a record of what the import found.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rrm.domain.case import Case, Deadline

__all__ = ["STEP_UNKNOWN", "UNKNOWN_STEPS", "unknown_steps"]

#: The history event that marks a step unknown.
STEP_UNKNOWN = "step_unknown"
#: The case attribute holding the marks, by deadline key.
UNKNOWN_STEPS = "unknown_steps"


def _since(mark: object) -> datetime | None:
    if not isinstance(mark, dict):
        return None
    value = mark.get("since")
    if not isinstance(value, str):
        return None
    try:
        since = datetime.fromisoformat(value)
    except ValueError:
        return None
    return since if since.tzinfo is not None else None


def unknown_steps(case: Case) -> dict[str, Deadline]:
    """Return the open deadlines whose step the imported record lacks, by key.

    Args:
        case: The case; its marks are ``attributes["unknown_steps"]``.
    """
    marks = case.attributes.get(UNKNOWN_STEPS)
    if not isinstance(marks, dict):
        return {}
    found: dict[str, Deadline] = {}
    for d in case.deadlines:
        if not d.is_open or d.lapsed_at is not None:
            continue
        since = _since(marks.get(d.key))
        if since is not None and d.due_at <= since:
            found[d.key] = d
    return found
