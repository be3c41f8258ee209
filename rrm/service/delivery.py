"""Alert delivery: claim, render and send outbox alerts, and record each outcome.

Every alert is claimed under a lease, its claim renewed just before the send, and
its outcome recorded right after, conditional on the claim: a worker that lost its
claim (a slow batch) never overwrites another's result, a crash repeats at most the
one message in flight (with the same Message-ID), and an acknowledgement made
meanwhile stands. Nothing a notifier or renderer raises escapes ``tick()``.

While it holds claims, a worker renews a heartbeat row every few seconds from a
thread of its own. A worker whose heartbeat is older than the threshold is taken
to be dead: any worker's next claim (a worker that starts claims at once) takes
over its claims without waiting for their lease. Each claim taken over ends later
than the one it replaces, and that end is the claim's token, so the old worker,
should it wake up, can neither renew the claim (it skips the alert) nor record an
outcome with it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Self, final

import structlog

from rrm.domain.alerts import (
    TEMPORARY,
    Alert,
    AlertKind,
    AlertMessage,
    AlertStatus,
    AlertView,
    DamageView,
    DigestItem,
    DigestView,
    step_due_date,
)
from rrm.domain.case import Case, Deadline, DeadlineStatus
from rrm.domain.deadlines import local_date
from rrm.errors import NotificationError, StorageError
from rrm.service.alerting import (
    UNDELIVERABLE,
    AlertSettings,
    TickReport,
    dead_letter_notice,
)
from rrm.service.ports import CaseQuery, DeadlineQuery
from rrm.workflow.clocks import spec_key

if TYPE_CHECKING:
    from types import TracebackType

    from rrm.service.ports import (
        AlertRenderer,
        CaseRepository,
        Notifier,
        OutboxRepository,
        UnitOfWork,
        UnitOfWorkFactory,
        WebhookRepository,
    )
    from rrm.workflow.registry import Workflows
    from rrm.workflow.spec import DeadlineSpec, WorkflowSpec

__all__ = ["Delivery", "deliver"]

log = structlog.get_logger("rrm.alerts")

# After this many temporary failures in a row the server is taken to be down: the
# rest of the batch waits for the next attempt instead of timing out one by one.
_BREAKER = 3


def new_worker_id() -> str:
    """Return a worker id unique to this delivery: the process id and a random part.

    No host or user name: the id is stored in the database and may be shown.
    """
    return f"{os.getpid()}-{secrets.token_hex(6)}"


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    """What delivery needs: the renderer, the notifier and the settings.

    It also remembers, for this process, the outcomes of sends that the database
    could not record (busy, connection lost): they are recorded first thing at the
    next delivery, before any claim, so a message the mail server accepted is not
    sent again once its claim runs out. ``worker`` names the claims it takes and
    its heartbeat; each delivery (each engine) has its own.
    """

    renderer: AlertRenderer
    notifier: Notifier
    settings: AlertSettings
    worker: str = dataclasses.field(default_factory=new_worker_id)
    unrecorded: list[_Outcome] = dataclasses.field(
        default_factory=list, compare=False, repr=False
    )
    lock: threading.Lock = dataclasses.field(
        default_factory=threading.Lock, compare=False, repr=False
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class _Outcome:
    """A delivery result and the claim it was reached under."""

    alert: Alert
    token: datetime
    extra: Alert | None


@dataclass(frozen=True, slots=True, kw_only=True)
class _Claim:
    alert: Alert
    token: datetime
    case: Case | None
    digest: DigestView | None
    damage: DamageView | None = None


def deliver(
    uow_factory: UnitOfWorkFactory,
    workflows: Workflows,
    delivery: Delivery,
    *,
    now: datetime,
) -> TickReport:
    """Send every alert that is ready, oldest first; record each outcome."""
    started = time.monotonic()
    report = _record_unrecorded(uow_factory, delivery)
    # Alerts dead-lettered for temporary reasons (an outage) get another round
    # once their wait is over, whether or not anything else was sent meanwhile.
    with uow_factory() as uow:
        requeued = uow.outbox.requeue_unreachable(at=now)
        uow.commit()
    if requeued:
        log.warning("alerts_requeued_after_outage", alerts=requeued)
    with _Heartbeat(uow_factory, delivery, now=now, started=started) as heartbeat:
        units = heartbeat.units
        while True:
            claimed = _claim(units, delivery, now=now, started=started)
            if not claimed:
                break
            heartbeat.start()
            part, tripped = _batch(
                units, workflows, delivery, claimed, now=now, started=started
            )
            report = report + part
            if tripped:
                break
    return report


def _instant(now: datetime, started: float) -> datetime:
    """Return the tick's instant plus the time spent since.

    The engine's clock is read once per tick; a long batch still claims, renews
    and beats from the real moment.
    """
    return now + timedelta(seconds=time.monotonic() - started)


def _claim(
    uow_factory: UnitOfWorkFactory,
    delivery: Delivery,
    *,
    now: datetime,
    started: float,
) -> list[Alert]:
    """Claim a batch, with the heartbeat that says this worker holds it."""
    settings = delivery.settings
    at = _instant(now, started)
    alive_since = at - settings.heartbeat_timeout
    with uow_factory() as uow:
        claimed = uow.outbox.claim_alerts(
            now=at,
            limit=settings.batch,
            lease_until=at + settings.lease,
            worker=delivery.worker,
            alive_since=alive_since,
        )
        if claimed:
            uow.outbox.renew_heartbeat(delivery.worker, at=at, alive_since=alive_since)
        uow.commit()
    return claimed


@final
class _Heartbeat:
    """Renews a worker's heartbeat from a thread while its delivery holds claims.

    A thread of its own, so that one slow send does not make a live worker look
    dead. A failed renewal is logged and tried again at the next beat. The
    thread ends with the delivery; a killed process takes it along, which is
    what lets the others see the worker is gone. The delivery's units of work
    and the beats are open one at a time (:attr:`units`): an in-memory SQLite
    database has one connection for every thread.
    """

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        delivery: Delivery,
        *,
        now: datetime,
        started: float,
    ) -> None:
        self.units = _OneAtATime(uow_factory)
        self._delivery = delivery
        self._now = now
        self._started = started
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join()

    def start(self) -> None:
        """Start beating (once; the first beat came with the first claim)."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="rrm-alert-heartbeat", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        settings = self._delivery.settings
        while not self._stopped.wait(settings.heartbeat.total_seconds()):
            at = _instant(self._now, self._started)
            try:
                with self.units() as uow:
                    uow.outbox.renew_heartbeat(
                        self._delivery.worker,
                        at=at,
                        alive_since=at - settings.heartbeat_timeout,
                    )
                    uow.commit()
            except Exception as exc:  # noqa: BLE001 - the next beat tries again
                # The type only: a database message may quote connection details.
                log.warning("heartbeat_failed", error=type(exc).__name__)


