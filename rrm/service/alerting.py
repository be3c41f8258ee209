"""The deadline sweep and alert delivery behind ``CaseEngine.tick()``.

A tick has two halves. The sweep takes cases whose deadlines need attention, puts
every owed alert in the outbox, records lapses as audited history entries and takes
the lapse action the workflow declares, all in the case's transaction. A deadline
whose step an imported record lacks (:mod:`rrm.domain.unknown`) never lapses here:
its officers get one alert saying so instead. Delivery then
claims outbox rows, renders and sends them after that commit, and records success,
a retry with backoff, or a dead letter. Running either half twice, late, or in
several processes at once is safe: outbox rows are unique per deadline, step and
recipient, and claims are exclusive.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, final
from zoneinfo import ZoneInfo

import structlog

from rrm.domain.alerts import (
    Alert,
    AlertKind,
    AlertLadder,
    AlertStatus,
    AlertStep,
    owed_steps,
)
from rrm.domain.case import Case, Deadline, DeadlineStatus, Officer
from rrm.domain.commands import FireEvent
from rrm.domain.unknown import unknown_steps
from rrm.errors import CaseDamaged, RRMError
from rrm.service import handlers, integrity
from rrm.service.addresses import check_address
from rrm.service.webhooks import record_change
from rrm.workflow.clocks import scheduled, spec_key

if TYPE_CHECKING:
    from rrm.service.ports import (
        CaseChange,
        UnitOfWork,
        UnitOfWorkFactory,
    )
    from rrm.workflow.registry import Workflows
    from rrm.workflow.spec import WorkflowSpec

__all__ = [
    "AlertSettings",
    "TickReport",
    "next_digest",
    "queue_digests",
    "sweep",
]

log = structlog.get_logger("rrm.alerts")


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class AlertSettings:
    """How alerts are addressed, retried and reported.

    Attributes:
        late_after: An alert sent this long after it was owed is marked late (it
            was missed while the worker was down, for example).
        max_attempts: Delivery attempts before an alert is dead-lettered.
        backoff_base: Wait before the first retry; it doubles with each attempt.
        backoff_max: The longest wait between retries.
        lease: How long a claimed alert stays reserved for the worker sending
            it; renewed just before each send, so it needs to cover one send.
        heartbeat: How often a worker holding claims says it is alive.
        heartbeat_timeout: A worker not heard from for this long is taken to be
            dead, and its claims are free at once, lease or not. Keep it a few
            heartbeats long, so a busy database does not make a worker look dead.
        batch: Cases or alerts handled per transaction.
        fallback_address: Receives alerts for cases with no officer to alert.
        supervisor_address: Receives overdue alerts of cases with no supervisor.
        admin_address: Receives one e-mail per dead-lettered alert.
        digest_hour: When set, every officer with open deadlines gets a daily
            digest at this local hour (their time zone, else ``digest_timezone``).
        digest_timezone: Time zone for digests of officers who have none.
        digest_horizon_days: How far ahead a digest looks.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.5.0 ``heartbeat`` and ``heartbeat_timeout``; the lease
       is 60 seconds (was 5 minutes).
    """

    late_after: timedelta = timedelta(minutes=15)
    # 1, 2, 4, ... minutes, then hourly: twelve attempts span about 7.5 hours, so a
    # mail server down for an afternoon delays alerts but loses none.
    max_attempts: int = 12
    backoff_base: timedelta = timedelta(minutes=1)
    backoff_max: timedelta = timedelta(hours=1)
    # One send takes well under a second (98 a second measured); the SMTP
    # adapter gives up on a silent server after 30 s. A lease of 60 s covers a
    # send with margin, and frees a killed worker's batch within a minute even
    # where no heartbeat is checked.
    lease: timedelta = timedelta(seconds=60)
    # Three missed heartbeats before a worker counts as dead: a database busy
    # for a few seconds (its lock wait is 5 s) does not make a live worker look
    # dead, and a killed one's claims are free after 30 s, half the lease.
    heartbeat: timedelta = timedelta(seconds=10)
    heartbeat_timeout: timedelta = timedelta(seconds=30)
    batch: int = 100
    fallback_address: str = ""
    supervisor_address: str = ""
    admin_address: str = ""
    digest_hour: int | None = None
    digest_timezone: str = "UTC"
    digest_horizon_days: int = 14

    def __post_init__(self) -> None:
        # An address mistyped in the worker's settings would dead-letter every
        # alert sent to it: refused where it enters (issue #13).
        for name in ("fallback_address", "supervisor_address", "admin_address"):
            checked = check_address(name, getattr(self, name))
            object.__setattr__(self, name, checked)


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class TickReport:
    """What one tick did.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.3.0 ``webhooks_sent``, ``webhooks_failed`` and
       ``webhooks_dead`` count webhook messages (when a sender is configured).
    """

    cases: int = 0
    lapsed: int = 0
    advanced: int = 0
    queued: int = 0
    sent: int = 0
    late: int = 0
    failed: int = 0
    dead: int = 0
    superseded: int = 0
    unsent: int = 0
    webhooks_sent: int = 0
    webhooks_failed: int = 0
    webhooks_dead: int = 0

    def __add__(self, other: TickReport) -> TickReport:
        return TickReport(
            **{
                f.name: getattr(self, f.name) + getattr(other, f.name)
                for f in dataclasses.fields(self)
            }
        )


# -- the sweep -------------------------------------------------------------------


@dataclass(slots=True)
class _Sweep:
    changes: list[CaseChange] = dataclasses.field(default_factory=list)
    report: TickReport = dataclasses.field(default_factory=TickReport)
    # Alerts and deadline bookkeeping to write, gathered for one flush.
    alerts: list[Alert] = dataclasses.field(default_factory=list)
    schedules: list[Deadline] = dataclasses.field(default_factory=list)

    def flush(self, uow: UnitOfWork) -> None:
        """Write the gathered alerts and bookkeeping; count the new alerts."""
        queued = uow.outbox.add_alerts(self.alerts) if self.alerts else 0
        uow.outbox.save_schedules(self.schedules)
        self.alerts, self.schedules = [], []
        self.report = self.report + TickReport(queued=queued)


def sweep(
    uow_factory: UnitOfWorkFactory,
    workflows: Workflows,
    settings: AlertSettings,
    *,
    now: datetime,
) -> tuple[TickReport, list[CaseChange]]:
    """Queue owed alerts and record lapses for every case that needs it.

    A batch of cases is loaded in a few queries and its alerts and bookkeeping
    are written in one flush, so the cost follows the number of due cases with a
    small constant (measured in benchmark B2). Should anything in a batch fail,
    the batch is rolled back and done again case by case, each case inside a
    savepoint: a case that fails (a bug, a bad definition) is logged and
    skipped, never blocking the rest. Returns the report and the committed case
    changes (for subscribers).
    """
    total = _Sweep()
    seen: set[str] = set()
    failed: set[str] = set()  # logged once, skipped for the rest of this sweep
    guarded = False
    while True:
        batch = _Sweep()
        try:
            with uow_factory() as uow:
                ids = uow.outbox.claim_due_cases(now=now, limit=settings.batch)
                todo = [i for i in ids if i not in failed]
                if guarded:
                    failed |= _sweep_guarded(
                        uow, workflows, settings, todo, now=now, into=batch
                    )
                else:
                    _sweep_batch(uow, workflows, settings, todo, now=now, into=batch)
                uow.commit()
        except Exception as exc:
            if guarded:
                raise
            # The type only, no traceback: it may quote case data.
            log.warning("sweep_batch_retried", error=type(exc).__name__)
            guarded = True
            continue
        total.changes += batch.changes
        total.report = total.report + batch.report + TickReport(cases=len(ids))
        if len(ids) < settings.batch:
            return total.report, total.changes
        if seen.issuperset(ids):
            # Every case of a full batch came back: something keeps them due. Stop
            # rather than spin; the next tick tries again.
            log.error("sweep_stalled", cases=len(ids))
            return total.report, total.changes
        seen.update(ids)


def _sweep_batch(
    uow: UnitOfWork,
    workflows: Workflows,
    settings: AlertSettings,
    ids: list[str],
    *,
    now: datetime,
    into: _Sweep,
) -> None:
    """Sweep a batch in one go: one load, no savepoints, one flush."""
    # Claimed, so locked on PostgreSQL.
    cases = uow.cases.get_many(ids)
    for case_id in ids:
        case = cases.get(case_id)
        if case is not None:
            _sweep_case(uow, workflows, settings, case, now=now, into=into)
    into.flush(uow)


def _sweep_guarded(
    uow: UnitOfWork,
    workflows: Workflows,
    settings: AlertSettings,
    ids: list[str],
    *,
    now: datetime,
    into: _Sweep,
) -> set[str]:
    """Sweep a batch case by case, each in a savepoint; return the failed ids."""
    failed = set()
    cases = uow.cases.get_many(ids)
    for case_id in ids:
        case = cases.get(case_id)
        if case is None:  # pragma: no cover - claimed ids come from existing rows
            continue
        part = _Sweep()
        try:
            with uow.savepoint():
                _sweep_case(uow, workflows, settings, case, now=now, into=part)
                part.flush(uow)
        except Exception as exc:  # noqa: BLE001 - one broken case must not stop the sweep
            # The type only, no traceback: it may quote case data.
            log.error("case_sweep_failed", case_id=case_id, error=type(exc).__name__)  # noqa: TRY400
            failed.add(case_id)
            if isinstance(exc, CaseDamaged):
                # Skipped from now on, and the administrator told once.
                integrity.register(
                    uow,
                    case_id,
                    field=exc.field,
                    problems=(str(exc),),
                    now=now,
                    settings=settings,
                )
            continue
        into.changes += part.changes
        into.report = into.report + part.report
    return failed


def _sweep_case(
    uow: UnitOfWork,
    workflows: Workflows,
    settings: AlertSettings,
    case: Case,
    *,
    now: datetime,
    into: _Sweep,
) -> None:
    """Gather a case's owed alerts and bookkeeping in *into*; record its lapses."""
    damage = integrity.structural_damage(case, workflows)
    if damage is not None:
        raise CaseDamaged(case.case_id, *damage, ref=case.external_ref)
    spec = workflows.get(case.workflow_id, case.workflow_version)
    lapsed = advanced = 0
    # Lapses first, in the order they happened: a lapse action may close other
    # deadlines, which then neither lapse nor owe further alerts. A step the
    # imported record lacks is no lapse: it is left to the officers.
    unknown = {d.deadline_id for d in unknown_steps(case).values()}
    lapsing = sorted(
        (
            d
            for d in case.deadlines
            if d.status is DeadlineStatus.OPEN
            and d.lapsed_at is None
            and d.due_at <= now
            and d.deadline_id not in unknown
        ),
        key=lambda d: (d.due_at, d.deadline_id),
    )
    for stale in lapsing:
        current = _current(case, stale.deadline_id)
        if current is None or current.status is not DeadlineStatus.OPEN:
            continue
        # Alerts owed up to the lapse (its reminders and the missed alert).
        into.alerts += _owed(workflows, spec, case, current, now=now, settings=settings)
        dspec = spec.deadlines[spec_key(current.key)]
        marked = scheduled(
            dataclasses.replace(current, alerts_through=now, lapsed_at=current.due_at),
            dspec,
            workflows.calendar(current.calendar_id),
        )
        case, moved = _lapse(uow, workflows, spec, case, marked, now=now, into=into)
        lapsed += 1
        advanced += moved
    unknown = {d.deadline_id for d in unknown_steps(case).values()}
    for d in case.deadlines:
        if (
            d.status is DeadlineStatus.OPEN
            and d.next_action_at is not None
            and d.next_action_at <= now
        ):
            if d.deadline_id in unknown:
                # One alert, then nothing more until an officer records the step.
                into.alerts += _unknown_alerts(
                    spec, case, d, now=now, settings=settings
                )
                into.schedules.append(
                    dataclasses.replace(d, alerts_through=now, next_action_at=None)
                )
                continue
            into.alerts += _owed(workflows, spec, case, d, now=now, settings=settings)
            dspec = spec.deadlines[spec_key(d.key)]
            into.schedules.append(
                scheduled(
                    dataclasses.replace(d, alerts_through=now),
                    dspec,
                    workflows.calendar(d.calendar_id),
                )
            )
    into.report = into.report + TickReport(lapsed=lapsed, advanced=advanced)


