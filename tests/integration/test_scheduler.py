"""The scheduler adapter on a real database: catch-up, wake-up planning, failures, stop.

The engine's clock is a ``FakeClock``; APScheduler runs on the wall clock with short
intervals, and every wait below is a bounded poll. Tests that must see the plan
before any job fires give the worker a host scheduler started paused.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
from apscheduler.schedulers.background import BackgroundScheduler
from structlog.testing import capture_logs

import rrm
from rrm.adapters.scheduler import JOBSTORE, SWEEP_JOB, WAKEUP_JOB, SchedulerWorker
from rrm.testing import FakeClock

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from rrm.domain.alerts import AlertMessage

FACILITY = rrm.Facility(
    facility_id="MX-1",
    name="Planta",
    owner="Grupo",
    country=rrm.Party.MX,
    sector="auto parts",
)
CLAIM = rrm.Claim(basis="annex_23a_legislation", sector_category="manufacturing")
REF = "USTR-2025-042"
LONG = 3600.0  # a sweep that never fires during a test
SHORT = 0.05


class Mailbox:
    """A notifier that keeps every message; it can hold a send until released."""

    def __init__(self, hold: threading.Event | None = None) -> None:
        self.sent: list[AlertMessage] = []
        self.entered = threading.Event()
        self._hold = hold

    def send(self, message: AlertMessage) -> None:
        self.entered.set()
        if self._hold is not None:
            assert self._hold.wait(10), "the test never released the held send"
        self.sent.append(message)


def eventually(check: Callable[[], Any], timeout: float = 5.0) -> Any:
    """Return the first truthy result of *check*, polling for at most *timeout* s."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.01)


def open_case(engine: rrm.CaseEngine) -> rrm.Case:
    return engine.open_case(
        rrm.OpenCase(
            workflow="usmca-31a",
            initiation="request",
            complainant="US",
            respondent="MX",
            facility=FACILITY,
            claim=CLAIM,
            external_ref=REF,
            actor="officer:ana",
            role="ustr",
            officers=(
                rrm.Officer(officer_id="ana", role="ustr", email="ana@example.gov"),
            ),
        )
    )


def planned(worker: SchedulerWorker) -> datetime | None:
    assert worker.scheduler is not None
    job = worker.scheduler.get_job(WAKEUP_JOB)
    return None if job is None else job.next_run_time


def events(logs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == name]


@pytest.fixture(name="wall_clock")
def _wall_clock() -> FakeClock:
    """A fake clock that starts at the real time, so planned wake-ups lie ahead."""
    return FakeClock(datetime.now(UTC))


@pytest.fixture(name="make_engine")
def _make_engine(
    db_url: str, workflows: Any, sql_engine_for: Any
) -> Callable[..., rrm.CaseEngine]:
    """Build engines on the test's migrated database."""

    def make(clock: FakeClock, notifier: Any = None) -> rrm.CaseEngine:
        return rrm.bootstrap(
            sql_engine_for(db_url),
            clock=clock,
            workflows=workflows,
            upgrade=True,
            notifier=notifier,
        )

    return make


@pytest.fixture(name="paused_host")
def _paused_host() -> Iterator[BackgroundScheduler]:
    """A host's scheduler, started paused: jobs are planned but never fire."""
    scheduler = BackgroundScheduler(timezone=UTC)
    scheduler.start(paused=True)
    yield scheduler
    scheduler.shutdown(wait=True)


@pytest.fixture(name="workers")
def _workers() -> Iterator[list[SchedulerWorker]]:
    """Workers to stop after the test, whatever it asserted."""
    made: list[SchedulerWorker] = []
    yield made
    for worker in made:
        worker.stop()