@final
class _OneAtATime:
    """A unit-of-work factory whose units are open one at a time, across threads."""

    def __init__(self, uow_factory: UnitOfWorkFactory) -> None:
        self._factory = uow_factory
        self._lock = threading.Lock()

    def __call__(self, *, read_only: bool = False) -> UnitOfWork:
        """Return a new unit of work that holds the lock while it is open."""
        return _Held(self._factory(read_only=read_only), self._lock)


@final
class _Held:
    """A unit of work that holds *lock* from entering to leaving."""

    cases: CaseRepository
    outbox: OutboxRepository
    webhooks: WebhookRepository

    def __init__(self, inner: UnitOfWork, lock: threading.Lock) -> None:
        self._inner = inner
        self._lock = lock

    def __enter__(self) -> Self:
        with contextlib.ExitStack() as undo:
            self._lock.acquire()
            undo.callback(self._lock.release)
            entered = self._inner.__enter__()
            undo.pop_all()
        self.cases, self.outbox = entered.cases, entered.outbox
        self.webhooks = entered.webhooks
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self._inner.__exit__(exc_type, exc, tb)
        finally:
            self._lock.release()

    def commit(self) -> None:
        """Make the transaction's writes durable."""
        self._inner.commit()

    def savepoint(self) -> contextlib.AbstractContextManager[None]:
        """Return a nested transaction (the inner unit's)."""
        return self._inner.savepoint()

    def rollback(self) -> None:
        """Discard the transaction's writes."""
        self._inner.rollback()


