"""RRM's database tables, declared with SQLModel on a registry of RRM's own.

The tables live on their own ``MetaData`` so a host's ``create_all()`` or Alembic
autogenerate never sees them, and every name starts with ``rrm_``. Rows are not
domain objects: :mod:`rrm.adapters.sql.mapping` converts between the two. The
schema itself changes only through the revisions in ``storage/migrations``.
"""

# No ``from __future__ import annotations`` here: SQLModel reads the annotations at
# class creation time to build the columns.

from datetime import date, datetime
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from rrm.adapters.sql.types import UTCDateTime

__all__ = [
    "ALERT",
    "API_TOKEN",
    "CALENDAR_FEED",
    "CASE",
    "CASE_EVENT",
    "CASE_OFFICER",
    "CONSOLE_SESSION",
    "DAMAGE",
    "DEADLINE",
    "DETERMINATION",
    "FACILITY",
    "PETITIONER",
    "WEBHOOK_DELIVERY",
    "WEBHOOK_SUBSCRIPTION",
    "WORKER",
    "AlertRow",
    "ApiTokenRow",
    "CalendarFeedRow",
    "CaseEventRow",
    "CaseOfficerRow",
    "CaseRow",
    "DamageRow",
    "DeadlineRow",
    "DeterminationRow",
    "FacilityRow",
    "PetitionerRow",
    "RRMTable",
    "WebhookDeliveryRow",
    "WebhookSubscriptionRow",
    "WorkerRow",
    "metadata",
]

# Deterministic constraint names, so migrations (and SQLite batch mode, which
# rebuilds tables) can refer to every constraint by name. Revision files spell out
# the same names by hand.
NAMING_CONVENTION: Final = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata: Final = sa.MetaData(naming_convention=NAMING_CONVENTION)
_registry: Final = registry(metadata=metadata)


class RRMTable(SQLModel, registry=_registry):
    """Base of every RRM table; keeps them off the global ``SQLModel.metadata``."""


class FacilityRow(RRMTable, table=True):
    """The facility registry; determinations are counted per facility and owner."""

    __tablename__ = "rrm_facility"

    facility_id: str = Field(primary_key=True)
    name: str
    owner: str = Field(index=True)
    country: str
    city: str
    region: str
    sector: str


class CaseRow(RRMTable, table=True):
    """One case as of its latest version; ``version`` guards concurrent writers."""

    __tablename__ = "rrm_case"
    # Listings page newest first by (opened_at, case_id): the console's and the
    # API's case lists (B7).
    __table_args__ = (
        sa.Index("ix_rrm_case_opened_at_case_id", "opened_at", "case_id"),
    )

    case_id: str = Field(primary_key=True)
    external_ref: str = Field(unique=True)
    workflow_id: str
    workflow_version: int
    state: str = Field(index=True)
    version: int
    # Incremented by the deadline sweep, which changes deadline bookkeeping
    # without a history entry; cached copies of the case check it with version.
    schedule_seq: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    complainant: str
    respondent: str
    initiation: str
    facility_id: str = Field(index=True, foreign_key="rrm_facility.facility_id")
    attributes: dict[str, Any] = Field(sa_type=sa.JSON)
    opened_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)
    last_event_at: datetime = Field(sa_type=UTCDateTime)


class PetitionerRow(RRMTable, table=True):
    """A petitioner of a case, kept in filing order by ``position``."""

    __tablename__ = "rrm_petitioner"

    case_id: str = Field(primary_key=True, foreign_key="rrm_case.case_id")
    position: int = Field(primary_key=True)
    name: str
    confidential: bool
    contact: str


class CaseOfficerRow(RRMTable, table=True):
    """An officer assigned to a case in one role."""

    __tablename__ = "rrm_case_officer"

    case_id: str = Field(primary_key=True, foreign_key="rrm_case.case_id")
    officer_id: str = Field(primary_key=True, index=True)
    role: str = Field(primary_key=True)
    name: str
    email: str
    language: str
    timezone: str = Field(default="", sa_column_kwargs={"server_default": ""})


