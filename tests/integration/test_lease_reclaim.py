"""A killed worker's claimed alerts go out soon after, once each (issue #13, item 4).

Worker A claims a full batch of 100 alerts and is killed before its first send
(its notifier raises a ``BaseException``, which nothing in RRM catches, as a
SIGKILL would stop it: no release, no outcome, and its heartbeat thread gone).
The fake clock then moves past the heartbeat threshold (30 s), still inside the
60 s lease and far inside the old 5 minutes, and worker B takes the batch over
and sends every alert to a real aiosmtpd server on loopback, each exactly once.
A, should it wake up, holds tokens that no longer match: it can neither renew
nor record those claims, and its next delivery sends nothing.

Runs on SQLite and PostgreSQL; time moves only with the fake clock. The claim
tests at the end drive the SQL outbox directly, as a worker does.
"""

from __future__ import annotations

import dataclasses
import email
import threading
from datetime import UTC, datetime, timedelta
from email import policy
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
from structlog.testing import capture_logs

import rrm
from rrm.adapters.email import JinjaAlertRenderer, SmtpNotifier, SmtpSettings
from rrm.adapters.email.smtp import wire_message_id
from rrm.adapters.sql.tables import ALERT, WORKER
from rrm.adapters.sql.uow import SqlUnitOfWork, SqlUnitOfWorkFactory
from rrm.domain.alerts import AlertStatus
from rrm.service.delivery import Delivery, deliver
from rrm.service.ports import AlertQuery
from rrm.testing import FakeClock

if TYPE_CHECKING:
    from .conftest import Server

CASES = 100  # one 7-day reminder each: one full batch
# 7 business days before the answer deadline of cases opened on 2025-01-06.
OWED = datetime(2025, 1, 7, 15, 0, tzinfo=UTC)
SETTINGS = rrm.AlertSettings()
ANA = rrm.Officer(officer_id="ana", role="ustr", email="ana@ustr.example")


class Killed(BaseException):
    """Stops a worker where it stands, as SIGKILL would (nothing catches it)."""


class DiesOnFirstSend:
    """A notifier whose process is killed as it is about to hand over a message."""

    def send(self, message: rrm.AlertMessage) -> None:
        raise Killed


def smtp(port: int, clock: FakeClock) -> SmtpNotifier:
    return SmtpNotifier(
        SmtpSettings(
            host="127.0.0.1",
            port=port,
            security="none",
            sender_address="rrm@agency.example",
            timeout=5,
        ),
        now=clock.now,
    )


def received(server: Server) -> list[str]:
    """The Message-IDs the mail server accepted, in order."""
    return [
        email.message_from_bytes(e.content, policy=policy.default)["Message-ID"]
        for e in server.handler.envelopes
    ]


@dataclasses.dataclass
class World:
    """One database with 100 queued alerts, its clock and what workers need."""

    sql: sa.Engine
    clock: FakeClock
    workflows: Any

    def worker(self, notifier: Any) -> rrm.CaseEngine:
        """A worker process: an engine of its own on the shared database."""
        return rrm.bootstrap(
            self.sql, clock=self.clock, workflows=self.workflows, notifier=notifier
        )

    def claims(self) -> dict[str, tuple[str, datetime, str | None]]:
        """Each alert's status, claim end (its token) and claiming worker."""
        stmt = sa.select(
            ALERT.c.alert_id, ALERT.c.status, ALERT.c.claimed_until, ALERT.c.claimed_by
        )
        with self.sql.connect() as conn:
            return {row[0]: tuple(row[1:]) for row in conn.execute(stmt)}

    def last_seen(self, worker: str) -> datetime:
        """When *worker* last renewed its heartbeat."""
        stmt = sa.select(WORKER.c.last_seen).where(WORKER.c.worker_id == worker)
        with self.sql.connect() as conn:
            return conn.execute(stmt).scalar_one()


@pytest.fixture(name="world")
def _world(db_url, sql_engine_for, workflows) -> World:
    """100 cases whose 7-day reminders are owed and queued, none sent yet."""
    return make_world(sql_engine_for(db_url), workflows)


def make_world(sql: sa.Engine, workflows: Any) -> World:
    clock = FakeClock(datetime(2025, 1, 6, 15, tzinfo=UTC))
    seed = rrm.bootstrap(sql, clock=clock, workflows=workflows, upgrade=True)
    for i in range(CASES):
        seed.open_case(
            rrm.OpenCase(
                workflow="usmca-31a",
                initiation="request",
                complainant="US",
                respondent="MX",
                facility=rrm.Facility(
                    facility_id=f"MX-L{i}",
                    name="Planta",
                    owner="Grupo",
                    country=rrm.Party.MX,
                ),
                claim=rrm.Claim(
                    basis="annex_23a_legislation", sector_category="manufacturing"
                ),
                external_ref=f"LEASE-{i}",
                actor="ana",
                role="ustr",
                officers=(ANA,),
            )
        )
    clock.set(OWED)
    assert seed.tick().queued == CASES  # no notifier: queued, not sent
    return World(sql=sql, clock=clock, workflows=workflows)


