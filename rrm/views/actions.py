"""What the signed-in officer may do now, for the API and the console alike."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

    from rrm.service.engine import AvailableEvent

__all__ = ["available_json"]


def available_json(events: Sequence[AvailableEvent]) -> list[dict[str, Any]]:
    """Return each available event with its roles, payload fields and citation.

    Args:
        events: What :meth:`rrm.CaseEngine.available_events` returned.
    """
    return [
        {
            "event": a.transition.event,
            "label": a.transition.label,
            "to_state": a.transition.dest,
            "roles": list(a.roles),
            "payload": [
                {
                    "name": f.name,
                    "type": f.type,
                    "required": f.required,
                    "choices": list(f.choices),
                }
                for f in a.transition.payload
            ],
            "guards": list(a.transition.guards),
            "citation": a.transition.citation,
            "evidence": a.transition.evidence,
            "nominal": a.transition.evidence == "R",
        }
        for a in events
    ]