class CaseEventRow(RRMTable, table=True):
    """The append-only, hash-chained history of a case.

    The primary key (case_id, seq), with ``seq`` equal to the case version after the
    event, rejects a second writer of the same version on its own.
    """

    __tablename__ = "rrm_case_event"
    __table_args__ = (sa.UniqueConstraint("case_id", "idempotency_key"),)

    case_id: str = Field(primary_key=True, foreign_key="rrm_case.case_id")
    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    event: str
    from_state: str | None
    to_state: str
    actor: str
    role: str
    reason: str
    payload: dict[str, Any] = Field(sa_type=sa.JSON)
    occurred_at: datetime = Field(sa_type=UTCDateTime)
    recorded_at: datetime = Field(sa_type=UTCDateTime)
    idempotency_key: str | None
    prev_hash: str
    hash: str
    # The credential that proved the actor (``token:<id>``, ``oidc:<issuer>``).
    via: str = Field(default="", sa_column_kwargs={"server_default": ""})
    # Salted digests of the rows the entry gave (parties, facility, claim,
    # petitioners, officers): see rrm.domain.subject. NULL before 0007.
    subject: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)


class DeadlineRow(RRMTable, table=True):
    """A dated duty opened by one event and closed by another."""

    __tablename__ = "rrm_deadline"
    # Queries ask for open deadlines due before an instant; the sweep asks for open
    # deadlines whose next action (an alert or the lapse) is due.
    __table_args__ = (
        sa.Index("ix_rrm_deadline_status_due_at", "status", "due_at"),
        sa.Index("ix_rrm_deadline_status_next_action_at", "status", "next_action_at"),
    )

    deadline_id: str = Field(primary_key=True)
    case_id: str = Field(index=True, foreign_key="rrm_case.case_id")
    key: str
    label: str
    status: str
    due_date: date
    due_at: datetime = Field(sa_type=UTCDateTime)
    anchor_event: str
    anchor_at: datetime = Field(sa_type=UTCDateTime)
    counting: str
    days: int | None
    calendar_id: str
    timezone: str
    actor: str
    citation: str
    evidence: str
    explanation: str
    opened_seq: int
    opened_at: datetime = Field(sa_type=UTCDateTime)
    closed_seq: int | None
    closed_at: datetime | None = Field(sa_type=UTCDateTime)
    paused_at: datetime | None = Field(sa_type=UTCDateTime)
    extensions: int
    lapsed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    alerts_through: datetime | None = Field(default=None, sa_type=UTCDateTime)
    next_action_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class AlertRow(RRMTable, table=True):
    """The alert outbox: one row per deadline, alert step and recipient.

    Rows are written in the transaction that finds them owed, and sent after it
    commits; the unique key makes a second sweep over the same step harmless.
    """

    __tablename__ = "rrm_alert"
    __table_args__ = (
        sa.UniqueConstraint("deadline_id", "step", "recipient_id"),
        sa.Index("ix_rrm_alert_status_next_attempt_at", "status", "next_attempt_at"),
    )

    alert_id: str = Field(primary_key=True)
    deadline_id: str = Field(index=True)
    # No foreign key: an officer's daily digest spans cases ("" here).
    case_id: str = Field(index=True)
    step: str
    kind: str
    recipient_id: str = Field(index=True)
    recipient_email: str
    recipient_role: str
    language: str
    timezone: str
    owed_at: datetime = Field(sa_type=UTCDateTime)
    created_at: datetime = Field(sa_type=UTCDateTime)
    late: bool
    status: str
    attempts: int
    next_attempt_at: datetime | None = Field(sa_type=UTCDateTime)
    last_error: str
    sent_at: datetime | None = Field(sa_type=UTCDateTime)
    claimed_until: datetime | None = Field(sa_type=UTCDateTime)
    acknowledged_at: datetime | None = Field(sa_type=UTCDateTime)
    acknowledged_by: str | None
    # The worker (``rrm_worker``) that holds, or last held, the claim.
    claimed_by: str | None = None


class WorkerRow(RRMTable, table=True):
    """A delivering worker's heartbeat: claims of a worker not seen lately are free.

    A worker renews ``last_seen`` every few seconds while it holds claims; the
    claims of one whose heartbeat is older than the threshold (or gone) may be
    taken over before their lease runs out.
    """

    __tablename__ = "rrm_worker"

    worker_id: str = Field(primary_key=True)
    started_at: datetime = Field(sa_type=UTCDateTime)
    last_seen: datetime = Field(sa_type=UTCDateTime)


class DamageRow(RRMTable, table=True):
    """The damage register: cases whose rows the last verification found wrong.

    No foreign key: a case row deleted behind the engine's back is damage too.
    """

    __tablename__ = "rrm_damage"

    case_id: str = Field(primary_key=True)
    found_at: datetime = Field(sa_type=UTCDateTime)
    field: str
    problems: list[str] = Field(sa_type=sa.JSON)
    fingerprint: str


