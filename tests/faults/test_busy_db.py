"""A database that is locked, busy, or drops the engine's connection.

SQLite: another connection holds the write lock (``BEGIN IMMEDIATE`` or ``BEGIN
EXCLUSIVE``). Every operation must fail within the busy timeout with a typed
``DatabaseBusy`` (a ``StorageError``) that says, in plain words, that the database is busy; write nothing;
and work once the lock is gone. A worker ticking meanwhile must survive and catch up,
and a lock that lands between a message's send and its record must not make the
message go out twice.

PostgreSQL: another transaction holds a row or table lock, or the server terminates
the engine's connection (idle, or in the middle of a transaction). The operation
fails typed (within the lock timeout: RRM's engine sets 5 s unless the URL or the
server sets one) or succeeds, leaves nothing half-written, and the next operation
works.

The busy and lock timeouts are shortened for the tests (300 ms) through the same
settings a host would use: SQLite's ``busy_timeout`` pragma, PostgreSQL's
``lock_timeout`` in the URL's ``options``. Time for deadlines moves only with the fake
clock; the real waits here are lock timeouts and bounded polls for another thread.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from structlog.testing import capture_logs

import rrm
from rrm.adapters.email import SmtpNotifier, SmtpSettings
from rrm.adapters.email.smtp import wire_message_id
from rrm.adapters.scheduler import SchedulerWorker
from rrm.adapters.sql.engine import make_engine
from rrm.testing import FakeClock

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from .conftest import MailServer

START = datetime(2025, 1, 6, 15, 0, tzinfo=UTC)
BUSY_MS = 300
ANA = rrm.Officer(officer_id="ana", role="ustr", email="ana@ustr.example")


def eventually(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Return the first truthy result of *check*, polling for at most *timeout* s."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.01)


def open_case(engine: rrm.CaseEngine, ref: str = "B-1") -> rrm.Case:
    return engine.open_case(
        rrm.OpenCase(
            workflow="usmca-31a",
            initiation="request",
            complainant="US",
            respondent="MX",
            facility=rrm.Facility(
                facility_id=f"MX-{ref}",
                name="Planta",
                owner="Grupo",
                country=rrm.Party.MX,
            ),
            claim=rrm.Claim(
                basis="annex_23a_legislation", sector_category="manufacturing"
            ),
            officers=(ANA,),
            external_ref=ref,
            actor="officer:ana",
            role="ustr",
        )
    )


def agree(case: rrm.Case, key: str | None = "note-1") -> rrm.FireEvent:
    return rrm.FireEvent(
        case_id=case.case_id,
        event="respondent_agrees",
        actor="officer:ana",
        role="respondent",
        idempotency_key=key,
        expected_version=case.version,
    )


def notifier(port: int, clock: FakeClock) -> SmtpNotifier:
    settings = SmtpSettings(
        host="127.0.0.1",
        port=port,
        security="none",
        sender_address="rrm@agency.example",
        timeout=5,
    )
    return SmtpNotifier(settings, now=clock.now)


def snapshot(engine: rrm.CaseEngine) -> list[Any]:
    """Everything a failed operation must leave as it was."""
    cases = sorted(engine.find(), key=lambda c: c.external_ref)
    return [
        (c, engine.history(c.case_id), engine.verify(c.case_id).ok) for c in cases
    ] + [engine.alerts()]


# -- SQLite ---------------------------------------------------------------------------


def sqlite_engine(url: str, made: list[sa.Engine]) -> sa.Engine:
    """RRM's SQLite engine, with the busy timeout shortened the way a host would."""
    engine = make_engine(url)

    @event.listens_for(engine, "connect")
    def _busy(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute(f"PRAGMA busy_timeout={BUSY_MS}")

    made.append(engine)
    return engine


@pytest.fixture(name="sqlite_path")
def _sqlite_path(tmp_path: Path) -> Path:
    path = tmp_path / "busy.sqlite"
    rrm.upgrade_schema(f"sqlite:///{path}")
    return path


@pytest.fixture(name="engines")
def _engines() -> Iterator[list[sa.Engine]]:
    made: list[sa.Engine] = []
    yield made
    for engine in made:
        engine.dispose()


class Holder:
    """Another connection to the SQLite file that takes and releases the write lock."""

    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False
        )

    def lock(self, how: str = "BEGIN IMMEDIATE") -> None:
        self._conn.execute(how)

    def release(self) -> None:
        self._conn.execute("ROLLBACK")

    def close(self) -> None:
        self._conn.close()


