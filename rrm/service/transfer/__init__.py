"""Case import and export: a case's whole record as JSON-ready dicts, and back.

``export_case`` writes the ``rrm-case/1`` format; ``import_cases`` reads it and the
hand-written ``rrm-history/1`` format (``rrm/schemas/case.schema.json`` describes
both). An import replays every event through the workflow at its historical time,
first into a scratch store in memory and only then into the engine's database, so a
document with an illegal step writes nothing. No I/O happens here: callers read and
write the files.

The parts: ``documents`` (the formats, reading and checking a document),
``export``, ``scratch`` (the in-memory store of a dry run), ``replay`` (a
document's steps as engine commands) and ``importing`` (planning and the import).
"""

from rrm.service.transfer.documents import EXPORT_FORMAT, HISTORY_FORMAT
from rrm.service.transfer.export import export_case
from rrm.service.transfer.importing import ImportedCase, ImportReport, import_cases

__all__ = [
    "EXPORT_FORMAT",
    "HISTORY_FORMAT",
    "ImportReport",
    "ImportedCase",
    "export_case",
    "import_cases",
]
