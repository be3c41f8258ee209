"""The case service's OpenAPI document as canonical text, committed beside this module.

``python -m rrm.server.openapi > rrm/server/openapi.json`` writes it again; a test
fails when the document a running service serves differs from the committed one.
"""

from __future__ import annotations

import json
import sys
from importlib import resources
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

    from fastapi import FastAPI

__all__ = ["REGENERATE", "canonical", "committed", "document"]

#: The command that writes the committed document again (from the repository root).
REGENERATE = "python -m rrm.server.openapi > rrm/server/openapi.json"


def canonical(doc: Mapping[str, Any]) -> str:
    """Return *doc* as canonical JSON: sorted keys, 2-space indent, final newline.

    Args:
        doc: An OpenAPI document (or any JSON object).

    Returns:
        The text, the same on every run and machine for the same document.

    .. versionadded:: 0.3.0
    """
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def document(app: FastAPI | None = None) -> str:
    """Return the OpenAPI document of *app* as canonical JSON text.

    Args:
        app: A case service app; by default one with default settings on an
            in-memory database (the document depends on neither).

    Returns:
        The document, as :func:`canonical` writes it.

    .. versionadded:: 0.3.0
    """
    if app is not None:
        return canonical(app.openapi())
    # Imported here: building an app needs the whole service, reading the
    # committed text does not.
    from rrm.adapters.sql.credentials import SqlCredentialStore  # noqa: PLC0415
    from rrm.adapters.sql.engine import make_engine  # noqa: PLC0415
    from rrm.server.app import create_app  # noqa: PLC0415
    from rrm.server.settings import ServerSettings  # noqa: PLC0415
    from rrm.wiring import bootstrap  # noqa: PLC0415

    sql = make_engine("sqlite://")
    try:
        settings = ServerSettings()
        engine = bootstrap(sql, authorizer=settings.policy, upgrade=True)
        return canonical(
            create_app(engine, SqlCredentialStore(sql), settings).openapi()
        )
    finally:
        sql.dispose()


def committed() -> str:
    """Return the committed document that ships with RRM (``openapi.json``).

    .. versionadded:: 0.3.0
    """
    return (
        resources.files("rrm.server")
        .joinpath("openapi.json")
        .read_text(encoding="utf-8")
    )


if __name__ == "__main__":
    # Bytes, not text: the document is UTF-8 whatever the terminal's encoding.
    sys.stdout.buffer.write(document().encode())