@pytest.fixture(name="holder")
def _holder(sqlite_path: Path) -> Iterator[Holder]:
    holder = Holder(sqlite_path)
    yield holder
    holder.close()


@pytest.fixture(name="lite")
def _lite(
    sqlite_path: Path, engines: list[sa.Engine]
) -> tuple[rrm.CaseEngine, FakeClock]:
    clock = FakeClock(START)
    engine = rrm.bootstrap(
        sqlite_engine(f"sqlite:///{sqlite_path}", engines), clock=clock
    )
    return engine, clock


def _operations(case: rrm.Case) -> dict[str, Callable[[rrm.CaseEngine], object]]:
    return {
        "fire": lambda e: e.fire(agree(case)),
        "open_case": lambda e: open_case(e, "B-2"),
        "extend": lambda e: e.extend(
            rrm.ExtendDeadline(
                case_id=case.case_id,
                key="respondent_answer",
                new_date=date(2025, 1, 31),
                actor="officer:ana",
                role="ustr",
                reason="agreed by note",
            )
        ),
        "assign": lambda e: e.assign(
            rrm.AssignOfficers(
                case_id=case.case_id,
                actor="officer:ana",
                role="ustr",
                assign=(rrm.Officer(officer_id="luis", role="ustr"),),
            )
        ),
        "get": lambda e: e.get(case.case_id),
        "tick": lambda e: e.tick(),
    }


