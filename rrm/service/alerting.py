"""The deadline sweep and alert delivery behind ``CaseEngine.tick()``.

A tick has two halves. The sweep takes cases whose deadlines need attention, puts
every owed alert in the outbox, records lapses as audited history entries and takes
the lapse action the workflow declares, all in the case's transaction. Delivery then
claims outbox rows, renders and sends them after that commit, and records success,
a retry with backoff, or a dead letter. Running either half twice, late, or in
several processes at once is safe: outbox rows are unique per deadline, step and
recipient, and claims are exclusive.
"""

from __future__ import annotations

import contextlib
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
    AlertView,
    DigestItem,
    DigestView,
    owed_steps,
    step_due_date,
)
from rrm.domain.case import Case, Deadline, DeadlineStatus, Officer
from rrm.domain.commands import FireEvent
from rrm.domain.deadlines import local_date
from rrm.errors import NotificationError, RRMError
from rrm.service import handlers
from rrm.service.ports import CaseQuery, DeadlineQuery
from rrm.workflow.clocks import scheduled, spec_key

if TYPE_CHECKING:
    from rrm.service.ports import (
        AlertRenderer,
        CaseChange,
        Notifier,
        UnitOfWork,
        UnitOfWorkFactory,
    )
    from rrm.workflow.registry import Workflows
    from rrm.workflow.spec import DeadlineSpec, WorkflowSpec

