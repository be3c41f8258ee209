"""What the CLI and the HTTP API show: JSON documents and the case timeline picture.

Pure renderers of engine values, with no presentation library, so the ``rrm`` CLI
(``--json``, ``--svg``) and the HTTP API return the same bytes for the same case.
:mod:`rrm.views.documents` builds the JSON values; :mod:`rrm.views.timeline` builds
the timeline model and draws it as SVG.
"""

from rrm.views.documents import (
    CONFIDENTIAL,
    PRECISION_WORDS,
    alert_json,
    case_json,
    chain_json,
    date_precision,
    deadline_json,
    entry_json,
    petitioner_json,
    possible_events,
    workflow_json,
)
from rrm.views.timeline import timeline_svg

__all__ = [
    "CONFIDENTIAL",
    "PRECISION_WORDS",
    "alert_json",
    "case_json",
    "chain_json",
    "date_precision",
    "deadline_json",
    "entry_json",
    "petitioner_json",
    "possible_events",
    "timeline_svg",
    "workflow_json",
]