def _batch(
    uow_factory: UnitOfWorkFactory,
    workflows: Workflows,
    delivery: Delivery,
    claimed: list[Alert],
    *,
    now: datetime,
    started: float,
) -> tuple[TickReport, bool]:
    outcomes: list[Alert] = []
    failures = 0
    session = getattr(delivery.notifier, "session", None)
    with session() if callable(session) else contextlib.nullcontext():
        for i, alert in enumerate(claimed):
            if failures >= _BREAKER:
                _postpone(uow_factory, claimed[i:], now=now, settings=delivery.settings)
                log.warning("mail_server_unreachable", postponed=len(claimed) - i)
                return _count(outcomes), True
            claim = _renew(
                uow_factory,
                workflows,
                alert,
                now=now,
                started=started,
                settings=delivery.settings,
            )
            if claim is None:
                continue  # another worker holds it now
            outcome, extra = _attempt(claim, workflows, delivery, now=now)
            result = _Outcome(alert=outcome, token=claim.token, extra=extra)
            try:
                if _record(uow_factory, result):
                    outcomes.append(outcome)
            except StorageError:
                # Sent (or failed) but not recorded: keep the outcome for the next
                # delivery rather than send the message again when the claim ends.
                with delivery.lock:
                    delivery.unrecorded.append(result)
                log.warning(
                    "alert_outcome_unrecorded",
                    alert_id=outcome.alert_id,
                    status=outcome.status.value,
                )
                raise
            temporary = outcome.status is AlertStatus.FAILED
            failures = failures + 1 if temporary else 0
    return _count(outcomes), False


def _record(uow_factory: UnitOfWorkFactory, result: _Outcome) -> bool:
    """Store one outcome if its claim still holds; True when it did."""
    with uow_factory() as uow:
        recorded = uow.outbox.record_delivery(result.alert, token=result.token)
        if result.extra is not None:
            uow.outbox.add_alerts([result.extra])
        uow.commit()
    return recorded


def _record_unrecorded(
    uow_factory: UnitOfWorkFactory, delivery: Delivery
) -> TickReport:
    """Record the outcomes an earlier delivery could not; raise if still unable."""
    with delivery.lock:
        pending, delivery.unrecorded[:] = list(delivery.unrecorded), []
    recorded: list[Alert] = []
    for i, result in enumerate(pending):
        try:
            if _record(uow_factory, result):
                recorded.append(result.alert)
        except StorageError:
            with delivery.lock:
                delivery.unrecorded[:0] = pending[i:]
            raise
    if recorded:
        log.info("alert_outcomes_recorded_late", alerts=len(recorded))
    return _count(recorded)


def _renew(
    uow_factory: UnitOfWorkFactory,
    workflows: Workflows,
    alert: Alert,
    *,
    now: datetime,
    started: float,
    settings: AlertSettings,
) -> _Claim | None:
    """Renew the claim just before sending and load what the message needs."""
    assert alert.claimed_until is not None  # noqa: S101 - claimed alerts carry it
    with uow_factory() as uow:
        token = uow.outbox.renew_claim(
            alert.alert_id,
            token=alert.claimed_until,
            until=_instant(now, started) + settings.lease,
        )
        if token is None:
            return None
        case = digest = damage = None
        if alert.kind is AlertKind.DIGEST:
            digest = _digest_view(uow, workflows, alert, now=now, settings=settings)
        elif alert.kind is AlertKind.CASE_DAMAGED:
            damage = _damage_view(uow, alert)
        else:
            case = uow.cases.get(alert.case_id)
        uow.commit()
    return _Claim(
        alert=dataclasses.replace(alert, claimed_until=token),
        token=token,
        case=case,
        digest=digest,
        damage=damage,
    )