def _current(case: Case, deadline_id: str) -> Deadline | None:
    return next((d for d in case.deadlines if d.deadline_id == deadline_id), None)


def _owed(
    workflows: Workflows,
    spec: WorkflowSpec,
    case: Case,
    deadline: Deadline,
    *,
    now: datetime,
    settings: AlertSettings,
) -> list[Alert]:
    ladder = spec.deadlines[spec_key(deadline.key)].ladder
    if ladder is None:
        return []
    calendar = workflows.calendar(deadline.calendar_id)
    steps = owed_steps(
        ladder, deadline, calendar, after=deadline.alerts_through, until=now
    )
    return [
        a
        for s in steps
        for a in _alerts(case, deadline, ladder, s, now=now, settings=settings)
    ]


def _unknown_alerts(
    spec: WorkflowSpec,
    case: Case,
    deadline: Deadline,
    *,
    now: datetime,
    settings: AlertSettings,
) -> list[Alert]:
    """The one alert telling the officers the imported record lacks this step."""
    ladder = spec.deadlines[spec_key(deadline.key)].ladder or AlertLadder()
    step = AlertStep(
        step=f"unknown@{deadline.due_date.isoformat()}",
        kind=AlertKind.UNKNOWN_STEP,
        owed_at=now,
    )
    return _alerts(case, deadline, ladder, step, now=now, settings=settings)


