"""Webhooks end to end: queued with the change, signed, retried, dead-lettered.

Every message goes over real HTTP to a receiver on loopback (``http.server`` in a
thread) that checks each signature with ``standardwebhooks.Webhook.verify``.
Engine time moves only with the fake clock; the receiver checks a message's
timestamp against that same clock, as a real receiver checks it against its own.
Runs on SQLite and, with ``RRM_TEST_POSTGRES``, on PostgreSQL.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError
from structlog.testing import capture_logs

import rrm
from rrm.adapters.sql.uow import SqlUnitOfWorkFactory
from rrm.adapters.webhooks import HttpWebhookSender
from rrm.service import handlers, webhooks
from rrm.service.ports import (
    WebhookDelivery,
    WebhookDeliveryQuery,
    WebhookStatus,
    WebhookSubscription,
)
from rrm.service.transfer.export import export_case
from rrm.service.transfer.importing import import_cases
from rrm.service.webhooks import WebhookReport, WebhookSettings, deliver_webhooks
from rrm.testing import FakeClock, skip

from .conftest import free_port

SECRET_PETITIONER = "Petra Confidencial"
FREE_TEXT = "agreed on the phone with the minister"
FACILITY = rrm.Facility(
    facility_id="MX-W1",
    name="Planta Webhook",
    owner="Grupo W",
    country=rrm.Party.MX,
    city="Silao",
    region="Guanajuato",
)
CLAIM = rrm.Claim(basis="annex_23a_legislation", sector_category="manufacturing")
FAST = WebhookSettings(max_attempts=12)
EVERYTHING = ["*"]


# -- a real receiver -------------------------------------------------------------


class FakeTimeWebhook(Webhook):
    """``Webhook.verify`` with its freshness check read from the test's clock.

    The signature check is the library's own; only "now" comes from the fake
    clock, which is the receiver's clock in these tests.
    """

    def __init__(self, secret: str, clock: FakeClock) -> None:
        super().__init__(secret)
        self._clock = clock

    def _Webhook__verify_timestamp(self, header: str) -> datetime:
        stamp = datetime.fromtimestamp(float(header), tz=UTC)
        if abs(stamp - self._clock.now()) > timedelta(minutes=5):
            raise WebhookVerificationError("Message timestamp too old or too new")
        return stamp


@dataclass
class Received:
    """One verified message as the receiver got it."""

    msg_id: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def payload(self) -> dict[str, Any]:
        return json.loads(self.body)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so a kill also breaks pooled sockets

    def log_message(self, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        self.server.receiver.track(self.connection)  # type: ignore[attr-defined]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        self.server.receiver.handle(self, body)  # type: ignore[attr-defined]

    def answer(self, status: int) -> None:
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()

    def drop(self) -> None:
        """Close the connection without an answer, as a process that died would."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a dropped connection is the point of some tests