def _damage_view(uow: UnitOfWork, alert: Alert) -> DamageView | None:
    """The damage as registered now; None once a verification cleared it."""
    known = uow.cases.damage([alert.case_id]).get(alert.case_id)
    if known is None:
        return None
    stored = uow.cases.get(alert.case_id)  # as stored: its reference only
    ref = stored.external_ref if stored is not None else alert.case_id
    return DamageView(
        alert_id=alert.alert_id,
        message_id=alert.message_id,
        recipient_email=alert.recipient_email,
        case_id=alert.case_id,
        case_ref=ref,
        found_at=known.found_at,
        problems=known.problems,
    )


def _postpone(
    uow_factory: UnitOfWorkFactory,
    rest: list[Alert],
    *,
    now: datetime,
    settings: AlertSettings,
) -> None:
    """Give the rest of a batch back for a later attempt, without using one up."""
    with uow_factory() as uow:
        for alert in rest:
            assert alert.claimed_until is not None  # noqa: S101
            later = dataclasses.replace(
                alert,
                status=AlertStatus.FAILED,
                claimed_until=None,
                next_attempt_at=now + settings.backoff_base,
                last_error=alert.last_error or f"{TEMPORARY}mail server unreachable",
            )
            uow.outbox.record_delivery(later, token=alert.claimed_until)
        uow.commit()


def _count(outcomes: list[Alert]) -> TickReport:
    by = {s: sum(o.status is s for o in outcomes) for s in AlertStatus}
    late = sum(o.status is AlertStatus.SENT and o.late for o in outcomes)
    return TickReport(
        sent=by[AlertStatus.SENT],
        failed=by[AlertStatus.FAILED],
        dead=by[AlertStatus.DEAD],
        superseded=by[AlertStatus.SUPERSEDED],
        late=late,
    )


def _attempt(
    claim: _Claim, workflows: Workflows, delivery: Delivery, *, now: datetime
) -> tuple[Alert, Alert | None]:
    """Render and send one claimed alert; return its outcome (never raises)."""
    alert = claim.alert
    try:
        message = _message(claim, workflows, delivery)
        if isinstance(message, AlertStatus):
            event = (
                "alert_deferred"
                if message is AlertStatus.DEFERRED
                else "alert_superseded"
            )
            log.info(event, alert_id=alert.alert_id, case_id=alert.case_id)
            return _settled(alert, message), None
        delivery.notifier.send(message)
    except NotificationError as exc:
        return _failed(alert, exc, now=now, settings=delivery.settings)
    except Exception as exc:  # noqa: BLE001 - a host's notifier or a template bug
        # The type only: a message may quote case data or an address.
        failure = NotificationError(f"{type(exc).__name__} while sending")
        return _failed(alert, failure, now=now, settings=delivery.settings)
    log.info(
        "alert_sent",
        alert_id=alert.alert_id,
        case_id=alert.case_id,
        kind=alert.kind.value,
        late=alert.late,
    )
    sent = dataclasses.replace(
        alert, sent_at=now, attempts=alert.attempts + 1, last_error=""
    )
    return _settled(sent, AlertStatus.SENT), None


def _message(
    claim: _Claim, workflows: Workflows, delivery: Delivery
) -> AlertMessage | AlertStatus:
    """The message to send, or the status of an alert that must not be sent."""
    alert = claim.alert
    if alert.kind is AlertKind.CASE_DAMAGED or claim.digest is not None:
        return _notice(claim, delivery)
    deadline = _deadline_of(claim.case, alert)
    if claim.case is None or deadline is None:
        return AlertStatus.SUPERSEDED
    if deadline.status is DeadlineStatus.PAUSED:
        return AlertStatus.DEFERRED  # sent on resume if its date still stands
    if _superseded(alert, deadline):
        return AlertStatus.SUPERSEDED
    spec = workflows.get(claim.case.workflow_id, claim.case.workflow_version)
    return delivery.renderer.render(_view(alert, claim.case, deadline, spec))


