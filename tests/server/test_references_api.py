"""References and names through the case service (issue #13, item 2).

Opening a case with a bidirectional control, a zero-width character or a
look-alike letter of another alphabet in its reference, an officer's id or the
facility's name answers 422 as problem details naming the field and the
character (never the text), and writes nothing.
"""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import LiveServer

V1 = "/api/v1"
PROBLEM = "application/problem+json"


def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


def open_body(live: LiveServer, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "workflow": "usmca-31a",
        "initiation": "request",
        "complainant": "US",
        "respondent": "MX",
        "external_ref": live.ref("LIMITS"),
        "role": "ustr",
        "facility": {
            "facility_id": "MX-SRV-1",
            "name": "Planta Servicio",
            "owner": "Grupo Servicio",
            "country": "MX",
        },
        "claim": {"basis": "annex_23a_legislation", "sector_category": "manufacturing"},
        "officers": [{"officer_id": "ana", "role": "ustr"}],
    }
    body.update(changes)
    return body


class TestReferences:
    @pytest.mark.parametrize(
        ("change", "field", "reason"),
        [
            ({"external_ref": "USTR-1\u202e"}, "external_ref", "bidirectional"),
            (
                {"external_ref": "US\u0422R-1"},
                "external_ref",
                "mixes Latin and Cyrillic",
            ),
            (
                {"officers": [{"officer_id": "a\u200bna", "role": "ustr"}]},
                "officers[0].officer_id",
                "zero-width",
            ),
        ],
    )
    def test_refused(
        self, live: LiveServer, change: dict[str, Any], field: str, reason: str
    ):
        before = live.fingerprint()
        response = live.call(
            "POST", f"{V1}/cases", live.token("ana"), json=open_body(live, **change)
        )
        body = problem(response, 422)
        assert body["field"] == field
        assert reason in body["detail"]
        assert live.fingerprint() == before

    def test_facility_name_with_a_look_alike(self, live: LiveServer):
        facility = {
            "facility_id": "MX-SRV-9",
            "name": "Pl\u0430nta Servicio",  # Cyrillic a
            "owner": "Grupo",
            "country": "MX",
        }
        response = live.call(
            "POST", f"{V1}/cases", live.token("ana"),
            json=open_body(live, facility=facility),
        )  # fmt: skip
        body = problem(response, 422)
        assert body["field"] == "facility.name"
        assert "U+0430 CYRILLIC SMALL LETTER A" in body["detail"]
        assert "Pl\u0430nta" not in body["detail"]

    def test_fullwidth_reference_is_stored_in_nfkc(self, live: LiveServer):
        wide = "".join(chr(0xFEE0 + ord(c)) for c in "WIDE")  # fullwidth letters
        ref = live.ref("WIDE")
        body = open_body(live, external_ref=wide + ref[4:])
        response = live.call("POST", f"{V1}/cases", live.token("ana"), json=body)
        assert response.status_code == 201, response.text
        assert response.json()["ref"] == ref
        found = live.call("GET", f"{V1}/cases/{ref}", live.token("ana"))
        assert found.status_code == 200, found.text