@dataclass
class Receiver:
    """A webhook endpoint on loopback that verifies every signature.

    ``statuses`` are answered in turn, then ``status``. With ``crash_on=n`` the
    receiver takes the n-th message and dies before answering: the listening
    socket closes and every open connection is cut.
    """

    clock: FakeClock
    port: int = field(default_factory=free_port)
    secrets: dict[str, str] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    status: int = 204
    delay: float = 0.0
    crash_on: int | None = None
    location: str = ""
    _server: _Server | None = None
    _thread: threading.Thread | None = None
    _killer: threading.Thread | None = None
    _conns: set[socket.socket] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _dead: bool = False

    def url(self, path: str = "/hook", query: str = "") -> str:
        return f"http://127.0.0.1:{self.port}{path}{query}"

    def ids(self) -> list[str]:
        return [r.msg_id for r in self.received]

    def start(self) -> None:
        if self._killer is not None:
            self._killer.join()
            self._killer = None
        self._dead = False
        self._server = _Server(("127.0.0.1", self.port), _Handler)
        self._server.receiver = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}
        )
        self._thread.start()

    def kill(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._lock:
            conns, self._conns = list(self._conns), set()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join()

    def stop(self) -> None:
        if self._killer is not None:
            self._killer.join()
        self.kill()

    def track(self, conn: socket.socket) -> None:
        with self._lock:
            self._conns.add(conn)

    def handle(self, handler: _Handler, body: bytes) -> None:
        headers = {k.lower(): v for k, v in handler.headers.items()}
        path = urlsplit(handler.path).path
        with self._lock:
            if self._dead:
                handler.drop()
                return
            try:
                verifier = FakeTimeWebhook(self.secrets[path], self.clock)
                verifier.verify(body, headers)
            except (KeyError, WebhookVerificationError) as exc:
                self.rejected.append(f"{path}: {exc}")
                handler.answer(401)
                return
            self.received.append(Received(headers["webhook-id"], path, headers, body))
            crash = self.crash_on is not None and len(self.received) == self.crash_on
            status = self.statuses.pop(0) if self.statuses else self.status
            if crash:
                self._dead = True
                self._killer = threading.Thread(target=self.kill)
        if crash:
            handler.drop()
            assert self._killer is not None
            self._killer.start()
            return
        if self.delay:
            time.sleep(self.delay)  # a slow endpoint, in real time
        if self.location:
            handler.send_response(status)
            handler.send_header("location", self.location)
            handler.send_header("content-length", "0")
            handler.end_headers()
            return
        handler.answer(status)


# -- fixtures and helpers --------------------------------------------------------


@dataclass
class World:
    """An engine, a unit-of-work factory on its database, a sender and a clock."""

    engine: rrm.CaseEngine
    uow: SqlUnitOfWorkFactory
    sender: HttpWebhookSender
    clock: FakeClock

    def subscribe(
        self, receiver: Receiver, types: list[str] = EVERYTHING, path: str = "/hook"
    ) -> WebhookSubscription:
        made = webhooks.create_subscription(
            self.uow,
            url=receiver.url(path),
            event_types=types,
            now=self.clock.now(),
            created_by="admin:ana",
        )
        receiver.secrets[path] = made.secret
        return made

    def deliver(self, settings: WebhookSettings = FAST) -> WebhookReport:
        return deliver_webhooks(
            self.uow, self.sender, now=self.clock.now(), settings=settings
        )

    def rows(self, *statuses: str) -> list[WebhookDelivery]:
        return webhooks.list_deliveries(self.uow, status=statuses or None)

    def drain(self, settings: WebhookSettings = FAST, rounds: int = 50) -> None:
        """Deliver, jumping the clock to each next wake-up, until nothing is owed."""
        for _ in range(rounds):
            self.deliver(settings)
            with self.uow() as uow:
                wake = webhooks.next_webhook_wakeup(uow)
            if wake is None:
                return
            self.clock.set(max(wake, self.clock.now()))
        pytest.fail("deliveries still owed after many rounds")


def _wall_clock_now() -> datetime:
    # Only this reads the wall clock: a test of the stock verifier needs it.
    return rrm.SystemClock().now()


@pytest.fixture(name="world")
def _world(db_url, sql_engine_for, clock, workflows):
    engine_sql = sql_engine_for(db_url)
    engine = rrm.bootstrap(engine_sql, clock=clock, workflows=workflows, upgrade=True)
    with HttpWebhookSender(timeout=5) as sender:
        yield World(
            engine=engine,
            uow=SqlUnitOfWorkFactory(engine_sql, cache_size=0),
            sender=sender,
            clock=clock,
        )


@pytest.fixture(name="receiver")
def _receiver(clock):
    receiver = Receiver(clock=clock)
    receiver.start()
    yield receiver
    receiver.stop()


def open_case(engine: rrm.CaseEngine, ref: str = "W-1") -> rrm.Case:
    return engine.open_case(
        rrm.OpenCase(
            workflow="usmca-31a",
            initiation="request",
            complainant="US",
            respondent="MX",
            facility=FACILITY,
            claim=CLAIM,
            external_ref=ref,
            actor="officer:ana",
            role="ustr",
            petitioners=(rrm.Petitioner(name=SECRET_PETITIONER, confidential=True),),
        )
    )


def agree(engine: rrm.CaseEngine, case: rrm.Case) -> rrm.Case:
    return engine.fire(
        rrm.FireEvent(
            case_id=case.case_id,
            event="respondent_agrees",
            actor="mx:sre",
            role="respondent",
            reason=FREE_TEXT,
        )
    )


# -- queued with the change ------------------------------------------------------


class TestQueue:
    def test_no_subscription_queues_nothing(self, world):
        """Without subscriptions, opening and firing write no delivery row."""
        agree(world.engine, open_case(world.engine))

        assert world.rows() == []

    def test_open_and_fire_queue_their_events(self, world, receiver):
        """Opening queues case.opened and both deadlines; a fire its event and the met deadline."""
        world.subscribe(receiver)
        case = agree(world.engine, open_case(world.engine))

        kinds = [(d.seq, d.event_type) for d in world.rows()]

        assert kinds == [
            (1, "case.opened"),
            (1, "deadline.opened"),
            (1, "deadline.opened"),
            (2, "case.event_recorded"),
            (2, "deadline.met"),
        ]
        assert {d.case_id for d in world.rows()} == {case.case_id}
        assert all(d.delivery_id.startswith("msg_") for d in world.rows())

    def test_rolled_back_change_queues_nothing(self, world, receiver, workflows):
        """Messages written with a change inside its transaction vanish with its rollback."""
        world.subscribe(receiver)
        case = open_case(world.engine)
        before = world.rows()
        cmd = rrm.FireEvent(
            case_id=case.case_id,
            event="respondent_agrees",
            actor="mx",
            role="respondent",
        )

        with world.uow() as uow:
            change = handlers.fire_event(uow, workflows, cmd, now=world.clock.now())
            uow.cases.apply(change)
            queued = webhooks.record_change(uow, change, now=world.clock.now())
            seen = uow.webhooks.deliveries(WebhookDeliveryQuery())
            uow.rollback()

        assert queued == 2
        assert len(seen) == len(before) + 2
        assert world.rows() == before

    def test_refused_fire_queues_nothing(self, world, receiver):
        """A fire refused for a stale expected version leaves the outbox as it was."""
        world.subscribe(receiver)
        case = open_case(world.engine)
        before = world.rows()

        with pytest.raises(rrm.ConcurrencyConflict):
            world.engine.fire(
                rrm.FireEvent(
                    case_id=case.case_id,
                    event="respondent_agrees",
                    actor="mx",
                    role="respondent",
                    expected_version=7,
                )
            )

        assert world.rows() == before

    def test_event_types_select_what_each_subscription_gets(self, world, receiver):
        """Each subscription gets exactly the event types and prefixes it named."""
        deadlines = world.subscribe(receiver, ["deadline.*"], path="/deadlines")
        opened = world.subscribe(receiver, ["case.opened"], path="/opened")
        mixed = world.subscribe(
            receiver, ["case.event_recorded", "deadline.met"], path="/mixed"
        )
        agree(world.engine, open_case(world.engine))

        def kinds(sub):
            rows = webhooks.list_deliveries(
                world.uow, subscription_id=sub.subscription_id
            )
            return [d.event_type for d in rows]

        assert kinds(deadlines) == [
            "deadline.opened",
            "deadline.opened",
            "deadline.met",
        ]
        assert kinds(opened) == ["case.opened"]
        assert kinds(mixed) == ["case.event_recorded", "deadline.met"]

    def test_payload_carries_identifiers_only(self, world, receiver):
        """Payloads follow the Standard Webhooks shape and never carry petitioners or reasons."""
        world.subscribe(receiver)
        case = agree(world.engine, open_case(world.engine))

        payloads = [d.payload for d in world.rows()]
        fired = next(p for p in payloads if p["type"] == "case.event_recorded")

        assert fired == {
            "type": "case.event_recorded",
            "timestamp": "2025-01-06T15:00:00Z",
            "data": {
                "case_id": case.case_id,
                "external_ref": "W-1",
                "seq": 2,
                "event": "respondent_agrees",
                "from_state": "review_requested",
                "to_state": "respondent_reviewing",
                "actor": "mx:sre",
                "role": "respondent",
                "occurred_at": "2025-01-06T15:00:00Z",
            },
        }
        met = next(p for p in payloads if p["type"] == "deadline.met")["data"]
        assert (met["key"], met["status"], met["due_date"]) == (
            "respondent_answer",
            "met",
            "2025-01-16",
        )
        text = json.dumps(payloads)
        assert SECRET_PETITIONER not in text
        assert FREE_TEXT not in text

    def test_deadline_changes_are_queued(self, world, receiver):
        """Extending, pausing and resuming a deadline queue deadline.extended, .paused, .resumed."""
        world.subscribe(
            receiver, ["deadline.extended", "deadline.paused", "deadline.resumed"]
        )
        case = open_case(world.engine)
        common = {
            "case_id": case.case_id,
            "key": "respondent_answer",
            "actor": "ana",
            "role": "ustr",
        }

        world.engine.extend(
            rrm.ExtendDeadline(new_date=date(2025, 1, 24), reason="agreed", **common)
        )
        world.engine.pause(rrm.PauseDeadline(reason="closure", **common))
        world.engine.resume(rrm.ResumeDeadline(reason="reopened", **common))

        assert [d.event_type for d in world.rows()] == [
            "deadline.extended",
            "deadline.paused",
            "deadline.resumed",
        ]

    def test_lapse_and_lapse_action_are_queued(self, world, receiver):
        """The sweep's audited lapse and the lapse action it takes queue their events too."""
        world.subscribe(receiver, ["case.event_recorded"])
        open_case(world.engine)

        skip(world.engine, world.clock, to=datetime(2025, 1, 18, tzinfo=UTC))

        events = [d.payload["data"]["event"] for d in world.rows()]
        assert events == ["deadline_missed", "respondent_answer_lapsed"]

    def test_disabled_subscription_gets_nothing(self, world, receiver):
        """A disabled subscription queues nothing; enabled again, it gets later changes."""
        sub = world.subscribe(receiver, ["case.*"])
        webhooks.disable_subscription(
            world.uow, sub.subscription_id, now=world.clock.now()
        )
        case = open_case(world.engine)
        assert world.rows() == []

        webhooks.enable_subscription(world.uow, sub.subscription_id)
        agree(world.engine, case)

        assert [d.event_type for d in world.rows()] == ["case.event_recorded"]

    def test_import_queues_the_replay_and_nothing_from_its_dry_run(
        self, world, receiver, db_url, sql_engine_for, clock, workflows, tmp_path
    ):
        """An import's dry run in the scratch store queues nothing; its real replay queues its events."""
        source = rrm.bootstrap(
            f"sqlite:///{tmp_path / 'source.sqlite'}",
            clock=clock,
            workflows=workflows,
            upgrade=True,
        )
        doc = export_case(source, agree(source, open_case(source)).case_id)
        world.subscribe(receiver)

        report = import_cases(world.engine, [doc])

        case_id = report.cases[0].case_id
        assert [(d.case_id, d.event_type) for d in world.rows()] == [
            (case_id, "case.opened"),
            (case_id, "deadline.opened"),
            (case_id, "deadline.opened"),
            (case_id, "case.event_recorded"),
            (case_id, "deadline.met"),
        ]


# -- delivered and signed --------------------------------------------------------


class TestDelivery:
    def test_every_event_is_delivered_signed_and_in_order(self, world, receiver):
        """Each queued message arrives once, verified, under its delivery id, oldest first."""
        world.subscribe(receiver)
        agree(world.engine, open_case(world.engine))
        queued = world.rows()

        report = world.deliver()

        assert report.delivered == len(queued) == 5
        assert receiver.rejected == []
        assert receiver.ids() == [d.delivery_id for d in queued]
        assert [r.payload for r in receiver.received] == [
            dict(d.payload) for d in queued
        ]
        assert {r.headers["content-type"] for r in receiver.received} == {
            "application/json"
        }
        assert {d.status for d in world.rows()} == {WebhookStatus.DELIVERED}
        assert world.rows("delivered")[0].delivered_at == world.clock.now()

    def test_stock_verifier_accepts_a_message_signed_now(
        self, db_url, sql_engine_for, workflows
    ):
        """With the engine on real time, the unmodified Webhook.verify accepts the message."""
        clock = FakeClock(_wall_clock_now())
        engine_sql = sql_engine_for(db_url)
        engine = rrm.bootstrap(
            engine_sql, clock=clock, workflows=workflows, upgrade=True
        )
        uow = SqlUnitOfWorkFactory(engine_sql)
        got: list[tuple[bytes, dict[str, str]]] = []

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                got.append((body, dict(self.headers.items())))
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=server.serve_forever)
        thread.start()
        try:
            sub = webhooks.create_subscription(
                uow,
                url=f"http://127.0.0.1:{server.server_port}/in",
                event_types=["case.opened"],
                now=clock.now(),
            )
            case = open_case(engine)
            with HttpWebhookSender() as sender:
                deliver_webhooks(uow, sender, now=clock.now())
        finally:
            server.shutdown()
            server.server_close()
            thread.join()

        ((body, headers),) = got
        assert (
            Webhook(sub.secret).verify(body, headers)["data"]["case_id"] == case.case_id
        )

    def test_receiver_down_is_retried_on_the_backoff_schedule(self, world, receiver):
        """While the endpoint is down attempts come 1, 2 and 4 minutes apart; then it arrives under the same id."""
        world.subscribe(receiver, ["case.opened"])
        receiver.kill()
        open_case(world.engine)
        (queued,) = world.rows()
        start = world.clock.now()
        waits = []

        for _ in range(3):
            report = world.deliver()
            assert (report.failed, report.delivered) == (1, 0)
            (row,) = world.rows()
            waits.append(row.next_attempt_at - start)
            world.clock.set(row.next_attempt_at - timedelta(seconds=1))
            assert world.deliver() == WebhookReport()  # not due yet
            world.clock.set(row.next_attempt_at)
        receiver.start()
        report = world.deliver()

        assert waits == [
            timedelta(minutes=1),
            timedelta(minutes=3),
            timedelta(minutes=7),
        ]
        assert report.delivered == 1
        assert receiver.ids() == [queued.delivery_id]
        (done,) = world.rows()
        assert (done.status, done.attempts, done.last_error) == (
            WebhookStatus.DELIVERED,
            4,
            "",
        )

    def test_receiver_killed_mid_stream_loses_nothing(self, world, receiver):
        """A receiver that dies mid-stream and comes back gets every message; a repeat keeps its webhook-id."""
        world.subscribe(receiver)
        for i in range(4):
            agree(world.engine, open_case(world.engine, ref=f"W-{i}"))
        queued = {d.delivery_id: d for d in world.rows()}
        receiver.crash_on = 6

        report = world.deliver()

        assert report.delivered == 5
        assert report.failed + report.postponed == len(queued) - 5
        receiver.crash_on = None
        receiver.start()
        world.drain()
        ids = receiver.ids()
        assert set(ids) == set(queued)
        repeats = {i for i in ids if ids.count(i) > 1}
        assert repeats == {ids[5]}  # the message the receiver died holding
        assert ids.count(ids[5]) == 2
        first, again = (r for r in receiver.received if r.msg_id == ids[5])
        assert first.body == again.body
        assert receiver.rejected == []
        assert {d.status for d in world.rows()} == {WebhookStatus.DELIVERED}

    def test_gone_disables_the_subscription(self, world, receiver):
        """A 410 Gone dead-letters the message, disables the subscription and stops the rest."""
        sub = world.subscribe(receiver, ["case.*"])
        case = open_case(world.engine)
        agree(world.engine, case)
        receiver.status = 410

        report = world.deliver()

        assert (report.dead, report.disabled, report.delivered) == (2, 1, 0)
        assert len(receiver.received) == 1  # the second was never sent
        assert (
            webhooks.get_subscription(world.uow, sub.subscription_id).disabled_at
            == world.clock.now()
        )
        first, second = world.rows()
        assert (first.status, first.last_status) == (WebhookStatus.DEAD, 410)
        assert (second.status, second.last_error) == (
            WebhookStatus.DEAD,
            "subscription disabled",
        )
        world.engine.fire(
            rrm.FireEvent(
                case_id=case.case_id,
                event="suspend_liquidation",
                actor="ana",
                role="ustr",
            )
        )
        assert len(world.rows()) == 2

    def test_dead_letter_after_max_attempts_then_retry(self, world, receiver):
        """After the last attempt a message is dead and listed; a retry delivers it under the same id."""
        settings = WebhookSettings(max_attempts=3)
        world.subscribe(receiver, ["case.opened"])
        open_case(world.engine)
        receiver.status = 503

        world.drain(settings)

        (dead,) = world.rows("dead")
        assert (dead.attempts, dead.last_status, dead.last_error) == (
            3,
            503,
            "HTTP 503",
        )
        assert world.rows("pending", "failed", "sending") == []
        receiver.status = 200
        again = webhooks.retry_delivery(
            world.uow, dead.delivery_id, now=world.clock.now()
        )
        assert (again.status, again.attempts) == (WebhookStatus.PENDING, 0)
        world.deliver(settings)
        assert receiver.ids() == [dead.delivery_id] * 4
        assert world.rows("delivered")[0].delivery_id == dead.delivery_id

    def test_abandoned_claim_is_taken_again_after_its_lease(self, world, receiver):
        """A delivery claimed by a worker that died is sent by another once the lease ends."""
        world.subscribe(receiver, ["case.opened"])
        open_case(world.engine)
        now = world.clock.now()
        with world.uow() as uow:
            (claimed,) = uow.webhooks.claim_deliveries(
                now=now, limit=10, lease_until=now + FAST.lease
            )
            uow.commit()

        assert world.deliver() == WebhookReport()
        world.clock.advance(FAST.lease)
        assert world.deliver().delivered == 1
        assert receiver.ids() == [claimed.delivery_id]

    def test_crash_between_send_and_record_repeats_with_the_same_id(
        self, world, receiver
    ):
        """A worker dying after the send but before the record leads to one repeat, same webhook-id and body."""

        class Died(BaseException):
            pass

        class DiesAfterSending:
            def send(self, url, **kw):
                world.sender.send(url, **kw)
                raise Died

        world.subscribe(receiver, ["case.opened"])
        open_case(world.engine)

        with pytest.raises(Died):
            deliver_webhooks(world.uow, DiesAfterSending(), now=world.clock.now())
        assert world.rows("sending")
        world.clock.advance(FAST.lease + timedelta(seconds=5))
        world.deliver()

        first, again = receiver.received
        assert first.msg_id == again.msg_id == world.rows("delivered")[0].delivery_id
        assert first.body == again.body

    def test_two_workers_deliver_each_message_once(self, world, receiver):
        """Two workers delivering at once take disjoint messages: each arrives exactly once."""
        world.subscribe(receiver)
        for i in range(5):
            agree(world.engine, open_case(world.engine, ref=f"W-{i}"))
        settings = WebhookSettings(batch=3)
        errors: list[BaseException] = []

        def work() -> None:
            try:
                world.deliver(settings)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

        assert errors == []
        assert sorted(receiver.ids()) == sorted(d.delivery_id for d in world.rows())
        assert len(set(receiver.ids())) == len(receiver.ids()) == 25

    def test_next_wakeup_follows_retries_and_leases(self, world, receiver):
        """The scheduler is woken when a retry is due, or when a claim's lease runs out."""
        world.subscribe(receiver, ["case.opened"])
        receiver.kill()
        with world.uow() as uow:
            assert webhooks.next_webhook_wakeup(uow) is None
        open_case(world.engine)
        with world.uow() as uow:
            assert webhooks.next_webhook_wakeup(uow) == world.clock.now()

        world.deliver()

        with world.uow() as uow:
            assert webhooks.next_webhook_wakeup(uow) == world.clock.now() + timedelta(
                minutes=1
            )

    def test_slow_endpoint_times_out_and_is_retried(self, world, receiver):
        """An endpoint slower than the sender's timeout counts as a failure and is retried."""
        world.subscribe(receiver, ["case.opened"])
        open_case(world.engine)
        receiver.delay = 1.0

        with HttpWebhookSender(timeout=0.2) as impatient:
            report = deliver_webhooks(world.uow, impatient, now=world.clock.now())

        (row,) = world.rows()
        assert report.failed == 1
        assert row.last_error == "webhook endpoint did not answer in time (ReadTimeout)"

    def test_redirect_is_not_followed(self, world, receiver):
        """A redirect is a failure to retry, not a hop to another address."""
        world.subscribe(receiver, ["case.opened"])
        open_case(world.engine)
        receiver.status = 307
        receiver.location = "http://127.0.0.1:9/elsewhere"

        report = world.deliver()

        (row,) = world.rows()
        assert (report.failed, row.last_status, row.last_error) == (1, 307, "HTTP 307")
        assert len(receiver.received) == 1

    def test_logs_carry_no_url_token_or_secret(self, world, receiver):
        """Delivery logs name subscriptions, deliveries and cases, never the URL's token or the secret."""
        made = webhooks.create_subscription(
            world.uow,
            url=receiver.url("/hook", "?token=s3cr3t-t0ken"),
            event_types=["case.opened"],
            now=world.clock.now(),
        )
        receiver.secrets["/hook"] = made.secret
        open_case(world.engine)
        receiver.statuses = [500]

        with capture_logs() as logs:
            world.drain()

        text = repr(logs)
        assert {e["event"] for e in logs} >= {"webhook_failed", "webhook_delivered"}
        assert "s3cr3t-t0ken" not in text
        assert made.secret not in text
        assert "127.0.0.1" not in text


