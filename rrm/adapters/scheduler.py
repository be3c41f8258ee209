"""Wake the case engine with APScheduler; the only module that imports ``apscheduler``.

APScheduler is a wake-up service, not a store: the database knows every deadline,
so the jobs live in an in-memory job store and are rebuilt from the engine at every
start. One date job (``rrm:wakeup``) fires at ``engine.next_wakeup()``; a periodic
sweep (``rrm:sweep``) ticks anyway, in case a wake-up was lost or another process
changed the database. Every job calls ``engine.tick()`` (idempotent) and then plans
the wake-up again. APScheduler reads the wall clock itself; the engine keeps its own
clock.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from contextlib import suppress
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Protocol, final

import structlog
from apscheduler.events import EVENT_SCHEDULER_STARTED
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from rrm.clock import SystemClock
from rrm.errors import InvalidInput

if TYPE_CHECKING:
    from collections.abc import Iterator

    from apscheduler.schedulers.base import BaseScheduler

    from rrm.service.alerting import TickReport
    from rrm.service.engine import ChainReport

__all__ = [
    "JOBSTORE",
    "SWEEP_JOB",
    "VERIFY_JOB",
    "WAKEUP_JOB",
    "SchedulerWorker",
    "Tickable",
    "Verifiable",
]

log = structlog.get_logger(__name__)

WAKEUP_JOB: Final = "rrm:wakeup"
SWEEP_JOB: Final = "rrm:sweep"
#: The periodic verification of every case (``verify_all(record=True)``).
VERIFY_JOB: Final = "rrm:verify"
# Its own executor: a long verification never holds a tick back.
_VERIFY_EXECUTOR: Final = "rrm-verify"
#: The alias of the in-memory job store RRM adds to the scheduler (its own or a host's).
JOBSTORE: Final = "rrm"
# Counts of work left undone; a tick reporting only these changed nothing.
_NOT_WORK: Final = frozenset({"unsent"})


class Tickable(Protocol):
    """What the worker needs from the engine (``CaseEngine`` has both)."""

    def tick(self) -> TickReport:
        """Do everything owed now; idempotent, never raises for failed deliveries."""
        ...

    def next_wakeup(self) -> datetime | None:
        """Return the earliest instant something is owed (aware UTC), or ``None``."""
        ...


class Verifiable(Protocol):
    """What the periodic verification needs (``CaseEngine`` has it)."""

    def verify_all(self, *, record: bool = False) -> Iterator[ChainReport]:
        """Verify every case; with *record*, keep the damage register."""
        ...


@final
class SchedulerWorker:
    """Call ``engine.tick()`` whenever a deadline needs attention, and periodically.

    Without *scheduler*, the worker makes its own: a background one for
    :meth:`start`, a blocking one for :meth:`run_forever`. A host that passes its
    own scheduler keeps it: the worker only adds its jobs (to an in-memory job store
    of its own, alias ``"rrm"``) and removes them on :meth:`stop`; it never starts or
    shuts down a scheduler it did not create.

    Args:
        engine: The case engine (anything with ``tick()`` and ``next_wakeup()``).
        sweep_seconds: How often the safety sweep ticks regardless of the plan.
        scheduler: A host's APScheduler 3 scheduler, or ``None``.
        verify_seconds: How often every case is verified against its history
            and the damage register kept (``engine.verify_all(record=True)``):
            the first run starts with the worker, in an executor of its own so
            ticks never wait for it. ``None`` (the default) never verifies.

    Raises:
        InvalidInput: If *sweep_seconds* or *verify_seconds* is not a positive
            number.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.6.0 *verify_seconds*.
    """

    def __init__(
        self,
        engine: Tickable,
        *,
        sweep_seconds: float = 60.0,
        scheduler: BaseScheduler | None = None,
        verify_seconds: float | None = None,
    ) -> None:
        for name, value in (
            ("sweep_seconds", sweep_seconds),
            ("verify_seconds", 1.0 if verify_seconds is None else verify_seconds),
        ):
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value <= 0
            ):
                raise InvalidInput(name, "must be a positive number of seconds")
        if verify_seconds is not None and not hasattr(engine, "verify_all"):
            raise InvalidInput("verify_seconds", "the engine cannot verify cases")
        self._verify_seconds = verify_seconds
        self._engine = engine
        self._sweep_seconds = float(sweep_seconds)
        self._scheduler: Any = scheduler
        self._owned = scheduler is None
        # One tick at a time in this process, and no job planned after stop().
        self._tick_lock = threading.Lock()
        self._plan_lock = threading.Lock()
        self._running = False
        self._planned: datetime | None = None
        self._stuck: datetime | None = None
        self._blocking = False
        self._loop_thread: int | None = None
        self._stopper: threading.Thread | None = None

    @property
    def scheduler(self) -> BaseScheduler | None:
        """The scheduler the jobs live in (``None`` before the first start)."""
        return self._scheduler

    @property
    def running(self) -> bool:
        """True between a start and :meth:`stop`."""
        return self._running

    def start(self) -> None:
        """Tick once (catching up after downtime), then plan the jobs.

        The worker's own scheduler runs in a background thread; a host's scheduler
        only receives the jobs.

        Raises:
            RuntimeError: If the worker is already running.
        """
        self._begin(BackgroundScheduler)
        if not self._running:  # stopped during the catch-up
            return
        if self._owned:
            self._scheduler.start()
        log.info("worker_started", sweep_seconds=self._sweep_seconds)

    def run_forever(self) -> None:
        """Start on a blocking scheduler in this thread; return once stopped.

        Raises:
            RuntimeError: If a host's scheduler was given (the host runs it) or the
                worker is already running.
        """
        if not self._owned:
            raise RuntimeError("run_forever() needs the worker's own scheduler")
        self._loop_thread = threading.get_ident()
        try:
            self._begin(BlockingScheduler)
            # A stop() that lands between the check below and the scheduler's
            # start would otherwise be lost; the listener sees it once running.
            self._scheduler.add_listener(self._on_started, EVENT_SCHEDULER_STARTED)
            if self._running:
                log.info("worker_started", sweep_seconds=self._sweep_seconds)
                self._scheduler.start()  # returns when stop() shuts it down
        finally:
            self._loop_thread = None
        if self._stopper is not None:
            self._stopper.join()
        with self._tick_lock:  # a tick that was running has finished
            pass
        log.info("worker_stopped")

    def stop(self) -> None:
        """Stop waking the engine and wait for a running tick to finish.

        Safe to call more than once and from a signal handler. Called in the
        thread running :meth:`run_forever` (a signal handler), it returns at once
        and :meth:`run_forever` waits for the tick before returning.
        """
        if not self._running:
            return
        if threading.get_ident() == self._loop_thread:
            # A signal handler interrupted the scheduler's own loop, which may hold
            # the scheduler's (or the executor's) locks: shut down from a thread.
            self._running = False
            self._stopper = threading.Thread(
                target=self._shutdown, name="rrm-worker-stop", daemon=True
            )
            self._stopper.start()
            return
        self._shutdown()
        if not self._blocking:
            log.info("worker_stopped")

    def replan(self) -> datetime | None:
        """Plan the wake-up at ``engine.next_wakeup()`` now; return the instant.

        Hosts may call it after a commit that could bring a deadline forward; the
        sweep picks such changes up anyway. Errors are logged, never raised.
        """
        return self._plan(after=None, worked=False)

    # -- internals ----------------------------------------------------------------

    def _begin(self, factory: Any) -> None:
        if self._running:
            raise RuntimeError("the worker is already running")
        if self._owned:
            self._scheduler = factory(
                jobstores={JOBSTORE: MemoryJobStore()},
                executors={
                    "default": ThreadPoolExecutor(1),
                    _VERIFY_EXECUTOR: ThreadPoolExecutor(1),
                },
                timezone=UTC,
            )
        else:
            with suppress(ValueError):  # the host's scheduler already has our store
                self._scheduler.add_jobstore(MemoryJobStore(), alias=JOBSTORE)
            if self._verify_seconds is not None:
                with suppress(ValueError):  # ... and our executor
                    self._scheduler.add_executor(
                        ThreadPoolExecutor(1), alias=_VERIFY_EXECUTOR
                    )
        self._blocking = factory is BlockingScheduler
        self._planned = self._stuck = None
        self._stopper = None
        self._running = True
        with self._tick_lock:
            report = self._tick("startup")
            if report is not None:
                log.info("worker_catch_up", **_counts(report))
            if not self._running:  # stopped during the catch-up
                return
            self._scheduler.add_job(
                self._wake,
                IntervalTrigger(seconds=self._sweep_seconds),
                args=("sweep", None),
                **_job_options(SWEEP_JOB),
            )
            if self._verify_seconds is not None:
                self._scheduler.add_job(
                    self._verify,
                    IntervalTrigger(seconds=self._verify_seconds),
                    # The first run with the worker: a worker restarted daily
                    # still verifies.
                    next_run_time=SystemClock().now(),
                    executor=_VERIFY_EXECUTOR,
                    **_job_options(VERIFY_JOB),
                )
            self._plan(after=None, worked=False)

    def _wake(self, trigger: str, planned: datetime | None) -> None:
        """Run by every job: tick, then plan the next wake-up; never raises."""
        with self._tick_lock:
            if not self._running:
                return
            report = self._tick(trigger)
        worked = report is not None and _did_work(report)
        # Re-plan from a thread of RRM's own, never the executor's: APScheduler 3's
        # shutdown(wait=True) holds the job-store lock while it waits for running
        # jobs, so a job that adds a job can deadlock the shutdown (a host's too).
        threading.Thread(
            target=self._plan,
            kwargs={"after": planned, "worked": worked},
            name="rrm-replan",
            daemon=True,
        ).start()

    def _verify(self) -> None:
        """Verify every case and keep the damage register; never raises."""
        engine = self._engine
        assert hasattr(engine, "verify_all")  # noqa: S101 - checked in __init__
        started = time.monotonic()
        cases = damaged = 0
        try:
            for report in engine.verify_all(record=True):
                if not self._running:
                    log.info("verification_stopped", cases=cases, damaged=damaged)
                    return
                cases += 1
                damaged += not report.ok
        except Exception as exc:  # noqa: BLE001 - a job must never kill the scheduler
            log.error(  # noqa: TRY400 - the traceback may quote case data
                "verification_failed", error=type(exc).__name__, cases=cases
            )
            return
        log.info(
            "verification_completed",
            cases=cases,
            damaged=damaged,
            seconds=round(time.monotonic() - started, 3),
        )

    def _tick(self, trigger: str) -> TickReport | None:
        """Tick; the engine logs ``tick_completed``, tagged with *trigger* here."""
        try:
            # Hosts whose structlog merges context variables (the default) see
            # which job woke the engine on every event of the tick.
            with structlog.contextvars.bound_contextvars(trigger=trigger):
                return self._engine.tick()
        except Exception as exc:  # noqa: BLE001 - a job must never kill the scheduler
            # The type only: a driver's message may quote case data.
            log.error(  # noqa: TRY400 - the traceback may quote case data too
                "tick_failed",
                trigger=trigger,
                error=type(exc).__name__,
                retry_in_seconds=self._sweep_seconds,
            )
            return None

    def _plan(self, *, after: datetime | None, worked: bool) -> datetime | None:
        """Point ``rrm:wakeup`` at the engine's next wake-up, or remove it."""
        with self._plan_lock:
            if not self._running:
                return None
            try:
                when = self._next_wakeup(after=after, worked=worked)
                if when is None:
                    with suppress(JobLookupError):
                        self._scheduler.remove_job(WAKEUP_JOB, jobstore=JOBSTORE)
                    if self._planned is not None:
                        log.info("wakeup_cleared")
                    self._planned = None
                    return None
                self._scheduler.add_job(
                    self._wake,
                    DateTrigger(run_date=when),
                    args=("wakeup", when),
                    **_job_options(WAKEUP_JOB),
                )
            except Exception as exc:  # noqa: BLE001 - the sweep is the fallback
                log.error(  # noqa: TRY400 - no traceback: it may quote case data
                    "wakeup_planning_failed",
                    error=type(exc).__name__,
                    retry_in_seconds=self._sweep_seconds,
                )
                return None
            # Logged when the plan changes, not on every sweep.
            if when != self._planned:
                log.info("wakeup_planned", instant=when.isoformat())
            self._planned = when
            return when

    def _next_wakeup(self, *, after: datetime | None, worked: bool) -> datetime | None:
        when = self._engine.next_wakeup()
        if worked:
            self._stuck = None
        floor = max((t for t in (after, self._stuck) if t is not None), default=None)
        if when is None or floor is None or when > floor or worked:
            return when
        # A tick that ran at or after *when* did nothing, yet that work is still
        # owed (an alert without a notifier, say): waking again at once could not
        # help and would spin, so the sweep retries it.
        if floor != self._stuck:  # once per stuck instant, not on every sweep
            log.warning(
                "wakeup_deferred",
                instant=when.isoformat(),
                retry_in_seconds=self._sweep_seconds,
            )
        self._stuck = floor
        return None

    def _on_started(self, _event: object) -> None:
        if not self._running:
            with suppress(SchedulerNotRunningError):
                self._scheduler.shutdown(wait=False)

    def _shutdown(self) -> None:
        # Under the plan lock: a re-plan in flight finishes, none starts after.
        with self._plan_lock:
            self._running = False
        if self._owned:
            with suppress(SchedulerNotRunningError):
                self._scheduler.shutdown(wait=True)
        else:
            for job_id in (WAKEUP_JOB, SWEEP_JOB, VERIFY_JOB):
                with suppress(JobLookupError):
                    self._scheduler.remove_job(job_id, jobstore=JOBSTORE)
        with self._tick_lock:  # a tick in progress finishes first
            pass


def _job_options(job_id: str) -> dict[str, Any]:
    return {
        "id": job_id,
        "name": job_id,
        "jobstore": JOBSTORE,
        "replace_existing": True,
        # One run for any number of missed ones, however late: tick() catches up.
        "coalesce": True,
        "misfire_grace_time": None,
        # A wake-up may be re-planned, already due, while its last run is still
        # finishing; with one instance APScheduler would skip (and drop) it. The
        # tick lock keeps the ticks themselves one at a time.
        "max_instances": 2 if job_id == WAKEUP_JOB else 1,
    }


def _did_work(report: TickReport) -> bool:
    """True when the tick changed something (alerts left unsent are not work)."""
    counts = _counts(report)
    return any(v for k, v in counts.items() if k not in _NOT_WORK)


def _counts(report: TickReport) -> dict[str, int]:
    """Return the counts of a tick report (numbers only, no case data)."""
    return {
        field.name: value
        for field in dataclasses.fields(report)
        if isinstance(value := getattr(report, field.name), int)
    }