def _lapse(
    uow: UnitOfWork,
    workflows: Workflows,
    spec: WorkflowSpec,
    case: Case,
    lapsed: Deadline,
    *,
    now: datetime,
    into: _Sweep,
) -> tuple[Case, bool]:
    """Record one lapse, take its lapse action; return the case and if it moved."""
    change = handlers.record_lapse(uow, case, lapsed, now=now)
    uow.cases.apply(change)
    record_change(uow, change, now=now)
    into.changes.append(change)
    case = change.case
    log.warning(
        "deadline_missed",
        case_id=case.case_id,
        workflow=case.workflow_id,
        deadline_key=lapsed.key,
        state=case.state,
    )
    if spec.deadlines[spec_key(lapsed.key)].on_lapse != "advance":
        return case, False
    moved = _advance(uow, workflows, spec, case, lapsed, now=now)
    if moved is None:
        return case, False
    into.changes.append(moved)
    return moved.case, True


def _advance(
    uow: UnitOfWork,
    workflows: Workflows,
    spec: WorkflowSpec,
    case: Case,
    lapsed: Deadline,
    *,
    now: datetime,
) -> CaseChange | None:
    """Take the lapse action the workflow declares, as the engine's 'system' role."""
    transition = next(
        (
            t
            for t in spec.transitions_from(case.state)
            if t.after_lapse_of == lapsed.key and "system" in t.roles
        ),
        None,
    )
    if transition is None:
        return None
    cmd = FireEvent(
        case_id=case.case_id,
        event=transition.event,
        actor="rrm:engine",
        role="system",
        reason=f"{lapsed.label}: lapsed on {lapsed.due_date.isoformat()}",
        at=max(lapsed.due_at, case.last_event_at),
    )
    try:
        # On the case as the lapse left it: claimed by this sweep, so current.
        result = handlers.fire_on(uow, workflows, case, cmd, now=now)
    except RRMError as exc:
        # The lapse stays recorded; the officers decide (a guard may need them).
        log.warning(
            "lapse_action_refused",
            case_id=case.case_id,
            case_event=transition.event,
            error=type(exc).__name__,
        )
        return None
    uow.cases.apply(result)
    record_change(uow, result, now=now)
    return result