class TestStartup:
    def test_catches_up_before_any_job_fires(self, make_engine, clock, paused_host):
        """Starting ticks once at once: an overdue deadline lapses and its alerts queue."""
        engine = make_engine(clock)
        case = open_case(engine)
        clock.advance(timedelta(days=60))
        worker = SchedulerWorker(engine, sweep_seconds=LONG, scheduler=paused_host)

        with capture_logs() as logs:
            worker.start()

        events_seen = [e.event for e in engine.history(case.case_id)]
        assert "deadline_missed" in events_seen
        assert engine.alerts(case_id=case.case_id)
        (catch_up,) = events(logs, "worker_catch_up")
        # The answer lapses and its lapse action (panel-eligible) cancels the review
        # deadline, which therefore never lapses.
        assert catch_up["lapsed"] == 1
        assert catch_up["queued"] == len(engine.alerts(case_id=case.case_id))

    def test_plans_the_wakeup_at_next_wakeup(self, make_engine, clock, paused_host):
        """After the catch-up the wake-up job stands at the engine's next wake-up."""
        engine = make_engine(clock, Mailbox())
        open_case(engine)
        worker = SchedulerWorker(engine, sweep_seconds=LONG, scheduler=paused_host)

        with capture_logs() as logs:
            worker.start()

        expected = engine.next_wakeup()
        assert expected is not None
        assert planned(worker) == expected
        assert events(logs, "wakeup_planned")[-1]["instant"] == expected.isoformat()
        assert [e["event"] for e in logs][-1] == "worker_started"

    def test_keeps_jobs_in_memory_under_rrm_ids(self, make_engine, clock, paused_host):
        """The jobs live in RRM's own in-memory store, ids prefixed ``rrm:``."""
        engine = make_engine(clock, Mailbox())
        open_case(engine)
        SchedulerWorker(engine, sweep_seconds=7, scheduler=paused_host).start()

        jobs = {job.id: job for job in paused_host.get_jobs(jobstore=JOBSTORE)}

        assert set(jobs) == {WAKEUP_JOB, SWEEP_JOB}
        assert jobs[SWEEP_JOB].trigger.interval == timedelta(seconds=7)
        assert all(j.coalesce and j.misfire_grace_time is None for j in jobs.values())
        assert type(paused_host._lookup_jobstore(JOBSTORE)).__name__ == "MemoryJobStore"

    def test_never_starts_a_host_scheduler(self, make_engine, clock):
        """A host's stopped scheduler only receives the jobs; it stays stopped."""
        host = BackgroundScheduler(timezone=UTC)
        worker = SchedulerWorker(make_engine(clock), sweep_seconds=LONG, scheduler=host)

        worker.start()

        assert not host.running
        assert {j.id for j in host.get_jobs()} == {SWEEP_JOB}
        worker.stop()
        assert host.get_jobs() == []

    def test_run_forever_refuses_a_host_scheduler(self, make_engine, clock):
        """Only the worker's own scheduler can be run in the foreground."""
        host = BackgroundScheduler(timezone=UTC)
        worker = SchedulerWorker(make_engine(clock), scheduler=host)

        with pytest.raises(RuntimeError, match="own scheduler"):
            worker.run_forever()

    @pytest.mark.parametrize("seconds", [0, -1, float("nan"), True])
    def test_refuses_a_sweep_that_is_not_a_positive_number(
        self, make_engine, clock, seconds
    ):
        """A sweep interval that is not a positive number is refused up front."""
        with pytest.raises(rrm.InvalidInput, match="sweep_seconds"):
            SchedulerWorker(make_engine(clock), sweep_seconds=seconds)


class TestReplanning:
    def test_replans_the_wakeup_after_a_tick(self, make_engine, wall_clock, workers):
        """Once a sweep's tick sends what was owed, the wake-up moves to the next step."""
        engine = make_engine(wall_clock, Mailbox())
        open_case(engine)
        worker = SchedulerWorker(engine, sweep_seconds=SHORT)
        workers.append(worker)
        worker.start()
        first = engine.next_wakeup()
        assert first is not None
        assert planned(worker) == first

        wall_clock.set(first + timedelta(hours=1))

        moved = eventually(
            lambda: (
                (p := planned(worker)) is not None
                and p > first
                and p == engine.next_wakeup()
            )
        )
        assert moved

    def test_no_wakeup_leaves_only_the_sweep(self, make_engine, clock, workers):
        """With nothing scheduled, only the periodic sweep remains."""
        worker = SchedulerWorker(make_engine(clock), sweep_seconds=SHORT)
        workers.append(worker)

        with capture_logs() as logs:
            worker.start()
            ticks = eventually(lambda: len(events(logs, "tick_completed")) >= 3)

        assert ticks
        assert worker.scheduler is not None
        assert [j.id for j in worker.scheduler.get_jobs()] == [SWEEP_JOB]
        assert events(logs, "wakeup_planned") == []

    def test_runs_a_past_wakeup_at_once(self, make_engine, clock, paused_host, workers):
        """A wake-up planned in the past fires as soon as the scheduler runs."""
        engine = make_engine(clock, Mailbox())
        case = open_case(engine)
        worker = SchedulerWorker(engine, sweep_seconds=LONG, scheduler=paused_host)
        workers.append(worker)
        worker.start()  # at the fake clock's 2025: the wake-up is long past
        clock.advance(timedelta(days=60))

        paused_host.resume()

        lapsed = eventually(
            lambda: "deadline_missed" in [e.event for e in engine.history(case.case_id)]
        )
        assert lapsed

    def test_unsendable_alerts_do_not_spin_the_worker(
        self, make_engine, clock, workers
    ):
        """Alerts owed but unsendable (no notifier) never make the worker tick in a loop."""
        engine = make_engine(clock)
        open_case(engine)
        clock.advance(timedelta(days=60))
        worker = SchedulerWorker(engine, sweep_seconds=LONG)
        workers.append(worker)

        with capture_logs() as logs:
            worker.start()
            time.sleep(0.3)  # long enough for a spinning worker to tick dozens of times

        assert len(events(logs, "tick_completed")) == 1  # the catch-up only
        assert engine.alerts(status=("pending",))
        assert planned(worker) is None or planned(worker) > clock.now()