class TestSqliteLocked:
    @pytest.mark.parametrize("how", ["BEGIN IMMEDIATE", "BEGIN EXCLUSIVE"])
    @pytest.mark.parametrize(
        "operation", ["fire", "open_case", "extend", "assign", "tick"]
    )
    def test_fails_typed_within_the_busy_timeout_then_works(
        self, lite: Any, holder: Holder, how: str, operation: str
    ) -> None:
        """While another connection holds the write lock, each operation raises a
        StorageError saying the database is busy, after about the busy timeout, and
        writes nothing; once the lock is released the same call succeeds."""
        engine, clock = lite
        case = open_case(engine)
        clock.set(datetime(2025, 1, 20, tzinfo=UTC))  # the answer deadline lapsed
        call = _operations(case)[operation]
        before = snapshot(engine)
        holder.lock(how)
        try:
            began = time.monotonic()
            with pytest.raises(rrm.StorageError) as info:
                call(engine)
            waited = time.monotonic() - began
        finally:
            holder.release()
        assert type(info.value) is rrm.DatabaseBusy
        assert "busy" in str(info.value)
        assert "try again" in str(info.value)
        assert BUSY_MS / 1000 * 0.8 <= waited < BUSY_MS / 1000 + 3
        assert snapshot(engine) == before
        call(engine)
        assert all(engine.verify(c.case_id).ok for c in engine.find())

    @pytest.mark.parametrize("how", ["BEGIN IMMEDIATE", "BEGIN EXCLUSIVE"])
    def test_reads_do_not_wait_for_a_writer(
        self, lite: Any, holder: Holder, how: str
    ) -> None:
        """Reads run in a deferred transaction: while another connection holds the
        write lock (WAL mode), an officer can still look cases up, at once."""
        engine, _ = lite
        case = open_case(engine)
        holder.lock(how)
        try:
            began = time.monotonic()
            assert engine.get(case.case_id).version == 1
            assert len(engine.history(case.case_id)) == 1
            assert engine.verify(case.case_id).ok
            engine.due(30)
            engine.alerts()
            waited = time.monotonic() - began
        finally:
            holder.release()
        assert waited < BUSY_MS / 1000 * 0.8

    def test_a_retried_fire_is_recorded_once(self, lite: Any, holder: Holder) -> None:
        """The officer's retry after 'busy' (same idempotency key) records one entry."""
        engine, _ = lite
        case = open_case(engine)
        holder.lock()
        try:
            with pytest.raises(rrm.StorageError):
                engine.fire(agree(case))
        finally:
            holder.release()
        after = engine.fire(agree(case))
        again = engine.fire(agree(case))
        assert after.version == again.version == 2
        assert [e.event for e in engine.history(case.case_id)] == [
            "request_for_review",
            "respondent_agrees",
        ]

    def test_worker_survives_and_catches_up(
        self,
        sqlite_path: Path,
        engines: list[sa.Engine],
        holder: Holder,
        mail: MailServer,
    ) -> None:
        """A worker whose ticks hit a locked database logs and keeps running; once
        the lock goes, it sends every owed alert, once each."""
        clock = FakeClock(START)
        engine = rrm.bootstrap(
            sqlite_engine(f"sqlite:///{sqlite_path}", engines),
            clock=clock,
            notifier=notifier(mail.port, clock),
        )
        open_case(engine)
        clock.set(datetime(2025, 1, 18, tzinfo=UTC))  # the whole answer ladder is owed
        worker = SchedulerWorker(engine, sweep_seconds=0.05)
        holder.lock()
        with capture_logs() as logs:
            try:
                worker.start()
                failed = eventually(
                    lambda: sum(e["event"] == "tick_failed" for e in logs) >= 2
                )
                assert failed, "the worker never tried to tick"
                assert worker.running
                assert mail.handler.messages == []
            finally:
                holder.release()
            try:
                done = eventually(
                    lambda: (
                        not engine.alerts(status=("pending", "failed", "sending"))
                        and engine.alerts()
                    )
                )
            finally:
                worker.stop()
        assert done, "the worker did not catch up after the lock was released"
        errors = {e.get("error") for e in logs if e["event"] == "tick_failed"}
        assert errors == {"DatabaseBusy"}
        # The ladder's reminders were overtaken by the lapse (the case moved on by
        # itself): the missed-deadline alert is what is owed, and it went out once.
        statuses = {a.step.split("@")[0]: a.status.value for a in engine.alerts()}
        assert statuses["overdue-1"] == "sent"
        assert set(statuses.values()) <= {"sent", "superseded"}
        assert engine.get(engine.find()[0].case_id).state == "panel_eligible"
        sent = engine.alerts(status=("sent",))
        ids = mail.handler.ids()
        assert sorted(ids) == sorted(wire_message_id(a.message_id) for a in sent)

    def test_lock_between_send_and_record_sends_once(
        self,
        sqlite_path: Path,
        engines: list[sa.Engine],
        holder: Holder,
        mail: MailServer,
    ) -> None:
        """The database turns busy right after the mail server accepted a message:
        the tick fails typed, and after the lock (and the claim's lease) the message
        is recorded as sent, not sent again."""
        clock = FakeClock(START)
        engine = rrm.bootstrap(
            sqlite_engine(f"sqlite:///{sqlite_path}", engines),
            clock=clock,
            notifier=notifier(mail.port, clock),
        )
        open_case(engine)
        clock.set(datetime(2025, 1, 7, 15, tzinfo=UTC))  # the 7-day reminder is owed
        released = threading.Event()

        def lock_for_a_while() -> None:
            holder.lock()
            threading.Timer(1.0, lambda: (holder.release(), released.set())).start()

        mail.handler.on_accept = lock_for_a_while
        with pytest.raises(rrm.StorageError, match="busy"):
            engine.tick()
        mail.handler.on_accept = None
        assert released.wait(10)
        assert len(mail.handler.ids()) == 1
        clock.advance(rrm.AlertSettings().lease + timedelta(minutes=1))
        engine.tick()
        (alert,) = engine.alerts()
        assert alert.status is rrm.AlertStatus.SENT
        assert mail.handler.ids() == [wire_message_id(alert.message_id)]


# -- PostgreSQL -----------------------------------------------------------------------


def with_options(url: str, **settings: str) -> str:
    """Add server settings (``-c name=value``) to the URL's libpq ``options``."""
    extra = "".join(f"%20-c{name}%3D{quote(value)}" for name, value in settings.items())
    assert url.rsplit("&", 1)[-1].rsplit("?", 1)[-1].startswith("options="), url
    return url + extra