def _notice(claim: _Claim, delivery: Delivery) -> AlertMessage | AlertStatus:
    """A digest, or a notice of damage: about no one deadline."""
    if claim.alert.kind is AlertKind.CASE_DAMAGED:
        if claim.damage is None:
            return AlertStatus.SUPERSEDED  # whole again: nothing to tell
        return delivery.renderer.render_damage(claim.damage)
    assert claim.digest is not None  # noqa: S101 - the caller checked
    if not claim.digest.items:
        return AlertStatus.SUPERSEDED  # nothing to report today
    return delivery.renderer.render_digest(claim.digest)


def _settled(alert: Alert, status: AlertStatus) -> Alert:
    return dataclasses.replace(alert, status=status, claimed_until=None)


def _deadline_of(case: Case | None, alert: Alert) -> Deadline | None:
    if case is None:
        return None
    return next((d for d in case.deadlines if d.deadline_id == alert.deadline_id), None)


def _superseded(alert: Alert, deadline: Deadline) -> bool:
    """True when the alert no longer describes the deadline as it stands."""
    if alert.kind is AlertKind.DEAD_LETTER:
        return False
    if deadline.status is DeadlineStatus.MET:
        return True
    if deadline.due_date != step_due_date(alert.step):
        return True  # extended or tolled: the reminders for the new date follow
    if deadline.status is DeadlineStatus.CANCELLED:
        # Cancelled at or after its lapse (its own lapse action moved the case):
        # the alert saying it was missed still goes out; anything else is moot.
        lapsed = (
            deadline.closed_at is not None and deadline.closed_at >= deadline.due_at
        )
        return not (lapsed and alert.kind is AlertKind.OVERDUE)
    return False


def _failed(
    alert: Alert,
    exc: NotificationError,
    *,
    now: datetime,
    settings: AlertSettings,
) -> tuple[Alert, Alert | None]:
    attempts = alert.attempts + 1
    prefix = "permanent: " if exc.permanent else TEMPORARY
    error = prefix + str(exc)[:400]
    if exc.permanent or attempts >= settings.max_attempts:
        log.error(
            "alert_dead_lettered",
            alert_id=alert.alert_id,
            case_id=alert.case_id,
            attempts=attempts,
            permanent=exc.permanent,
        )
        # A temporary failure keeps a time for another round of attempts: an
        # outage longer than all retries delays the alert but never loses it.
        dead = dataclasses.replace(
            alert,
            status=AlertStatus.DEAD,
            attempts=attempts,
            last_error=error,
            claimed_until=None,
            next_attempt_at=None if exc.permanent else now + settings.backoff_max,
        )
        return dead, dead_letter_notice(alert, now=now, settings=settings)
    wait = min(settings.backoff_base * 2 ** (attempts - 1), settings.backoff_max)
    log.warning(
        "alert_failed",
        alert_id=alert.alert_id,
        case_id=alert.case_id,
        attempts=attempts,
        retry_in_seconds=int(wait.total_seconds()),
    )
    return dataclasses.replace(
        alert,
        status=AlertStatus.FAILED,
        attempts=attempts,
        last_error=error,
        next_attempt_at=now + wait,
        claimed_until=None,
    ), None


def _expected_action(alert: Alert, deadline: Deadline, spec: WorkflowSpec) -> str:
    actor = spec.roles.get(deadline.actor, deadline.actor)
    if alert.kind is AlertKind.DEAD_LETTER and alert.step.endswith(UNDELIVERABLE):
        return (
            "An alert about this deadline was owed to nobody who can receive it: "
            "no officer of the case to alert has an e-mail address, and no "
            "fallback address is set. Assign an officer with an address (or set "
            "the worker's fallback address) so that the next alerts reach them, "
            "and see the undelivered one in the dead letters."
        )
    if alert.kind is AlertKind.DEAD_LETTER:
        return (
            "An alert about this deadline could not be delivered to its "
            f"recipient ({alert.step.split(':')[-1]}). Check the address and the "
            "mail server, then retry it."
        )
    if alert.kind is AlertKind.UNKNOWN_STEP:
        return (
            f"{deadline.label} ({actor}) was due on {deadline.due_date.isoformat()}. "
            "The case was imported, and its record shows neither this step nor "
            "the lapse of its deadline, so RRM has not treated it as missed and "
            "will take no action on it. If the step was taken, record it with "
            "its real date; if it was not, record the lapse action the procedure "
            "allows (or extend the deadline, if the Parties agreed more time)."
        )
    if alert.kind is AlertKind.OVERDUE:
        return (
            f"{deadline.label} ({actor}) was due on {deadline.due_date.isoformat()} "
            "and has lapsed. Record what happened, or the next step the "
            "procedure allows."
        )
    return (
        f"{deadline.label}: owed by {actor}. Check that it is on track; if the "
        "Parties agree more time, record the extension with its reason."
    )