__all__ = [
    "AlertSettings",
    "TickReport",
    "deliver",
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
        lease: How long a claimed alert stays reserved for the worker sending it.
        batch: Cases or alerts handled per transaction.
        fallback_address: Receives alerts for cases with no officer to alert.
        supervisor_address: Receives overdue alerts of cases with no supervisor.
        admin_address: Receives one e-mail per dead-lettered alert.
        digest_hour: When set, every officer with open deadlines gets a daily
            digest at this local hour (their time zone, else ``digest_timezone``).
        digest_timezone: Time zone for digests of officers who have none.
        digest_horizon_days: How far ahead a digest looks.

    .. versionadded:: 0.1.0
    """

    late_after: timedelta = timedelta(minutes=15)
    # 1, 2, 4, ... minutes, then hourly: twelve attempts span about 7.5 hours, so a
    # mail server down for an afternoon delays alerts but loses none.
    max_attempts: int = 12
    backoff_base: timedelta = timedelta(minutes=1)
    backoff_max: timedelta = timedelta(hours=1)
    lease: timedelta = timedelta(minutes=5)
    batch: int = 100
    fallback_address: str = ""
    supervisor_address: str = ""
    admin_address: str = ""
    digest_hour: int | None = None
    digest_timezone: str = "UTC"
    digest_horizon_days: int = 14


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class TickReport:
    """What one tick did.

    .. versionadded:: 0.1.0
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


def sweep(
    uow_factory: UnitOfWorkFactory,
    workflows: Workflows,
    settings: AlertSettings,
    *,
    now: datetime,
) -> tuple[TickReport, list[CaseChange]]:
    """Queue owed alerts and record lapses for every case that needs it.

    Returns the report and the committed case changes (for subscribers).
    """
    total = _Sweep()
    seen: set[str] = set()
    while True:
        with uow_factory() as uow:
            ids = uow.outbox.claim_due_cases(now=now, limit=settings.batch)
            batch = _Sweep()
            for case_id in ids:
                _sweep_case(uow, workflows, settings, case_id, now=now, into=batch)
            uow.commit()
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


def _sweep_case(
    uow: UnitOfWork,
    workflows: Workflows,
    settings: AlertSettings,
    case_id: str,
    *,
    now: datetime,
    into: _Sweep,
) -> None:
    case = uow.cases.get(case_id)
    if case is None:  # pragma: no cover - claimed ids come from existing rows
        return
    spec = workflows.get(case.workflow_id, case.workflow_version)
    due = sorted(
        (
            d
            for d in case.deadlines
            if d.status is DeadlineStatus.OPEN
            and d.next_action_at is not None
            and d.next_action_at <= now
        ),
        key=lambda d: (d.next_action_at, d.deadline_id),
    )
    alerts: list[Alert] = []
    quiet: list[Deadline] = []
    lapses: list[Deadline] = []
    for d in due:
        dspec = spec.deadlines[spec_key(d.key)]
        calendar = workflows.calendar(d.calendar_id)
        if dspec.ladder is not None:
            steps = owed_steps(
                dspec.ladder, d, calendar, after=d.alerts_through, until=now
            )
            alerts += [
                a
                for s in steps
                for a in _alerts(case, d, dspec.ladder, s, now=now, settings=settings)
            ]
        lapsing = d.lapsed_at is None and d.due_at <= now
        updated = dataclasses.replace(
            d, alerts_through=now, lapsed_at=d.due_at if lapsing else d.lapsed_at
        )
        updated = scheduled(updated, dspec, calendar)
        (lapses if lapsing else quiet).append(updated)
    queued = uow.outbox.add_alerts(alerts)
    uow.outbox.save_schedules(quiet)
    lapsed, advanced = _lapse(uow, workflows, spec, case, lapses, now=now, into=into)
    into.report = into.report + TickReport(
        queued=queued, lapsed=lapsed, advanced=advanced
    )


def _lapse(
    uow: UnitOfWork,
    workflows: Workflows,
    spec: WorkflowSpec,
    case: Case,
    lapses: list[Deadline],
    *,
    now: datetime,
    into: _Sweep,
) -> tuple[int, int]:
    advanced = 0
    for lapsed in lapses:
        change = handlers.record_lapse(uow, case, lapsed, now=now)
        uow.cases.apply(change)
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
            continue
        moved = _advance(uow, workflows, spec, case, lapsed, now=now)
        if moved is not None:
            into.changes.append(moved)
            case = moved.case
            advanced += 1
    return len(lapses), advanced


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
        result = handlers.fire_event(uow, workflows, cmd, now=now)
    except RRMError as exc:
        # The lapse stays recorded; the officers decide (a guard may need them).
        log.warning(
            "lapse_action_refused",
            case_id=case.case_id,
            case_event=transition.event,
            error=type(exc).__name__,
        )
        return None
    if isinstance(result, Case):  # pragma: no cover - no idempotency key here
        return None
    uow.cases.apply(result)
    return result


def _recipients(
    case: Case, ladder: AlertLadder, kind: AlertKind, settings: AlertSettings
) -> list[Officer]:
    """Who an alert goes to: assigned officers by role; supervisors once overdue."""
    chosen = [
        o
        for o in case.officers
        if o.role != "supervisor"
        and (not ladder.recipients or o.role in ladder.recipients)
    ]
    if not chosen and settings.fallback_address:
        chosen = [
            Officer(
                officer_id="rrm:fallback",
                role="fallback",
                email=settings.fallback_address,
            )
        ]
    if kind is AlertKind.OVERDUE and ladder.supervisor_on_lapse:
        supervisors = [o for o in case.officers if o.role == "supervisor"]
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
    out = []
    for officer in _recipients(case, ladder, step.kind, settings):
        if not officer.email:
            log.warning(
                "alert_recipient_unreachable",
                case_id=case.case_id,
                officer_id=officer.officer_id,
                deadline_key=deadline.key,
            )
            continue
        out.append(
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
        )
    if not out:
        log.error(
            "alert_without_recipient",
            case_id=case.case_id,
            deadline_key=deadline.key,
            step=step.step,
        )
    return out


# -- delivery --------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    """What delivery needs: the renderer, the notifier and the settings."""

    renderer: AlertRenderer
    notifier: Notifier
    settings: AlertSettings


def deliver(
    uow_factory: UnitOfWorkFactory,
    workflows: Workflows,
    delivery: Delivery,
    *,
    now: datetime,
) -> TickReport:
    """Send every alert that is ready, oldest first; record each outcome."""
    report = TickReport()
    settings = delivery.settings
    while True:
        with uow_factory() as uow:
            claimed = uow.outbox.claim_alerts(
                now=now, limit=settings.batch, lease_until=now + settings.lease
            )
            cases = {
                a.case_id: uow.cases.get(a.case_id)
                for a in claimed
                if a.kind is not AlertKind.DIGEST
            }
            digests = {
                a.alert_id: _digest_view(uow, workflows, a, now=now, settings=settings)
                for a in claimed
                if a.kind is AlertKind.DIGEST
            }
            uow.commit()
        if not claimed:
            return report
        # A notifier that can hold one connection for a batch (SMTP) does so.
        session = getattr(delivery.notifier, "session", None)
        with session() if callable(session) else contextlib.nullcontext():
            outcomes = [
                _send_digest(a, digests[a.alert_id], delivery, now=now)
                if a.kind is AlertKind.DIGEST
                else _deliver_one(a, cases.get(a.case_id), workflows, delivery, now=now)
                for a in claimed
            ]
        with uow_factory() as uow:
            for updated, extra in outcomes:
                uow.outbox.update_alert(updated)
                if extra is not None:
                    uow.outbox.add_alerts([extra])
            uow.commit()
        report = report + _count([o for o, _ in outcomes])


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


def _deliver_one(
    alert: Alert,
    case: Case | None,
    workflows: Workflows,
    delivery: Delivery,
    *,
    now: datetime,
) -> tuple[Alert, Alert | None]:
    bound = log.bind(alert_id=alert.alert_id, case_id=alert.case_id)
    deadline = _deadline_of(case, alert)
    if case is None or deadline is None or _superseded(alert, deadline):
        bound.info("alert_superseded")
        return dataclasses.replace(
            alert, status=AlertStatus.SUPERSEDED, claimed_until=None
        ), None
    spec = workflows.get(case.workflow_id, case.workflow_version)
    try:
        message = delivery.renderer.render(_view(alert, case, deadline, spec))
        delivery.notifier.send(message)
    except NotificationError as exc:
        return _failed(alert, exc, now=now, settings=delivery.settings)
    bound.info("alert_sent", deadline_key=deadline.key, late=alert.late)
    return dataclasses.replace(
        alert,
        status=AlertStatus.SENT,
        sent_at=now,
        attempts=alert.attempts + 1,
        claimed_until=None,
        last_error="",
    ), None


def _send_digest(
    alert: Alert, view: DigestView, delivery: Delivery, *, now: datetime
) -> tuple[Alert, Alert | None]:
    try:
        delivery.notifier.send(delivery.renderer.render_digest(view))
    except NotificationError as exc:
        return _failed(alert, exc, now=now, settings=delivery.settings)
    log.info("digest_sent", alert_id=alert.alert_id, items=len(view.items))
    return dataclasses.replace(
        alert,
        status=AlertStatus.SENT,
        sent_at=now,
        attempts=alert.attempts + 1,
        claimed_until=None,
        last_error="",
    ), None


def _deadline_of(case: Case | None, alert: Alert) -> Deadline | None:
    if case is None:
        return None
    return next((d for d in case.deadlines if d.deadline_id == alert.deadline_id), None)


def _superseded(alert: Alert, deadline: Deadline) -> bool:
    """True when the alert no longer describes the deadline as it stands."""
    if alert.kind is AlertKind.DEAD_LETTER:
        return False
    if deadline.status in {DeadlineStatus.MET, DeadlineStatus.PAUSED}:
        return True
    if deadline.due_date != step_due_date(alert.step):
        return True  # extended or tolled: the reminders for the new date follow
    # A deadline cancelled by its own lapse (the case moved on) still owes the
    # alert that says it was missed; reminders for it are moot.
    return (
        deadline.status is DeadlineStatus.CANCELLED
        and alert.kind is not AlertKind.OVERDUE
    )


def _failed(
    alert: Alert,
    exc: NotificationError,
    *,
    now: datetime,
    settings: AlertSettings,
) -> tuple[Alert, Alert | None]:
    attempts = alert.attempts + 1
    error = str(exc)[:500]
    if exc.permanent or attempts >= settings.max_attempts:
        log.error(
            "alert_dead_lettered",
            alert_id=alert.alert_id,
            case_id=alert.case_id,
            attempts=attempts,
            permanent=exc.permanent,
        )
        dead = dataclasses.replace(
            alert,
            status=AlertStatus.DEAD,
            attempts=attempts,
            last_error=error,
            claimed_until=None,
            next_attempt_at=None,
        )
        return dead, _dead_letter(alert, now=now, settings=settings)
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


def _dead_letter(
    alert: Alert, *, now: datetime, settings: AlertSettings
) -> Alert | None:
    """The one e-mail telling an administrator that an alert could not be sent."""
    if alert.kind is AlertKind.DEAD_LETTER or not settings.admin_address:
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


def _expected_action(alert: Alert, deadline: Deadline, spec: WorkflowSpec) -> str:
    actor = spec.roles.get(deadline.actor, deadline.actor)
    if alert.kind is AlertKind.DEAD_LETTER:
        return (
            "An alert about this deadline could not be delivered to its "
            f"recipient ({alert.step.split(':')[-1]}). Check the address and the "
            "mail server, then retry it."
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