@dataclass
class Pg:
    """An engine on the test's schema and what the tests need around it."""

    engine: rrm.CaseEngine
    clock: FakeClock
    sql: sa.Engine  # the engine's SQLAlchemy engine
    admin: sa.Engine  # autocommit, for pg_stat_activity and pg_terminate_backend
    name: str  # the application_name of the engine's connections
    db_url: str  # the test's schema, without RRM's settings


@pytest.fixture(name="pg")
def _pg(db_url: str, engines: list[sa.Engine]) -> Pg:
    """An engine with a 300 ms lock timeout, named for pg_stat_activity."""
    name = f"rrm-fault-{uuid.uuid4().hex[:8]}"
    url = with_options(db_url, lock_timeout=str(BUSY_MS)) + f"&application_name={name}"
    rrm.upgrade_schema(url)
    clock = FakeClock(START)
    sql = make_engine(url)
    admin = sa.create_engine(db_url, isolation_level="AUTOCOMMIT")
    engines.extend((sql, admin))
    return Pg(
        engine=rrm.bootstrap(sql, clock=clock),
        clock=clock,
        sql=sql,
        admin=admin,
        name=name,
        db_url=db_url,
    )


def backends(admin: sa.Engine, name: str) -> list[Any]:
    with admin.connect() as conn:
        return list(
            conn.execute(
                sa.text(
                    "SELECT pid, state, wait_event_type FROM pg_stat_activity "
                    "WHERE application_name = :name"
                ),
                {"name": name},
            )
        )