def _reachable(case: Case, officers: list[Officer]) -> list[Officer]:
    """The officers with an address; the others are logged (by id) and skipped."""
    for o in officers:
        if not o.email:
            log.warning(
                "alert_recipient_unreachable",
                case_id=case.case_id,
                officer_id=o.officer_id,
            )
    return [o for o in officers if o.email]


def _recipients(
    case: Case, ladder: AlertLadder, kind: AlertKind, settings: AlertSettings
) -> list[Officer]:
    """Who an alert goes to: assigned officers by role; supervisors once overdue.

    Only officers with an address count: when none of those chosen has one, the
    fallback address receives the alert (issue #13).
    """
    chosen = _reachable(
        case,
        [
            o
            for o in case.officers
            if o.role != "supervisor"
            and (not ladder.recipients or o.role in ladder.recipients)
        ],
    )
    if not chosen and settings.fallback_address:
        chosen = [
            Officer(
                officer_id="rrm:fallback",
                role="fallback",
                email=settings.fallback_address,
            )
        ]
    if kind is AlertKind.OVERDUE and ladder.supervisor_on_lapse:
        supervisors = _reachable(
            case, [o for o in case.officers if o.role == "supervisor"]
        )
        if not supervisors and settings.supervisor_address:
            supervisors = [
                Officer(
                    officer_id="rrm:supervisor",
                    role="supervisor",
                    email=settings.supervisor_address,
                )
            ]
        chosen += supervisors
    unique: dict[str, Officer] = {}
    for o in chosen:
        unique.setdefault(o.officer_id, o)
    return list(unique.values())