def kill_a_worker(world: World) -> dict[str, Any]:
    """Worker A claims the batch and dies; return its claims as it left them."""
    a = world.worker(DiesOnFirstSend())
    with pytest.raises(Killed):
        a.tick()
    claims = world.claims()
    assert len(claims) == CASES
    assert {status for status, _, _ in claims.values()} == {"sending"}
    (owner,) = {by for _, _, by in claims.values()}
    assert owner is not None
    # The lease is 60 s (one alert was renewed just before the fatal send).
    assert all(
        OWED < end < OWED + timedelta(seconds=61) for _, end, _ in claims.values()
    )
    return claims


class TestKilledWorker:
    def test_its_batch_is_sent_once_after_the_heartbeat_threshold(
        self, world: World, smtp_server: Server
    ):
        """45 s after A died (past the 30 s threshold, inside the lease) B sends all
        100 alerts, each exactly once, to the mail server."""
        kill_a_worker(world)
        world.clock.advance(timedelta(seconds=45))
        b = world.worker(smtp(smtp_server.port, world.clock))

        report = b.tick()

        assert report.sent == CASES
        ids = received(smtp_server)
        assert len(ids) == len(set(ids)) == CASES
        sent = b.alerts(status=("sent",))
        assert sorted(ids) == sorted(wire_message_id(a.message_id) for a in sent)
        assert b.alerts(status=("pending", "failed", "sending")) == []

    def test_its_claims_hold_while_its_heartbeat_is_fresh(
        self, world: World, smtp_server: Server
    ):
        """20 s after A's last heartbeat B takes none of A's claims; past 30 s it does."""
        kill_a_worker(world)
        b = world.worker(smtp(smtp_server.port, world.clock))

        world.clock.advance(timedelta(seconds=20))
        early = b.tick()
        world.clock.advance(timedelta(seconds=11))
        late = b.tick()

        assert (early.sent, late.sent) == (0, CASES)
        assert len(received(smtp_server)) == CASES

    def test_it_cannot_record_or_send_them_when_it_wakes(
        self, world: World, smtp_server: Server
    ):
        """After B took over, A's tokens neither renew nor record, and A's next
        delivery (same worker, a working mail server now) sends nothing."""
        claims = kill_a_worker(world)
        world.clock.advance(timedelta(seconds=45))
        b = world.worker(smtp(smtp_server.port, world.clock))
        assert b.tick().sent == CASES
        (owner,) = {by for _, _, by in claims.values()}
        until = world.clock.now() + SETTINGS.lease

        with SqlUnitOfWork(world.sql) as uow:
            renewed = [
                uow.outbox.renew_claim(alert_id, token=token, until=until)
                for alert_id, (_, token, _) in claims.items()
            ]
            recorded = [
                uow.outbox.record_delivery(
                    dataclasses.replace(
                        alert,
                        status=AlertStatus.SENT,
                        sent_at=world.clock.now(),
                        claimed_until=None,
                    ),
                    token=claims[alert.alert_id][1],
                )
                for alert in uow.outbox.alerts(AlertQuery(limit=1000))
            ]
            uow.commit()
        resumed = Delivery(
            renderer=JinjaAlertRenderer(),
            notifier=smtp(smtp_server.port, world.clock),
            settings=SETTINGS,
            worker=owner,
        )
        again = deliver(
            SqlUnitOfWorkFactory(world.sql),
            world.workflows,
            resumed,
            now=world.clock.now(),
        )

        assert set(renewed) == {None}
        assert set(recorded) == {False}
        assert again.sent == 0
        assert len(received(smtp_server)) == CASES
        sent_at = {a.sent_at for a in b.alerts(status=("sent",))}
        assert sent_at == {world.clock.now()}  # B's outcomes stand

    def test_a_worker_that_starts_takes_the_batch_at_once(
        self, world: World, smtp_server: Server
    ):
        """A worker started after A died, on a clock past the threshold, sends the
        batch in its first tick (no lease to wait out)."""
        kill_a_worker(world)
        world.clock.advance(SETTINGS.heartbeat_timeout + timedelta(seconds=1))

        started = world.worker(smtp(smtp_server.port, world.clock))

        assert started.tick().sent == CASES
        assert len(set(received(smtp_server))) == len(received(smtp_server)) == CASES