def _view(
    alert: Alert, case: Case, deadline: Deadline, spec: WorkflowSpec
) -> AlertView:
    dspec: DeadlineSpec = spec.deadlines[spec_key(deadline.key)]
    step = alert.step.split("@", 1)[0]
    before = int(step.split("-")[1]) if step.startswith("before-") else None
    repeat = int(step.split("-")[1]) if step.startswith("overdue-") else 0
    return AlertView(
        alert_id=alert.alert_id,
        message_id=alert.message_id,
        kind=alert.kind,
        step=alert.step,
        days_before=before if before is not None else (0 if step == "due" else None),
        repeat=repeat,
        late=alert.late,
        recipient_name="",
        recipient_email=alert.recipient_email,
        recipient_role=alert.recipient_role,
        language=alert.language,
        timezone=alert.timezone,
        case_id=case.case_id,
        case_ref=case.external_ref,
        workflow_title=spec.title,
        annex=spec.annex,
        state_label=spec.states[case.state].label,
        complainant=case.complainant.value,
        respondent=case.respondent.value,
        facility_name=case.facility.name,
        facility_city=case.facility.city,
        facility_region=case.facility.region,
        facility_country=case.facility.country.value,
        deadline_id=deadline.deadline_id,
        deadline_key=deadline.key,
        deadline_label=deadline.label,
        deadline_actor=deadline.actor,
        due_date=deadline.due_date,
        due_at=deadline.due_at,
        deadline_timezone=deadline.timezone,
        explanation=deadline.explanation,
        citation=dspec.citation,
        evidence=deadline.evidence,
        nominal=deadline.nominal,
        expected_action=_expected_action(alert, deadline, spec),
        link="",
        calendar_sequence=deadline.extensions,
    )


def _digest_view(
    uow: UnitOfWork,
    workflows: Workflows,
    alert: Alert,
    *,
    now: datetime,
    settings: AlertSettings,
) -> DigestView:
    officer = alert.recipient_id
    horizon = settings.digest_horizon_days
    cases = {c.case_id: c for c in uow.cases.find(CaseQuery(officer_id=officer))}
    query = DeadlineQuery(officer_id=officer, due_before=now + timedelta(days=horizon))
    items = []
    for d in uow.cases.open_deadlines(query):
        case = cases.get(d.case_id)
        if case is None:  # pragma: no cover - the query joins on the same officer
            continue
        spec = workflows.get(case.workflow_id, case.workflow_version)
        status = (
            "overdue"
            if now >= d.due_at
            else "due_today"
            if local_date(now, d.timezone) == d.due_date
            else "upcoming"
        )
        items.append(
            DigestItem(
                case_id=case.case_id,
                case_ref=case.external_ref,
                facility_name=case.facility.name,
                state_label=spec.states[case.state].label,
                deadline_key=d.key,
                deadline_label=d.label,
                due_date=d.due_date,
                due_at=d.due_at,
                deadline_timezone=d.timezone,
                status=status,
                nominal=d.nominal,
                explanation=d.explanation,
            )
        )
    return DigestView(
        alert_id=alert.alert_id,
        message_id=alert.message_id,
        recipient_email=alert.recipient_email,
        recipient_id=officer,
        language=alert.language,
        timezone=alert.timezone,
        day=step_due_date(alert.step),
        horizon_days=horizon,
        items=tuple(items),
    )
