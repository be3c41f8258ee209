"""Deadlines as calendar events: what an officer's calendar feed shows."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rrm.domain.case import DeadlineStatus

if TYPE_CHECKING:
    from collections.abc import Iterable

    from rrm.domain.case import Case

__all__ = ["NOMINAL_NOTE", "feed_events"]

NOMINAL_NOTE = (
    "NOMINAL: this number rests on recalled, unverified treaty text; "
    "check it before relying on it."
)


def feed_events(cases: Iterable[Case], *, link: str) -> list[dict[str, Any]]:
    """Return one all-day event per open deadline of *cases*, earliest first.

    Each event's sequence grows when the deadline moves (an extension, a pause),
    so a subscribed calendar updates it; met and cancelled deadlines are absent.

    Args:
        cases: The officer's cases.
        link: Where a case is read; ``{case_id}`` is replaced by its id.
    """
    events = []
    for case in cases:
        for d in case.deadlines:
            if not d.is_open:
                continue
            summary = f"{d.label} — {case.external_ref}"
            parts = [
                d.explanation,
                f"Citation: {d.citation} (evidence {d.evidence})",
            ]
            if d.nominal:
                summary += " (NOMINAL)"
                parts.append(NOMINAL_NOTE)
            if d.status is DeadlineStatus.PAUSED:
                summary += " (paused)"
            events.append(
                {
                    "deadline_id": d.deadline_id,
                    "sequence": d.extensions * 2
                    + (1 if d.status is DeadlineStatus.PAUSED else 0),
                    "day": d.due_date,
                    "summary": summary,
                    "description": "\n\n".join(parts),
                    "url": link.replace("{case_id}", case.case_id),
                }
            )
    return sorted(events, key=lambda e: (e["day"], e["deadline_id"]))
