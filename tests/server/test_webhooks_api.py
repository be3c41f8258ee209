"""Webhooks end to end: subscribed through the API, fed by API changes, signed."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import standardwebhooks

import rrm
from rrm.adapters.webhooks import HttpWebhookSender

V1 = "/api/v1"


class Receiver:
    """A webhook endpoint on loopback that keeps what it was sent."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                outer.received.append(
                    ({k.lower(): v for k, v in self.headers.items()}, body)
                )
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                """Quiet."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/rrm"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(name="receiver")
def _receiver() -> Any:
    receiver = Receiver()
    yield receiver
    receiver.close()


def _tick(live: Any) -> rrm.TickReport:
    """Run the worker's tick: it sends the webhook outbox."""
    with HttpWebhookSender(timeout=5) as sender:
        worker = rrm.bootstrap(live.sql, clock=live.clock, webhooks=sender)
        return worker.tick()


class TestWebhooksThroughTheApi:
    def test_changes_made_through_the_api_reach_the_endpoint_signed(
        self, live, receiver
    ):
        """Events of API changes are delivered once each, signed with the secret."""
        made = live.call(
            "POST",
            f"{V1}/webhooks",
            live.token("admin"),
            json={"url": receiver.url, "event_types": ["case.*", "deadline.met"]},
        )
        assert made.status_code == 201
        secret = made.json()["secret"]
        shown = live.call(
            "GET",
            f"{V1}/webhooks/{made.json()['subscription_id']}",
            live.token("admin"),
        )
        assert "secret" not in shown.json()

        case = live.open_case("HOOKAPI")
        fired = live.call(
            "POST",
            f"{V1}/cases/{case.case_id}/events",
            live.token("lupe"),
            json={"event": "respondent_agrees"},
        )
        assert fired.status_code == 200
        report = _tick(live)

        events = [json.loads(body) for _, body in receiver.received]
        mine = [e for e in events if e["data"]["case_id"] == case.case_id]
        assert [e["type"] for e in mine] == [
            "case.opened",
            "case.event_recorded",
            "deadline.met",
        ]
        assert mine[1]["data"]["actor"] == "lupe"
        assert report.webhooks_sent == len(receiver.received)
        hook = standardwebhooks.Webhook(secret)
        for headers, body in receiver.received:
            stamp = datetime.fromtimestamp(int(headers["webhook-timestamp"]), tz=UTC)
            expected = hook.sign(headers["webhook-id"], stamp, body.decode())
            assert headers["webhook-signature"] == expected

    def test_deliveries_are_listed_and_a_second_tick_sends_nothing(
        self, live, receiver
    ):
        """Delivered messages are listed as delivered; a repeat tick sends none again."""
        made = live.call(
            "POST",
            f"{V1}/webhooks",
            live.token("admin"),
            json={"url": receiver.url, "event_types": ["case.opened"]},
        ).json()
        case = live.open_case("HOOKLIST")
        _tick(live)
        _tick(live)

        listed = live.call(
            "GET",
            f"{V1}/webhooks/deliveries",
            live.token("admin"),
            params={"subscription_id": made["subscription_id"]},
        ).json()["deliveries"]
        ids = [h["webhook-id"] for h, _ in receiver.received]
        assert [d["status"] for d in listed] == ["delivered"]
        assert listed[0]["case_id"] == case.case_id
        assert ids == [listed[0]["delivery_id"]]