# -- subscriptions ---------------------------------------------------------------


class TestSubscriptions:
    def test_secret_is_returned_once(self, world, receiver):
        """Creation returns a whsec_ secret; listing and reading never do."""
        made = world.subscribe(receiver, ["deadline.*", "case.opened", "deadline.*"])

        listed = webhooks.list_subscriptions(world.uow)
        read = webhooks.get_subscription(world.uow, made.subscription_id)

        assert made.secret.startswith("whsec_")
        assert made.event_types == ("deadline.*", "case.opened")
        assert [s.secret for s in listed] == [""]
        assert read.secret == ""
        assert read == listed[0]
        assert made.secret not in repr(made)

    @pytest.mark.parametrize(
        "url",
        [
            "ftp://hooks.example.gov/in",
            "https://",
            "hooks.example.gov/in",
            "javascript:alert(1)",
            "http://exa mple.gov/in",
            "https://hooks.example.gov:99999/in",
            "https://hooks.example.gov:0/in",
            "http://[::1/in",
            "",
            None,
            "https://" + "a" * 2100 + ".gov",
        ],
    )
    def test_bad_url_is_refused(self, world, url):
        """A URL that is not http(s) with a host is refused and nothing is written."""
        with pytest.raises(rrm.InvalidInput) as caught:
            webhooks.create_subscription(
                world.uow, url=url, event_types=EVERYTHING, now=world.clock.now()
            )

        assert caught.value.field == "url"
        assert webhooks.list_subscriptions(world.uow) == []

    @pytest.mark.parametrize(
        "types",
        [
            [],
            ["case.closed"],
            "case.opened",
            ["deadline"],
            [1],
            None,
            ["case.*", "deadline.missed"],
        ],
    )
    def test_bad_event_types_are_refused(self, world, types):
        """Unknown or malformed event types are refused and nothing is written."""
        with pytest.raises(rrm.InvalidInput) as caught:
            webhooks.create_subscription(
                world.uow,
                url="https://hooks.example.gov/in",
                event_types=types,
                now=world.clock.now(),
            )

        assert caught.value.field == "event_types"
        assert webhooks.list_subscriptions(world.uow) == []

    def test_unknown_ids_raise_webhook_not_found(self, world):
        """Unknown subscription or delivery ids raise WebhookNotFound, a LookupError."""
        calls = [
            lambda: webhooks.get_subscription(world.uow, "sub_nope"),
            lambda: webhooks.disable_subscription(
                world.uow, "sub_nope", now=world.clock.now()
            ),
            lambda: webhooks.enable_subscription(world.uow, "sub_nope"),
            lambda: webhooks.delete_subscription(world.uow, "sub_nope"),
            lambda: webhooks.get_delivery(world.uow, "msg_nope"),
            lambda: webhooks.retry_delivery(
                world.uow, "msg_nope", now=world.clock.now()
            ),
        ]
        for call in calls:
            with pytest.raises(rrm.WebhookNotFound) as caught:
                call()
            assert isinstance(caught.value, LookupError)
        assert "msg_nope" in str(caught.value)

    def test_delete_removes_the_subscription_and_its_deliveries(self, world, receiver):
        """Deleting a subscription removes it and everything queued for it."""
        sub = world.subscribe(receiver)
        open_case(world.engine)

        webhooks.delete_subscription(world.uow, sub.subscription_id)

        assert webhooks.list_subscriptions(world.uow) == []
        assert world.rows() == []

    def test_delivery_listing_refuses_unknown_status(self, world):
        """Listing deliveries by an unknown status is refused with InvalidInput."""
        with pytest.raises(rrm.InvalidInput):
            webhooks.list_deliveries(world.uow, status=("lost",))

    def test_retry_refuses_a_delivered_message(self, world, receiver):
        """Only failed or dead messages can be retried."""
        world.subscribe(receiver, ["case.opened"])
        open_case(world.engine)
        world.deliver()
        (done,) = world.rows()

        with pytest.raises(rrm.InvalidInput):
            webhooks.retry_delivery(world.uow, done.delivery_id, now=world.clock.now())

    def test_retry_refuses_while_the_subscription_is_disabled(self, world, receiver):
        """A dead letter of a disabled subscription is retried only once it is enabled."""
        sub = world.subscribe(receiver, ["case.opened"])
        open_case(world.engine)
        receiver.status = 410
        world.deliver()
        (dead,) = world.rows("dead")

        with pytest.raises(rrm.InvalidInput):
            webhooks.retry_delivery(world.uow, dead.delivery_id, now=world.clock.now())
        webhooks.enable_subscription(world.uow, sub.subscription_id)
        receiver.status = 204
        webhooks.retry_delivery(world.uow, dead.delivery_id, now=world.clock.now())
        world.deliver()

        assert world.rows("delivered")[0].delivery_id == dead.delivery_id
