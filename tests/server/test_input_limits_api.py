"""Bounded request bodies of the case service (issue #12 item 4; NUL and keys
given twice, issue #13 item 2).

Against the live server of this suite (uvicorn on loopback, each backend): a body
over its size answers 413, JSON nested past the limit or with a key given twice
answers 422, a NUL inside a payload answers 422, each as RFC 9457 problem details
naming the input and the limit; nothing is written, and the server goes on
answering. Look-alike references are in ``test_references_api.py``.
"""

from __future__ import annotations

import json
from typing import Any

from rrm.service.transfer import export_case

from .conftest import LiveServer

V1 = "/api/v1"
PROBLEM = "application/problem+json"
JSON = {"Content-Type": "application/json"}
DEEP = 5_000


def deep(depth: int) -> str:
    return "[" * depth + "]" * depth


def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert "Traceback" not in response.text
    return body


class TestBodies:
    def test_five_thousand_levels_on_a_fire(self, live: LiveServer):
        case = live.open_case("DEEP")
        before = live.fingerprint()
        text = '{"event": "respondent_agrees", "payload": {"a": ' + deep(DEEP) + "}}"
        response = live.call(
            "POST", f"{V1}/cases/{case.case_id}/events", live.token("lupe"),
            content=text, headers=JSON,
        )  # fmt: skip
        body = problem(response, 422)
        assert body["detail"] == (
            "body: the request body is nested 5,002 levels deep; at most 40 levels "
            "of objects and lists are accepted"
        )
        assert body["field"] == "body"
        assert body["type"] == "urn:rrm:problem:invalid-input"
        assert live.fingerprint() == before

    def test_payload_past_its_own_depth(self, live: LiveServer):
        """Inside the body's 40 levels, the payload still has its 32."""
        case = live.open_case("DEEP")
        before = live.fingerprint()
        payload: Any = {}
        for _ in range(35):
            payload = {"a": payload}
        response = live.call(
            "POST", f"{V1}/cases/{case.case_id}/events", live.token("lupe"),
            json={"event": "respondent_agrees", "payload": payload},
        )  # fmt: skip
        body = problem(response, 422)
        assert body["detail"].startswith("payload: is nested more than 32 levels")
        assert live.fingerprint() == before

    def test_over_one_mebibyte(self, live: LiveServer):
        case = live.open_case("BIG")
        before = live.fingerprint()
        text = json.dumps(
            {"event": "respondent_agrees", "payload": {"note": "x" * (1 << 20)}}
        )
        response = live.call(
            "POST", f"{V1}/cases/{case.case_id}/events", live.token("lupe"),
            content=text, headers=JSON,
        )  # fmt: skip
        body = problem(response, 413)
        assert body["type"] == "urn:rrm:problem:content-too-large"
        assert "larger than 1,048,576 bytes (1 MiB)" in body["detail"]
        assert live.fingerprint() == before
        # The connection was closed; the next request is served on a new one.
        assert live.call("GET", "/healthz").status_code == 200

    def test_payload_over_its_size_inside_a_small_body(self, live: LiveServer):
        case = live.open_case("BIG")
        response = live.call(
            "POST", f"{V1}/cases/{case.case_id}/events", live.token("lupe"),
            json={"event": "respondent_agrees", "payload": {"note": "x" * 70_000}},
        )  # fmt: skip
        body = problem(response, 422)
        assert body["detail"] == (
            "payload: is 70,012 bytes as JSON; event details may take at most "
            "65,536 bytes (64 KiB)"
        )

    def test_duplicate_key(self, live: LiveServer):
        case = live.open_case("TWICE")
        before = live.fingerprint()
        response = live.call(
            "POST", f"{V1}/cases/{case.case_id}/events", live.token("lupe"),
            content='{"event": "respondent_agrees", "role": "respondent", '
            '"role": "ustr"}',
            headers=JSON,
        )  # fmt: skip
        body = problem(response, 422)
        assert body["detail"] == (
            "body: the key 'role' appears twice in one object; give each key once"
        )
        assert live.fingerprint() == before

    def test_nul_in_a_payload(self, live: LiveServer):
        case = live.open_case("NUL")
        before = live.fingerprint()
        response = live.call(
            "POST", f"{V1}/cases/{case.case_id}/events", live.token("lupe"),
            json={"event": "respondent_agrees", "payload": {"note": ["a\x00b"]}},
        )  # fmt: skip
        body = problem(response, 422)
        assert body["detail"] == "payload: the text at note[0] contains a NUL character"
        assert live.fingerprint() == before

    def test_not_json_is_still_the_routes_400(self, live: LiveServer):
        case = live.shared_case()
        response = live.call(
            "POST", f"{V1}/cases/{case.case_id}/events", live.token("lupe"),
            content='{"event": ', headers=JSON,
        )  # fmt: skip
        assert response.status_code in {400, 422}
        assert response.headers["content-type"] == PROBLEM


class TestImportBody:
    def test_five_thousand_levels(self, live: LiveServer):
        before = live.fingerprint()
        response = live.call(
            "POST", f"{V1}/imports", live.token("admin"),
            content="[" + deep(DEEP) + "]", headers=JSON,
        )  # fmt: skip
        body = problem(response, 422)
        assert "nested 5,001 levels deep; at most 40 levels" in body["detail"]
        assert live.fingerprint() == before

    def test_larger_than_a_fire_but_within_its_own_limit(self, live: LiveServer):
        """Imports may send 16 MiB; this 2 MiB batch reaches the import's checks."""
        before = live.fingerprint()
        doc = export_case(live.seed, live.open_case("SOURCE").case_id)
        doc["case"]["external_ref"] = live.ref("IMPORTED")
        doc["history"][0]["payload"] = {"note": "x" * (2 << 20)}
        before = live.fingerprint()
        response = live.call("POST", f"{V1}/imports", live.token("admin"), json=[doc])
        body = problem(response, 422)
        assert "history[0].payload: is 2,097,164 bytes as JSON" in body["detail"]
        assert live.fingerprint() == before

    def test_over_sixteen_mebibytes(self, live: LiveServer):
        before = live.fingerprint()
        text = '[{"note": "' + "x" * (16 << 20) + '"}]'
        response = live.call(
            "POST", f"{V1}/imports", live.token("admin"), content=text, headers=JSON
        )
        body = problem(response, 413)
        assert "larger than 16,777,216 bytes (16 MiB)" in body["detail"]
        assert live.fingerprint() == before

    def test_duplicate_key_in_a_document(self, live: LiveServer):
        doc = export_case(live.seed, live.open_case("SOURCE").case_id)
        doc["case"]["external_ref"] = "DUP-REF-1"
        text = json.dumps([doc]).replace(
            '"external_ref": "DUP-REF-1"',
            '"external_ref": "DUP-REF-1", "external_ref": "DUP-REF-2"',
        )
        before = live.fingerprint()
        response = live.call(
            "POST", f"{V1}/imports", live.token("admin"), content=text, headers=JSON
        )
        body = problem(response, 422)
        assert "the key 'external_ref' appears twice" in body["detail"]
        assert live.fingerprint() == before