class DeterminationRow(RRMTable, table=True):
    """A denial-of-rights determination, counted to detect repeat facilities."""

    __tablename__ = "rrm_determination"

    case_id: str = Field(primary_key=True, foreign_key="rrm_case.case_id")
    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    facility_id: str = Field(index=True)
    owner: str = Field(index=True)
    determined_at: datetime = Field(sa_type=UTCDateTime)


class ApiTokenRow(RRMTable, table=True):
    """An API token of the case service; only the secret's SHA-256 is stored."""

    __tablename__ = "rrm_api_token"

    token_id: str = Field(primary_key=True)
    principal: str = Field(index=True)
    roles: list[str] = Field(sa_type=sa.JSON)
    agencies: list[str] = Field(sa_type=sa.JSON)
    secret_hash: str
    label: str
    created_at: datetime = Field(sa_type=UTCDateTime)
    created_by: str
    expires_at: datetime | None = Field(sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(sa_type=UTCDateTime)


class WebhookSubscriptionRow(RRMTable, table=True):
    """A webhook subscription: where to send which domain events, signed how."""

    __tablename__ = "rrm_webhook_subscription"

    subscription_id: str = Field(primary_key=True)
    url: str
    event_types: list[str] = Field(sa_type=sa.JSON)
    # The signing secret must be kept to sign; it is never returned after creation.
    secret: str
    description: str
    created_at: datetime = Field(sa_type=UTCDateTime)
    created_by: str
    disabled_at: datetime | None = Field(sa_type=UTCDateTime)


class WebhookDeliveryRow(RRMTable, table=True):
    """The webhook outbox: one message per subscription and domain event.

    Rows are written in the transaction of the change they report; the
    ``delivery_id`` is the ``webhook-id`` every attempt carries.
    """

    __tablename__ = "rrm_webhook_delivery"
    __table_args__ = (
        sa.Index(
            "ix_rrm_webhook_delivery_status_next_attempt_at",
            "status",
            "next_attempt_at",
        ),
    )

    delivery_id: str = Field(primary_key=True)
    subscription_id: str = Field(index=True)
    event_type: str
    case_id: str = Field(index=True)
    seq: int
    payload: dict[str, Any] = Field(sa_type=sa.JSON)
    created_at: datetime = Field(sa_type=UTCDateTime)
    status: str
    attempts: int
    next_attempt_at: datetime | None = Field(sa_type=UTCDateTime)
    claimed_until: datetime | None = Field(sa_type=UTCDateTime)
    last_error: str
    last_status: int | None
    delivered_at: datetime | None = Field(sa_type=UTCDateTime)


class CalendarFeedRow(RRMTable, table=True):
    """A secret calendar feed of one officer's deadlines; revocable."""

    __tablename__ = "rrm_calendar_feed"

    feed_id: str = Field(primary_key=True)
    officer_id: str = Field(index=True)
    secret_hash: str
    created_at: datetime = Field(sa_type=UTCDateTime)
    created_by: str
    revoked_at: datetime | None = Field(sa_type=UTCDateTime)


class ConsoleSessionRow(RRMTable, table=True):
    """A signed-in console session; only its secret's SHA-256 is stored."""

    __tablename__ = "rrm_console_session"

    session_id: str = Field(primary_key=True)
    secret_hash: str
    principal: str = Field(index=True)
    roles: list[str] = Field(sa_type=sa.JSON)
    agencies: list[str] = Field(sa_type=sa.JSON)
    via: str
    name: str
    token_id: str | None = None
    created_at: datetime = Field(sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    ended_at: datetime | None = Field(sa_type=UTCDateTime)


FACILITY: Final = metadata.tables["rrm_facility"]
CASE: Final = metadata.tables["rrm_case"]
PETITIONER: Final = metadata.tables["rrm_petitioner"]
CASE_OFFICER: Final = metadata.tables["rrm_case_officer"]
CASE_EVENT: Final = metadata.tables["rrm_case_event"]
DEADLINE: Final = metadata.tables["rrm_deadline"]
DETERMINATION: Final = metadata.tables["rrm_determination"]
DAMAGE: Final = metadata.tables["rrm_damage"]
ALERT: Final = metadata.tables["rrm_alert"]
WORKER: Final = metadata.tables["rrm_worker"]
API_TOKEN: Final = metadata.tables["rrm_api_token"]
WEBHOOK_SUBSCRIPTION: Final = metadata.tables["rrm_webhook_subscription"]
WEBHOOK_DELIVERY: Final = metadata.tables["rrm_webhook_delivery"]
CALENDAR_FEED: Final = metadata.tables["rrm_calendar_feed"]
CONSOLE_SESSION: Final = metadata.tables["rrm_console_session"]
