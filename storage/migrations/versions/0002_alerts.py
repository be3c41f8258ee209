"""Alert outbox and deadline scheduling: rrm_alert, deadline lapse and next action.

Revision ID: 0002_alerts
Revises: 0001_initial
Create Date: 2026-11-21 08:00:00+00:00

A frozen snapshot: import only alembic.op and sqlalchemy, never rrm.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_alerts"
down_revision: str | Sequence[str] | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("rrm_deadline") as batch:
        batch.add_column(sa.Column("lapsed_at", UTC_DATETIME, nullable=True))
        batch.add_column(sa.Column("alerts_through", UTC_DATETIME, nullable=True))
        batch.add_column(sa.Column("next_action_at", UTC_DATETIME, nullable=True))
        batch.create_index(
            "ix_rrm_deadline_status_next_action_at", ["status", "next_action_at"]
        )
    with op.batch_alter_table("rrm_case_officer") as batch:
        batch.add_column(
            sa.Column("timezone", sa.String(), nullable=False, server_default="")
        )
    op.create_table(
        "rrm_alert",
        sa.Column("alert_id", sa.String(), nullable=False),
        sa.Column("deadline_id", sa.String(), nullable=False),
        sa.Column("case_id", sa.String(), nullable=False),
        sa.Column("step", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("recipient_id", sa.String(), nullable=False),
        sa.Column("recipient_email", sa.String(), nullable=False),
        sa.Column("recipient_role", sa.String(), nullable=False),
        sa.Column("language", sa.String(), nullable=False),
        sa.Column("timezone", sa.String(), nullable=False),
        sa.Column("owed_at", UTC_DATETIME, nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("late", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTC_DATETIME, nullable=True),
        sa.Column("last_error", sa.String(), nullable=False),
        sa.Column("sent_at", UTC_DATETIME, nullable=True),
        sa.Column("claimed_until", UTC_DATETIME, nullable=True),
        sa.Column("acknowledged_at", UTC_DATETIME, nullable=True),
        sa.Column("acknowledged_by", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("alert_id", name="pk_rrm_alert"),
        sa.UniqueConstraint(
            "deadline_id",
            "step",
            "recipient_id",
            name="uq_rrm_alert_deadline_id_step_recipient_id",
        ),
    )
    op.create_index("ix_rrm_alert_case_id", "rrm_alert", ["case_id"])
    op.create_index("ix_rrm_alert_deadline_id", "rrm_alert", ["deadline_id"])
    op.create_index("ix_rrm_alert_recipient_id", "rrm_alert", ["recipient_id"])
    op.create_index(
        "ix_rrm_alert_status_next_attempt_at",
        "rrm_alert",
        ["status", "next_attempt_at"],
    )


def downgrade() -> None:
    op.drop_table("rrm_alert")
    with op.batch_alter_table("rrm_case_officer") as batch:
        batch.drop_column("timezone")
    with op.batch_alter_table("rrm_deadline") as batch:
        batch.drop_index("ix_rrm_deadline_status_next_action_at")
        batch.drop_column("next_action_at")
        batch.drop_column("alerts_through")
        batch.drop_column("lapsed_at")
