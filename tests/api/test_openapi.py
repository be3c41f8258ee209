"""The OpenAPI document the service serves is the one committed with RRM."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx

from rrm.server.openapi import REGENERATE, canonical, committed, document

from .conftest import LiveService


class TestCommittedDocument:
    def test_served_document_is_committed_one(self, live: LiveService):
        """GET /api/v1/openapi.json of a live service equals rrm/server/openapi.json."""
        served = httpx.get(f"{live.base_url}/api/v1/openapi.json", timeout=10).json()

        assert canonical(served) == committed(), (
            "The served OpenAPI document differs from rrm/server/openapi.json; "
            f"regenerate it with:\n    {REGENERATE}"
        )

    def test_document_is_canonical_json(self):
        """The committed text is its own canonical form: sorted keys, 2-space indent, newline."""
        text = committed()

        assert canonical(json.loads(text)) == text

    def test_module_prints_the_document(self):
        """python -m rrm.server.openapi prints exactly the committed document."""
        out = subprocess.run(
            [sys.executable, "-m", "rrm.server.openapi"],
            check=True,
            capture_output=True,
        ).stdout

        assert out.decode() == committed()

    def test_document_is_openapi_3_1(self):
        """The document declares OpenAPI 3.1 and the package's version."""
        doc = json.loads(document())

        assert (doc["openapi"], doc["info"]["version"]) == (
            "3.1.0",
            __import__("rrm").__version__,
        )