def terminate(admin: sa.Engine, name: str) -> int:
    with admin.connect() as conn:
        return len(
            list(
                conn.execute(
                    sa.text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE application_name = :name"
                    ),
                    {"name": name},
                )
            )
        )


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
class TestPostgresLocked:
    @pytest.mark.parametrize(
        ("lock", "operation"),
        [
            ("SELECT 1 FROM rrm_case WHERE case_id = :case_id FOR UPDATE", "fire"),
            ("LOCK TABLE rrm_case_event IN EXCLUSIVE MODE", "fire"),
            ("LOCK TABLE rrm_deadline IN ACCESS EXCLUSIVE MODE", "extend"),
            ("LOCK TABLE rrm_alert IN ACCESS EXCLUSIVE MODE", "tick"),
        ],
    )
    def test_lock_held_elsewhere_fails_typed_then_works(
        self, pg: Pg, lock: str, operation: str
    ) -> None:
        """A lock held by another transaction makes the operation fail with a
        StorageError within the lock timeout, writing nothing; after the other
        transaction ends, the same operation succeeds."""
        engine, clock, db_url = pg.engine, pg.clock, pg.db_url
        case = open_case(engine)
        clock.set(datetime(2025, 1, 20, tzinfo=UTC))
        call = _operations(case)[operation]
        before = snapshot(engine)
        other = sa.create_engine(with_options(db_url))
        try:
            with other.connect() as conn:
                conn.execute(sa.text(lock), {"case_id": case.case_id})
                began = time.monotonic()
                with pytest.raises(rrm.StorageError) as info:
                    call(engine)
                waited = time.monotonic() - began
                conn.rollback()
        finally:
            other.dispose()
        # A lock timeout (SQLSTATE 55P03) is reported like SQLite's busy database.
        assert type(info.value) is rrm.DatabaseBusy
        assert "busy" in str(info.value)
        assert info.value.hint is not None
        assert BUSY_MS / 1000 * 0.8 <= waited < BUSY_MS / 1000 + 3
        assert snapshot(engine) == before
        call(engine)
        assert all(engine.verify(c.case_id).ok for c in engine.find())

    def test_default_lock_timeout_ends_the_wait(
        self, db_url: str, engines: list[sa.Engine]
    ) -> None:
        """Regression: with no lock timeout of its own, a fire waited for ever on a
        row another program's transaction kept locked. RRM's engine now gives up
        after 5 s (like SQLite's busy timeout), typed, writing nothing."""
        rrm.upgrade_schema(db_url)
        sql = make_engine(db_url)
        engines.append(sql)
        engine = rrm.bootstrap(sql, clock=FakeClock(START))
        case = open_case(engine)
        other = sa.create_engine(db_url)
        engines.append(other)
        outcome: list[Any] = []
        with other.connect() as conn:
            conn.execute(
                sa.text("SELECT 1 FROM rrm_case WHERE case_id = :c FOR UPDATE"),
                {"c": case.case_id},
            )
            began = time.monotonic()
            thread = threading.Thread(
                target=lambda: outcome.append(_call(engine.fire, agree(case))),
                daemon=True,
            )
            thread.start()
            thread.join(15)
            waited = time.monotonic() - began
            conn.rollback()
        thread.join(15)
        assert outcome, "the fire still waits on the lock"
        assert isinstance(outcome[0], rrm.StorageError), outcome
        assert 4 <= waited < 15
        assert engine.get(case.case_id).version == 1
        assert engine.fire(agree(case)).version == 2

    def test_idle_connection_terminated(self, pg: Pg) -> None:
        """The server ends the engine's pooled connections between operations: the
        next operation fails typed or succeeds, and the one after works."""
        engine, admin, name = pg.engine, pg.admin, pg.name
        case = open_case(engine)
        assert terminate(admin, name) >= 1
        with contextlib.suppress(rrm.StorageError):
            engine.fire(agree(case))
        after = engine.fire(agree(case))
        assert after.version == 2
        assert engine.verify(case.case_id).ok
        assert len(engine.history(case.case_id)) == 2

    def test_connection_terminated_mid_transaction(self, pg: Pg) -> None:
        """The engine's backend is terminated while its fire waits on a lock, in the
        middle of its transaction: the fire fails typed, nothing is half-written,
        and the retried fire is recorded once."""
        engine, admin, name, db_url = pg.engine, pg.admin, pg.name, pg.db_url
        case = open_case(engine)
        slow = make_engine(
            with_options(db_url, lock_timeout="20000") + f"&application_name={name}-2"
        )
        try:
            patient = rrm.bootstrap(slow, clock=engine.clock)
            other = sa.create_engine(with_options(db_url))
            outcome: list[BaseException | rrm.Case] = []
            try:
                with other.connect() as conn:
                    conn.execute(
                        sa.text("SELECT 1 FROM rrm_case WHERE case_id = :c FOR UPDATE"),
                        {"c": case.case_id},
                    )
                    thread = threading.Thread(
                        target=lambda: outcome.append(_call(patient.fire, agree(case)))
                    )
                    thread.start()
                    waiting = eventually(
                        lambda: any(
                            b.wait_event_type == "Lock"
                            for b in backends(admin, f"{name}-2")
                        )
                    )
                    assert waiting, "the fire never waited on the lock"
                    assert terminate(admin, f"{name}-2") >= 1
                    thread.join(20)
                    conn.rollback()
            finally:
                other.dispose()
        finally:
            slow.dispose()
        assert len(outcome) == 1
        assert isinstance(outcome[0], rrm.StorageError), outcome
        assert len(engine.history(case.case_id)) == 1
        assert engine.get(case.case_id).version == 1
        after = engine.fire(agree(case))
        assert after.version == 2
        assert engine.verify(case.case_id).ok

    def test_connection_lost_at_commit(self, pg: Pg) -> None:
        """The server ends the engine's connection as it is about to commit: the
        outcome is unknown to the engine, which says so (typed, with a hint) instead
        of claiming nothing was written; the officer's retry with the same
        idempotency key is recorded exactly once."""
        engine, admin, name = pg.engine, pg.admin, pg.name
        case = open_case(engine)
        sql = pg.sql
        armed = [True]

        def cut(_conn: Any) -> None:
            if armed[0]:
                armed[0] = False
                terminate(admin, name)

        event.listen(sql, "commit", cut)
        try:
            with pytest.raises(rrm.StorageError) as info:
                engine.fire(agree(case))
        finally:
            event.remove(sql, "commit", cut)
        assert "may or may not" in str(info.value)
        assert info.value.hint is not None
        assert "idempotency key" in info.value.hint
        after = engine.fire(agree(case))
        assert after.version == 2
        assert [e.idempotency_key for e in engine.history(case.case_id)] == [
            None,
            "note-1",
        ]
        assert engine.verify(case.case_id).ok


def _call(fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return fn(*args)
    except BaseException as exc:  # noqa: BLE001 - handed to the test thread
        return exc