class TestTickFailure:
    def test_logs_a_failed_tick_and_keeps_running(
        self, make_engine, wall_clock, db_url, sql_engine_for, workers
    ):
        """A tick that fails on the database is logged by type; later ticks still run."""
        engine = make_engine(wall_clock, Mailbox())
        open_case(engine)
        worker = SchedulerWorker(engine, sweep_seconds=SHORT)
        workers.append(worker)
        admin = sql_engine_for(db_url)
        worker.start()

        with capture_logs() as logs:
            with admin.begin() as conn:
                conn.execute(sa.text("ALTER TABLE rrm_deadline RENAME TO rrm_gone"))
            failed = eventually(lambda: events(logs, "tick_failed"))
            with admin.begin() as conn:
                conn.execute(sa.text("ALTER TABLE rrm_gone RENAME TO rrm_deadline"))
            count = len(logs)
            recovered = eventually(
                lambda: events(logs[count:], "tick_completed"), timeout=10
            )

        assert failed
        assert set(failed[0]) == {
            "event",
            "log_level",
            "trigger",
            "error",
            "retry_in_seconds",
        }
        assert failed[0]["error"] in {"StorageError", "OperationalError"}
        assert worker.running
        assert worker.scheduler is not None
        assert worker.scheduler.running
        assert recovered


class TestStop:
    def test_stop_returns_promptly_and_shuts_down(self, make_engine, clock):
        """Stopping shuts the worker's own scheduler down within a moment."""
        worker = SchedulerWorker(make_engine(clock), sweep_seconds=SHORT)
        worker.start()

        with capture_logs() as logs:
            began = time.monotonic()
            worker.stop()
            took = time.monotonic() - began
            worker.stop()  # a second stop is harmless

        assert took < 2
        assert worker.scheduler is not None
        assert not worker.scheduler.running
        assert not worker.running
        assert [e["event"] for e in logs] == ["worker_stopped"]

    def test_stop_waits_for_the_running_tick(self, make_engine, clock):
        """A stop during a tick returns only after that tick has recorded its sends."""
        release = threading.Event()
        mailbox = Mailbox(hold=release)
        engine = make_engine(clock, mailbox)
        case = open_case(engine)
        worker = SchedulerWorker(engine, sweep_seconds=SHORT)
        worker.start()
        clock.advance(timedelta(days=3))
        assert mailbox.entered.wait(5)  # a sweep's tick is now inside send()

        threading.Timer(0.2, release.set).start()
        worker.stop()

        assert engine.alerts(case_id=case.case_id, status=("sent",))
        assert not worker.scheduler.running

    def test_stop_removes_only_rrm_jobs_from_a_host(
        self, make_engine, clock, paused_host
    ):
        """On a host's scheduler, stopping removes RRM's jobs and leaves the host's."""
        paused_host.add_job(print, "interval", hours=1, id="host:report")
        worker = SchedulerWorker(
            make_engine(clock, Mailbox()), sweep_seconds=LONG, scheduler=paused_host
        )
        worker.start()

        worker.stop()

        assert [j.id for j in paused_host.get_jobs()] == ["host:report"]
        assert paused_host.running

    def test_run_forever_returns_once_stopped(self, make_engine, clock):
        """The blocking loop returns soon after stop() is called from another thread."""
        worker = SchedulerWorker(make_engine(clock), sweep_seconds=SHORT)
        loop = threading.Thread(target=worker.run_forever)

        with capture_logs() as logs:
            loop.start()
            assert eventually(
                lambda: worker.scheduler is not None and worker.scheduler.running
            )
            worker.stop()
            loop.join(5)

        assert not loop.is_alive()
        assert [e["event"] for e in logs][-1] == "worker_stopped"
        assert events(logs, "worker_started")


class TestPeriodicVerification:
    """The worker verifies every case with the worker and then periodically (#12)."""

    def test_a_damaged_case_is_registered_and_the_others_go_on(
        self, make_engine, clock, workers, db_url, sql_engine_for
    ):
        engine = make_engine(clock)
        case = open_case(engine)
        with sql_engine_for(db_url).begin() as conn:
            conn.execute(
                sa.text("UPDATE rrm_deadline SET status = 'met' WHERE case_id = :c"),
                {"c": case.case_id},
            )
        with capture_logs() as logs:
            worker = SchedulerWorker(engine, sweep_seconds=LONG, verify_seconds=LONG)
            workers.append(worker)
            worker.start()
            found = eventually(engine.damaged)
            eventually(lambda: events(logs, "verification_completed"))

        assert [d.case_id for d in found] == [case.case_id]
        assert found[0].field.startswith("rrm_deadline deadline respondent_")
        [done] = events(logs, "verification_completed")
        assert (done["cases"], done["damaged"]) == (1, 1)
        assert engine.next_wakeup() is None  # the sweep skips it, so no wake-up

    def test_refuses_a_verification_period_that_is_not_positive(
        self, make_engine, clock
    ):
        with pytest.raises(rrm.InvalidInput, match="verify_seconds"):
            SchedulerWorker(make_engine(clock), verify_seconds=0)