def _alerts(
    case: Case,
    deadline: Deadline,
    ladder: AlertLadder,
    step: AlertStep,
    *,
    now: datetime,
    settings: AlertSettings,
) -> list[Alert]:
    out = [
        Alert(
            alert_id=f"{deadline.deadline_id}:{step.step}:{officer.officer_id}",
            deadline_id=deadline.deadline_id,
            case_id=case.case_id,
            step=step.step,
            kind=step.kind,
            recipient_id=officer.officer_id,
            recipient_email=officer.email,
            recipient_role=officer.role,
            language=officer.language,
            timezone=officer.timezone or deadline.timezone,
            owed_at=step.owed_at,
            created_at=now,
            late=step.owed_at < now - settings.late_after,
        )
        for officer in _recipients(case, ladder, step.kind, settings)
    ]
    if not out:
        log.error(
            "alert_without_recipient",
            case_id=case.case_id,
            deadline_key=deadline.key,
            step=step.step,
        )
        out = _undeliverable(case, deadline, step, now=now, settings=settings)
    return out


#: The recipient id of an owed alert nobody could be sent.
UNDELIVERABLE = "rrm:undeliverable"


def _undeliverable(
    case: Case,
    deadline: Deadline,
    step: AlertStep,
    *,
    now: datetime,
    settings: AlertSettings,
) -> list[Alert]:
    """Record an owed alert with no deliverable recipient; never drop it.

    It is written dead at once (listed with the dead letters, shown to
    administrators) and, when an administrator address is set, one e-mail tells
    the administrator.
    """
    alert_id = f"{deadline.deadline_id}:{step.step}:{UNDELIVERABLE}"
    dead = Alert(
        alert_id=alert_id,
        deadline_id=deadline.deadline_id,
        case_id=case.case_id,
        step=step.step,
        kind=step.kind,
        recipient_id=UNDELIVERABLE,
        recipient_email="",
        recipient_role="",
        language="en",
        timezone=deadline.timezone,
        owed_at=step.owed_at,
        created_at=now,
        late=step.owed_at < now - settings.late_after,
        status=AlertStatus.DEAD,
        last_error="permanent: undeliverable: no officer of the case to alert has "
        "an e-mail address and no fallback address is set",
    )
    notice = dead_letter_notice(dead, now=now, settings=settings)
    return [dead] if notice is None else [dead, notice]


