"""The deadline sweep's queries and the alert outbox, on SQLite or PostgreSQL.

Work is claimed row by row: on PostgreSQL with ``FOR UPDATE SKIP LOCKED``, so any
number of workers take disjoint cases and alerts; on SQLite the write lock taken
by ``BEGIN IMMEDIATE`` already makes one worker at a time. Every query the sweep
runs is driven by an index on the instant work becomes due, so its cost follows
what is due, not what is open.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, final

import sqlalchemy as sa

from rrm.adapters.sql import mapping
from rrm.adapters.sql.repository import _dialect_insert, _storage_errors
from rrm.adapters.sql.tables import ALERT, CASE, CASE_OFFICER, DEADLINE
from rrm.domain.alerts import AlertStatus
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
    )
    .group_by(DEADLINE.c.case_id)
    .order_by(sa.literal_column("first"))
    .limit(sa.bindparam("b_limit"))
)
_UPDATE_SCHEDULE: Final = (
    sa.update(DEADLINE)
    .where(DEADLINE.c.deadline_id == sa.bindparam("b_deadline_id"))
    .values(
        lapsed_at=sa.bindparam("lapsed_at"),
        alerts_through=sa.bindparam("alerts_through"),
        next_action_at=sa.bindparam("next_action_at"),
    )
)
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
        self._insert = _dialect_insert(connection.dialect.name)

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
            with _storage_errors("record deadline alerts"):
                self._conn.execute(_UPDATE_SCHEDULE, params)

    def add_alerts(self, alerts: Sequence[Alert]) -> int:
        """Insert alerts not already in the outbox; return how many were new."""
        new = 0
        with _storage_errors("queue alerts"):
            for alert in alerts:
                stmt = self._insert(ALERT).values(mapping.alert_to_row(alert))
                stmt = stmt.on_conflict_do_nothing()
                result = self._conn.execute(
                    stmt.execution_options(preserve_rowcount=True)
                )
                new += max(result.rowcount, 0)
        return new

    def claim_alerts(
        self, *, now: datetime, limit: int, lease_until: datetime
    ) -> list[Alert]:
        """Claim alerts to send and mark them ``sending`` until *lease_until*."""
        ready = sa.and_(
            ALERT.c.status.in_(_READY),
            sa.or_(ALERT.c.next_attempt_at.is_(None), ALERT.c.next_attempt_at <= now),
        )
        abandoned = sa.and_(ALERT.c.status == _SENDING, ALERT.c.claimed_until <= now)
        stmt = (
            sa.select(ALERT)
            .where(sa.or_(ready, abandoned))
            .order_by(ALERT.c.owed_at, ALERT.c.alert_id)
            .limit(limit)
        )
        if self._pg:
            stmt = stmt.with_for_update(skip_locked=True)
        with _storage_errors("claim alerts to send"):
            rows = self._conn.execute(stmt).mappings().all()
            ids = [row["alert_id"] for row in rows]
            if ids:
                self._conn.execute(
                    sa.update(ALERT)
                    .where(ALERT.c.alert_id.in_(ids))
                    .values(status=_SENDING, claimed_until=lease_until)
                )
        claimed = [
            dataclasses.replace(mapping.alert_from_row(row), claimed_until=lease_until)
            for row in rows
        ]
        return [dataclasses.replace(a, status=AlertStatus.SENDING) for a in claimed]

    def update_alert(self, alert: Alert) -> None:
        """Store an alert's status, attempts, error, times and acknowledgement."""
        row = mapping.alert_to_row(alert)
        params: dict[str, Any] = {
            key: row[key]
            for key in (
                "status",
                "attempts",
                "next_attempt_at",
                "last_error",
                "sent_at",
                "claimed_until",
                "acknowledged_at",
                "acknowledged_by",
            )
        }
        params["b_alert_id"] = alert.alert_id
        with _storage_errors(f"update alert {alert.alert_id}"):
            self._conn.execute(_UPDATE_ALERT, params)

    def alert(self, alert_id: str) -> Alert | None:
        """Return one alert, or ``None``."""
        stmt = sa.select(ALERT).where(ALERT.c.alert_id == alert_id)
        with _storage_errors(f"load alert {alert_id}"):
            row = self._conn.execute(stmt).mappings().first()
        return None if row is None else mapping.alert_from_row(row)

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
            DEADLINE.c.status == _OPEN
        )
        retries = sa.select(
            sa.func.min(sa.func.coalesce(ALERT.c.next_attempt_at, ALERT.c.owed_at))
        ).where(ALERT.c.status.in_(_READY))
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
