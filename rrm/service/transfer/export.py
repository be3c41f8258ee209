"""Export: a case's whole record in the ``rrm-case/1`` format."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import UTC, date, datetime
from enum import Enum
from typing import TYPE_CHECKING, Any

from rrm.service.transfer.documents import EXPORT_FORMAT

if TYPE_CHECKING:
    from rrm.service.engine import CaseEngine

__all__ = ["export_case"]

# The order of the case's fields in an export, for readers of the file.
_EXPORT_ORDER = (
    "case_id", "external_ref", "workflow", "workflow_version", "initiation", "state",
    "version", "complainant", "respondent", "facility", "claim", "petitioners",
    "officers", "attributes", "opened_at", "updated_at", "last_event_at",
)  # fmt: skip


def _plain(value: object) -> Any:
    """Return *value* as JSON-ready data (ISO 8601 times with offset, ISO dates)."""
    if isinstance(value, date):
        moment = value.astimezone(UTC) if isinstance(value, datetime) else value
        return moment.isoformat()
    if isinstance(value, Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)
        }
    if isinstance(value, Mapping):
        return {str(k): _plain(item) for k, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def export_case(engine: CaseEngine, ref: str) -> dict[str, Any]:
    """Return a case's whole record in the ``rrm-case/1`` format.

    The record holds the case (parties, facility, claim, petitioners with their
    confidential flag, officers, attributes), every history entry with its hashes,
    every deadline and every outbox alert. Confidential petitioners are included:
    the export is for moving a case between RRM installations, not for publication.

    Args:
        engine: The engine holding the case.
        ref: The case id or external reference.

    Raises:
        CaseNotFound: If no case has that id or reference.
        CaseDamaged: If a stored row of the case differs from its history.

    .. versionadded:: 0.2.0
    """
    # The agency's record: a case whose rows are not its history's is refused.
    case = engine.get(ref, verified=True)
    plain = _plain(case)
    body = {key: plain.get(key) for key in _EXPORT_ORDER}
    body["workflow"] = case.workflow_id
    body["claim"] = case.attributes.get("claim")
    history = [_plain(e) for e in engine.history(case.case_id)]
    for entry in history:
        del entry["case_id"]
    return {
        "format": EXPORT_FORMAT,
        "case": body,
        "history": history,
        "deadlines": plain["deadlines"],
        "alerts": [_plain(a) for a in engine.alerts(case_id=case.case_id)],
    }