def dead_letter_notice(
    alert: Alert, *, now: datetime, settings: AlertSettings
) -> Alert | None:
    """The one e-mail telling an administrator that an alert could not be sent.

    ``None`` when no administrator address is set, or for a notice or digest.
    """
    if (
        alert.kind in {AlertKind.DEAD_LETTER, AlertKind.DIGEST}
        or not settings.admin_address
    ):
        return None
    return Alert(
        alert_id=f"{alert.alert_id}:dead-letter",
        deadline_id=alert.deadline_id,
        case_id=alert.case_id,
        step=f"dead-letter:{alert.step}:{alert.recipient_id}",
        kind=AlertKind.DEAD_LETTER,
        recipient_id="rrm:admin",
        recipient_email=settings.admin_address,
        recipient_role="admin",
        language="en",
        timezone="UTC",
        owed_at=now,
        created_at=now,
        late=False,
    )


# -- daily digests ---------------------------------------------------------------


def _digest_instant(day: date, hour: int, timezone: str) -> datetime:
    return datetime.combine(day, time(hour), ZoneInfo(timezone)).astimezone(UTC)


def queue_digests(
    uow_factory: UnitOfWorkFactory, settings: AlertSettings, *, now: datetime
) -> int:
    """Queue today's digest for every officer past the digest hour; return how many."""
    hour = settings.digest_hour
    if hour is None:
        return 0
    with uow_factory() as uow:
        alerts = []
        for officer in uow.outbox.digest_recipients():
            tz = officer.timezone or settings.digest_timezone
            local = now.astimezone(ZoneInfo(tz))
            if local.hour < hour:
                continue
            owed = _digest_instant(local.date(), hour, tz)
            alerts.append(
                Alert(
                    alert_id=f"digest:{officer.officer_id}:{local.date().isoformat()}",
                    deadline_id=f"digest:{officer.officer_id}",
                    case_id="",
                    step=f"digest@{local.date().isoformat()}",
                    kind=AlertKind.DIGEST,
                    recipient_id=officer.officer_id,
                    recipient_email=officer.email,
                    recipient_role="",
                    language=officer.language,
                    timezone=tz,
                    owed_at=owed,
                    created_at=now,
                    late=owed < now - settings.late_after,
                )
            )
        queued = uow.outbox.add_alerts(alerts)
        uow.commit()
    return queued


def next_digest(
    uow_factory: UnitOfWorkFactory, settings: AlertSettings, *, now: datetime
) -> datetime | None:
    """Return when the next officer's digest falls due, if digests are on."""
    hour = settings.digest_hour
    if hour is None:
        return None
    with uow_factory() as uow:
        zones = {
            o.timezone or settings.digest_timezone
            for o in uow.outbox.digest_recipients()
        }
    instants = []
    for tz in zones:
        local = now.astimezone(ZoneInfo(tz)).date()
        today = _digest_instant(local, hour, tz)
        instants.append(
            today
            if today > now
            else _digest_instant(local + timedelta(days=1), hour, tz)
        )
    return min(instants, default=None)
