"""The deadline sweep's queries and the alert outbox, on SQLite or PostgreSQL.

Work is claimed row by row: on PostgreSQL with ``FOR UPDATE SKIP LOCKED``, so any
number of workers take disjoint cases and alerts; on SQLite the write lock taken
by ``BEGIN IMMEDIATE`` already makes one worker at a time. Every query the sweep
runs is driven by an index on the instant work becomes due, so its cost follows
what is due, not what is open.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, final

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from rrm.adapters.sql import mapping
from rrm.adapters.sql.fast import Prepared
from rrm.adapters.sql.repository import _storage_errors
from rrm.adapters.sql.tables import (
    ALERT,
    CASE,
    CASE_OFFICER,
    DAMAGE,
    DEADLINE,
    WORKER,
)
from rrm.domain.alerts import TEMPORARY, AlertStatus
from rrm.domain.case import DeadlineStatus, Officer

if TYPE_CHECKING:
    from collections.abc import Sequence

    from rrm.domain.alerts import Alert
    from rrm.domain.case import Deadline
    from rrm.service.ports import AlertQuery

__all__ = ["SqlOutbox"]

_OPEN: Final = DeadlineStatus.OPEN.value
_READY: Final = (AlertStatus.PENDING.value, AlertStatus.FAILED.value)
_SENDING: Final = AlertStatus.SENDING.value

_DUE_CASES: Final = (
    sa.select(DEADLINE.c.case_id, sa.func.min(DEADLINE.c.next_action_at).label("first"))
    .where(
        DEADLINE.c.status == _OPEN,
        DEADLINE.c.next_action_at <= sa.bindparam("b_now"),
        # A case in the damage register is skipped until verified whole again.
        DEADLINE.c.case_id.not_in(sa.select(DAMAGE.c.case_id)),
    )
    .group_by(DEADLINE.c.case_id)
    .order_by(sa.literal_column("first"))
    .limit(sa.bindparam("b_limit"))
)
# The sweep's per-case writes run as prepared statements (rrm.adapters.sql.fast):
# at 1,000 due deadlines a tick writes about as many alerts and schedules.
_UPDATE_SCHEDULE: Final = Prepared(
    sa.update(DEADLINE)
    .where(DEADLINE.c.deadline_id == sa.bindparam("b_deadline_id"))
    .values(
        lapsed_at=sa.bindparam("lapsed_at"),
        alerts_through=sa.bindparam("alerts_through"),
        next_action_at=sa.bindparam("next_action_at"),
    ),
    ("lapsed_at", "alerts_through", "next_action_at", "b_deadline_id"),
)
_BUMP_SCHEDULE_SEQ: Final = Prepared(
    sa.update(CASE)
    .where(CASE.c.case_id == sa.bindparam("b_case_id"))
    .values(schedule_seq=CASE.c.schedule_seq + 1),
    ("b_case_id",),
)
# Without a conflict target: a repeated alert id or (deadline, step, recipient)
# is skipped either way. A new alert has no claim, so no claiming worker.
_NEW_ALERT_KEYS: Final = [c.key for c in ALERT.c if c.key != "claimed_by"]
_ADD_ALERT: Final = {
    name: Prepared(insert(ALERT).on_conflict_do_nothing(), _NEW_ALERT_KEYS)
    for name, insert in (("sqlite", sqlite.insert), ("postgresql", postgresql.insert))
}
# A claim taken over ends at least this much after the claim it replaces, so no
# two claims of one alert ever share a token (the stored precision: microseconds).
_TICK: Final = timedelta(microseconds=1)
_UPDATE_ALERT: Final = (
    sa.update(ALERT)
    .where(ALERT.c.alert_id == sa.bindparam("b_alert_id"))
    .values(
        status=sa.bindparam("status"),
        attempts=sa.bindparam("attempts"),
        next_attempt_at=sa.bindparam("next_attempt_at"),
        last_error=sa.bindparam("last_error"),
        sent_at=sa.bindparam("sent_at"),
        claimed_until=sa.bindparam("claimed_until"),
        acknowledged_at=sa.bindparam("acknowledged_at"),
        acknowledged_by=sa.bindparam("acknowledged_by"),
    )
)


@final
class SqlOutbox:
    """The sweep and the outbox, through the unit of work's connection.

    .. versionadded:: 0.1.0
    """

    def __init__(self, connection: sa.Connection) -> None:
        self._conn = connection
        self._pg = connection.dialect.name == "postgresql"

    def claim_due_cases(self, *, now: datetime, limit: int) -> list[str]:
        """Return (and on PostgreSQL lock) cases whose deadlines need the sweep."""
        with _storage_errors("find deadlines that need attention"):
            rows = self._conn.execute(_DUE_CASES, {"b_now": now, "b_limit": limit})
            ids = [row[0] for row in rows]
            if not self._pg or not ids:
                return ids
            # Lock the cases; another worker's cases are skipped, not waited for.
            locked = self._conn.execute(
                sa.select(CASE.c.case_id)
                .where(CASE.c.case_id.in_(ids))
                .with_for_update(skip_locked=True)
            )
            taken = {row[0] for row in locked}
        return [i for i in ids if i in taken]

    def save_schedules(self, deadlines: Sequence[Deadline]) -> None:
        """Store lapse and alert bookkeeping of deadlines (no case version change)."""
        params = [
            {
                "b_deadline_id": d.deadline_id,
                "lapsed_at": d.lapsed_at,
                "alerts_through": d.alerts_through,
                "next_action_at": d.next_action_at,
            }
            for d in deadlines
        ]
        if params:
            # The case row's stamp tells cached copies of these deadlines that
            # they are stale (see rrm.adapters.sql.cache).
            cases = [{"b_case_id": i} for i in sorted({d.case_id for d in deadlines})]
            with _storage_errors("record deadline alerts"):
                _UPDATE_SCHEDULE.run_many(self._conn, params)
                _BUMP_SCHEDULE_SEQ.run_many(self._conn, cases)

    def add_alerts(self, alerts: Sequence[Alert]) -> int:
        """Insert alerts not already in the outbox; return how many were new."""
        rows = [mapping.alert_to_row(alert) for alert in alerts]
        with _storage_errors("queue alerts"):
            new = _ADD_ALERT[self._conn.dialect.name].run_many(self._conn, rows)
        return max(new, 0)

    def claim_alerts(
        self,
        *,
        now: datetime,
        limit: int,
        lease_until: datetime,
        worker: str | None = None,
        alive_since: datetime | None = None,
    ) -> list[Alert]:
        """Claim alerts to send and mark them ``sending`` until *lease_until*.

        Besides ready alerts, takes over claims whose lease has run out and,
        with *alive_since*, claims of workers whose heartbeat is older or gone.
        A claim taken over gets an end later than the one it replaces, whatever
        the clocks of the two workers say, so the old holder's token never
        matches again.
        """
        stmt = (
            sa.select(ALERT)
            .where(sa.or_(_ready(now), _abandoned(now, alive_since)))
            .order_by(ALERT.c.owed_at, ALERT.c.alert_id)
            .limit(limit)
        )
        if self._pg:
            stmt = stmt.with_for_update(skip_locked=True)
        with _storage_errors("claim alerts to send"):
            rows = self._conn.execute(stmt).mappings().all()
            tokens = {
                row["alert_id"]: _next_token(row["claimed_until"], lease_until)
                for row in rows
            }
            self._mark_claimed(tokens, lease_until, worker)
        return [
            dataclasses.replace(
                mapping.alert_from_row(row),
                status=AlertStatus.SENDING,
                claimed_until=tokens[row["alert_id"]],
            )
            for row in rows
        ]

    def _mark_claimed(
        self, tokens: dict[str, datetime], lease_until: datetime, worker: str | None
    ) -> None:
        """Store the claims: almost all end at *lease_until*, in one statement."""
        usual = [i for i, t in tokens.items() if t == lease_until]
        if usual:
            self._conn.execute(
                sa.update(ALERT)
                .where(ALERT.c.alert_id.in_(usual))
                .values(status=_SENDING, claimed_until=lease_until, claimed_by=worker)
            )
        for alert_id, token in tokens.items():
            if token != lease_until:
                self._conn.execute(
                    sa.update(ALERT)
                    .where(ALERT.c.alert_id == alert_id)
                    .values(status=_SENDING, claimed_until=token, claimed_by=worker)
                )

    def renew_heartbeat(
        self, worker: str, *, at: datetime, alive_since: datetime
    ) -> None:
        """Record that *worker* is alive at *at*; forget workers not seen since.

        Forgetting a worker changes nothing about its claims: a claim whose
        worker has no heartbeat row is free to take, like a stale one.
        """
        insert = (postgresql.insert if self._pg else sqlite.insert)(WORKER)
        upsert = insert.values(worker_id=worker, started_at=at, last_seen=at)
        upsert = upsert.on_conflict_do_update(
            index_elements=[WORKER.c.worker_id],
            set_={"last_seen": upsert.excluded.last_seen},
        )
        with _storage_errors("record the worker's heartbeat"):
            self._conn.execute(upsert)
            self._conn.execute(
                sa.delete(WORKER).where(
                    WORKER.c.last_seen <= alive_since, WORKER.c.worker_id != worker
                )
            )

    def renew_claim(
        self, alert_id: str, *, token: datetime, until: datetime
    ) -> datetime | None:
        """Extend this worker's claim before sending; None if the claim was lost.

        The claim's expiry instant is its token: another worker that re-claimed
        the alert after the lease ran out holds a different one.
        """
        stmt = (
            sa.update(ALERT)
            .where(
                ALERT.c.alert_id == alert_id,
                ALERT.c.status == _SENDING,
                ALERT.c.claimed_until == token,
            )
            .values(claimed_until=until)
        )
        with _storage_errors(f"renew the claim on alert {alert_id}"):
            result = self._conn.execute(stmt.execution_options(preserve_rowcount=True))
        return until if result.rowcount == 1 else None

    def record_delivery(self, alert: Alert, *, token: datetime) -> bool:
        """Store a delivery outcome if this worker still holds the claim.

        Only delivery columns are written, so an acknowledgement made meanwhile
        stands. Returns False when the claim had been lost.
        """
        row = mapping.alert_to_row(alert)
        stmt = (
            sa.update(ALERT)
            .where(
                ALERT.c.alert_id == alert.alert_id,
                ALERT.c.status == _SENDING,
                ALERT.c.claimed_until == token,
            )
            .values(
                {
                    k: row[k]
                    for k in (
                        "status",
                        "attempts",
                        "next_attempt_at",
                        "last_error",
                        "sent_at",
                        "claimed_until",
                    )
                }
            )
        )
        with _storage_errors(f"record the delivery of alert {alert.alert_id}"):
            result = self._conn.execute(stmt.execution_options(preserve_rowcount=True))
        return bool(result.rowcount == 1)

    def acknowledge(self, alert_id: str, *, officer_id: str, at: datetime) -> bool:
        """Record an acknowledgement once; False if already acknowledged."""
        stmt = (
            sa.update(ALERT)
            .where(ALERT.c.alert_id == alert_id, ALERT.c.acknowledged_at.is_(None))
            .values(acknowledged_at=at, acknowledged_by=officer_id)
        )
        with _storage_errors(f"acknowledge alert {alert_id}"):
            result = self._conn.execute(stmt.execution_options(preserve_rowcount=True))
        return bool(result.rowcount == 1)

    def requeue(self, alert_id: str, *, at: datetime) -> bool:
        """Put a failed or dead alert back in the queue, to send at *at*."""
        stmt = (
            sa.update(ALERT)
            .where(
                ALERT.c.alert_id == alert_id,
                ALERT.c.status.in_((AlertStatus.FAILED.value, AlertStatus.DEAD.value)),
            )
            .values(
                status=AlertStatus.PENDING.value,
                attempts=0,
                next_attempt_at=at,
                claimed_until=None,
            )
        )
        with _storage_errors(f"requeue alert {alert_id}"):
            result = self._conn.execute(stmt.execution_options(preserve_rowcount=True))
        return bool(result.rowcount == 1)

    def requeue_unreachable(self, *, at: datetime) -> int:
        """Requeue dead alerts that failed only because the server was unreachable."""
        stmt = (
            sa.update(ALERT)
            .where(
                ALERT.c.status == AlertStatus.DEAD.value,
                ALERT.c.last_error.startswith(TEMPORARY),
                ALERT.c.next_attempt_at <= at,
            )
            .values(
                status=AlertStatus.PENDING.value,
                attempts=0,
                next_attempt_at=at,
                claimed_until=None,
            )
        )
        with _storage_errors("requeue alerts after a mail outage"):
            result = self._conn.execute(stmt.execution_options(preserve_rowcount=True))
        return max(result.rowcount, 0)

    def resume_deferred(self, deadline_id: str, *, due_step_suffix: str) -> int:
        """Requeue a resumed deadline's deferred alerts whose due date still stands.

        The others describe a date that no longer exists and are superseded.
        """
        deferred = sa.and_(
            ALERT.c.deadline_id == deadline_id,
            ALERT.c.status == AlertStatus.DEFERRED.value,
        )
        keep = ALERT.c.step.endswith(due_step_suffix)
        with _storage_errors(f"resume the alerts of deadline {deadline_id}"):
            self._conn.execute(
                sa.update(ALERT)
                .where(deferred, sa.not_(keep))
                .values(status=AlertStatus.SUPERSEDED.value)
            )
            result = self._conn.execute(
                sa.update(ALERT)
                .where(deferred, keep)
                .values(status=AlertStatus.PENDING.value)
                .execution_options(preserve_rowcount=True)
            )
        return max(result.rowcount, 0)

    def alert(self, alert_id: str) -> Alert | None:
        """Return one alert, or ``None``."""
        stmt = sa.select(ALERT).where(ALERT.c.alert_id == alert_id)
        with _storage_errors(f"load alert {alert_id}"):
            row = self._conn.execute(stmt).mappings().first()
        return None if row is None else mapping.alert_from_row(row)

    def count_alerts(self, statuses: Sequence[str]) -> int:
        """Return how many alerts have one of *statuses* (an index count)."""
        stmt = (
            sa.select(sa.func.count())
            .select_from(ALERT)
            .where(ALERT.c.status.in_(list(statuses)))
        )
        with _storage_errors("count alerts"):
            return int(self._conn.execute(stmt).scalar_one())

    def alerts(self, query: AlertQuery) -> list[Alert]:
        """Return alerts matching the query, oldest owed first."""
        stmt = sa.select(ALERT)
        if query.statuses is not None:
            stmt = stmt.where(ALERT.c.status.in_(query.statuses))
        if query.case_id is not None:
            stmt = stmt.where(ALERT.c.case_id == query.case_id)
        if query.recipient_id is not None:
            stmt = stmt.where(ALERT.c.recipient_id == query.recipient_id)
        stmt = stmt.order_by(ALERT.c.owed_at, ALERT.c.alert_id).limit(query.limit)
        with _storage_errors("list alerts"):
            rows = self._conn.execute(stmt).mappings()
            return [mapping.alert_from_row(row) for row in rows]

    def digest_recipients(self) -> list[Officer]:
        """Return officers with an e-mail assigned to cases with open deadlines."""
        open_cases = sa.select(DEADLINE.c.case_id).where(DEADLINE.c.status == _OPEN)
        stmt = (
            sa.select(
                CASE_OFFICER.c.officer_id,
                sa.func.min(CASE_OFFICER.c.email).label("email"),
                sa.func.min(CASE_OFFICER.c.language).label("language"),
                sa.func.min(CASE_OFFICER.c.timezone).label("timezone"),
            )
            .where(CASE_OFFICER.c.case_id.in_(open_cases), CASE_OFFICER.c.email != "")
            .group_by(CASE_OFFICER.c.officer_id)
            .order_by(CASE_OFFICER.c.officer_id)
        )
        with _storage_errors("list officers for digests"):
            rows = self._conn.execute(stmt).mappings()
            return [
                Officer(
                    officer_id=r["officer_id"],
                    role="",
                    email=r["email"],
                    language=r["language"],
                    timezone=r["timezone"],
                )
                for r in rows
            ]

    def next_wakeup(self, *, alerts: bool = True) -> datetime | None:
        """Return the earliest instant the sweep (and the sender) is owed, if any.

        Without *alerts* only deadlines count: an engine with no notifier cannot
        send, so its queued alerts must not keep the wake-up in the past.
        """
        deadlines = sa.select(sa.func.min(DEADLINE.c.next_action_at)).where(
            DEADLINE.c.status == _OPEN,
            # The sweep skips a damaged case: no wake-up for it either.
            DEADLINE.c.case_id.not_in(sa.select(DAMAGE.c.case_id)),
        )
        retries = sa.select(
            sa.func.min(sa.func.coalesce(ALERT.c.next_attempt_at, ALERT.c.owed_at))
        ).where(
            sa.or_(
                ALERT.c.status.in_(_READY),
                # Dead for a temporary reason: another round is due at this time.
                sa.and_(
                    ALERT.c.status == AlertStatus.DEAD.value,
                    ALERT.c.next_attempt_at.is_not(None),
                ),
            )
        )
        leases = sa.select(sa.func.min(ALERT.c.claimed_until)).where(
            ALERT.c.status == _SENDING
        )
        with _storage_errors("plan the next wake-up"):
            found = [
                self._conn.execute(stmt).scalar_one_or_none()
                for stmt in ((deadlines, retries, leases) if alerts else (deadlines,))
            ]
        instants = [_aware(f) for f in found if f is not None]
        return min(instants, default=None)


def _aware(value: Any) -> datetime:
    # Aggregates bypass the column type, so SQLite hands back text or naive values.
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        msg = f"unexpected instant {value!r}"
        raise TypeError(msg)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _ready(now: datetime) -> sa.ColumnElement[bool]:
    """Alerts waiting to be sent: pending, or failed and due for another attempt."""
    return sa.and_(
        ALERT.c.status.in_(_READY),
        sa.or_(ALERT.c.next_attempt_at.is_(None), ALERT.c.next_attempt_at <= now),
    )


def _abandoned(now: datetime, alive_since: datetime | None) -> sa.ColumnElement[bool]:
    """Claims no live worker holds: the lease ran out, or its worker fell silent."""
    expired = ALERT.c.claimed_until <= now
    if alive_since is None:
        return sa.and_(ALERT.c.status == _SENDING, expired)
    alive = sa.select(WORKER.c.worker_id).where(WORKER.c.last_seen > alive_since)
    # Claims from before heartbeats (no worker named) wait for their lease.
    silent = sa.and_(ALERT.c.claimed_by.is_not(None), ALERT.c.claimed_by.not_in(alive))
    return sa.and_(ALERT.c.status == _SENDING, sa.or_(expired, silent))


def _next_token(previous: datetime | None, lease_until: datetime) -> datetime:
    """The end of a new claim: *lease_until*, unless an older claim ends later."""
    if previous is None:
        return lease_until
    return max(lease_until, _aware(previous) + _TICK)