class TestHeartbeat:
    def test_a_slow_worker_keeps_beating_while_it_sends(
        self, world: World, smtp_server: Server
    ):
        """While one send hangs, the worker's heartbeat thread renews its row."""
        seen: list[datetime] = []
        beaten = threading.Event()

        class Hangs:
            """Holds the first send until the heartbeat row has moved on twice."""

            def send(self, message: rrm.AlertMessage) -> None:
                for _ in range(1000):  # bounded: a thread's progress, not a deadline
                    seen.append(world.last_seen("a"))
                    if len(set(seen)) >= 3:
                        beaten.set()
                        break
                    threading.Event().wait(0.01)
                raise Killed

        fast = dataclasses.replace(SETTINGS, heartbeat=timedelta(milliseconds=20))
        a = Delivery(
            renderer=JinjaAlertRenderer(), notifier=Hangs(), settings=fast, worker="a"
        )
        with pytest.raises(Killed):
            deliver(
                SqlUnitOfWorkFactory(world.sql),
                world.workflows,
                a,
                now=world.clock.now(),
            )

        assert beaten.is_set()
        assert seen == sorted(seen)

    def test_beats_and_sends_share_an_in_memory_database(
        self, sql_engine_for, workflows, smtp_server: Server
    ):
        """On in-memory SQLite (one connection for every thread) a heartbeat every
        millisecond never enters a transaction of the delivery's: all 100 alerts
        go out once, and no beat fails."""
        world = make_world(sql_engine_for("sqlite://"), workflows)
        fast = dataclasses.replace(SETTINGS, heartbeat=timedelta(milliseconds=1))
        worker = Delivery(
            renderer=JinjaAlertRenderer(),
            notifier=smtp(smtp_server.port, world.clock),
            settings=fast,
            worker="a",
        )

        with capture_logs() as logs:
            report = deliver(
                SqlUnitOfWorkFactory(world.sql),
                world.workflows,
                worker,
                now=world.clock.now(),
            )

        assert report.sent == CASES
        assert len(set(received(smtp_server))) == len(received(smtp_server)) == CASES
        assert [e for e in logs if e["event"] == "heartbeat_failed"] == []
        assert world.last_seen("a") >= world.clock.now()


class TestClaimTokens:
    def test_a_taken_over_claim_never_reuses_the_old_token(self, world: World):
        """Two workers on equal clocks: B takes over A's silent claim at the very
        instant A claimed, and still gets a later end, so A's token is dead."""
        now = world.clock.now()
        lease_until = now + SETTINGS.lease
        with SqlUnitOfWork(world.sql) as uow:
            # A claims without a heartbeat row: a worker gone at once.
            (mine,) = uow.outbox.claim_alerts(
                now=now, limit=1, lease_until=lease_until, worker="A"
            )
            uow.commit()
        with SqlUnitOfWork(world.sql) as uow:
            taken = uow.outbox.claim_alerts(
                now=now,
                limit=CASES,
                lease_until=lease_until,
                worker="B",
                alive_since=now - SETTINGS.heartbeat_timeout,
            )
            uow.outbox.renew_heartbeat("B", at=now, alive_since=now)
            uow.commit()
        theirs = {a.alert_id: a for a in taken}[mine.alert_id]
        with SqlUnitOfWork(world.sql) as uow:
            renewed = uow.outbox.renew_claim(
                mine.alert_id, token=mine.claimed_until, until=lease_until
            )
            recorded = uow.outbox.record_delivery(
                dataclasses.replace(mine, status=AlertStatus.SENT, sent_at=now),
                token=mine.claimed_until,
            )
            uow.commit()

        assert len(taken) == CASES
        assert theirs.claimed_until > mine.claimed_until == lease_until
        assert (renewed, recorded) == (None, False)

    def test_claims_without_a_worker_wait_for_their_lease(self, world: World):
        """Claims taken before heartbeats existed (no worker named) are not silent
        claims: they are taken over only once their lease has run out."""
        now = world.clock.now()
        with SqlUnitOfWork(world.sql) as uow:
            uow.outbox.claim_alerts(
                now=now, limit=CASES, lease_until=now + timedelta(minutes=5)
            )
            uow.commit()

        def claim(at: datetime) -> int:
            with SqlUnitOfWork(world.sql) as uow:
                got = uow.outbox.claim_alerts(
                    now=at,
                    limit=CASES,
                    lease_until=at + SETTINGS.lease,
                    worker="B",
                    alive_since=at - SETTINGS.heartbeat_timeout,
                )
                uow.commit()
            return len(got)

        assert claim(now + timedelta(minutes=1)) == 0
        assert claim(now + timedelta(minutes=5)) == CASES

    def test_heartbeats_of_silent_workers_are_forgotten(self, world: World):
        """A heartbeat renews its own row and drops rows not seen since the threshold."""
        now = world.clock.now()
        with SqlUnitOfWork(world.sql) as uow:
            uow.outbox.renew_heartbeat("old", at=now, alive_since=now)
            uow.outbox.renew_heartbeat("new", at=now, alive_since=now)
            uow.commit()
        later = now + timedelta(minutes=1)
        with SqlUnitOfWork(world.sql) as uow:
            uow.outbox.renew_heartbeat(
                "new", at=later, alive_since=later - SETTINGS.heartbeat_timeout
            )
            uow.commit()
        with world.sql.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT worker_id, started_at FROM rrm_worker")
            ).all()

        assert [r[0] for r in rows] == ["new"]
