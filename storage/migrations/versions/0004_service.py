"""The case service: API tokens, webhooks, calendar feeds, and ``via`` on history.

Revision ID: 0004_service
Revises: 0003_schedule_seq
Create Date: 2026-12-06 03:00:00+00:00

``rrm_case_event.via`` records the credential that proved the actor of a change
made through the case service. API tokens and calendar feeds store only the
SHA-256 of their secrets; webhook subscriptions keep their signing secret (it is
needed to sign) and deliveries form an outbox written with the change.

A frozen snapshot: import only alembic.op and sqlalchemy, never rrm.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_service"
down_revision: str | Sequence[str] | None = "0003_schedule_seq"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("rrm_case_event") as batch:
        batch.add_column(
            sa.Column("via", sa.String(), nullable=False, server_default="")
        )
    op.create_table(
        "rrm_api_token",
        sa.Column("token_id", sa.String(), nullable=False),
        sa.Column("principal", sa.String(), nullable=False),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column("agencies", sa.JSON(), nullable=False),
        sa.Column("secret_hash", sa.String(), nullable=False),
        sa.Column("label", sa.String(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("created_by", sa.String(), nullable=False),
        sa.Column("expires_at", UTC_DATETIME, nullable=True),
        sa.Column("revoked_at", UTC_DATETIME, nullable=True),
        sa.PrimaryKeyConstraint("token_id", name="pk_rrm_api_token"),
    )
    op.create_index("ix_rrm_api_token_principal", "rrm_api_token", ["principal"])
    op.create_table(
        "rrm_webhook_subscription",
        sa.Column("subscription_id", sa.String(), nullable=False),
        sa.Column("url", sa.String(), nullable=False),
        sa.Column("event_types", sa.JSON(), nullable=False),
        sa.Column("secret", sa.String(), nullable=False),
        sa.Column("description", sa.String(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("created_by", sa.String(), nullable=False),
        sa.Column("disabled_at", UTC_DATETIME, nullable=True),
        sa.PrimaryKeyConstraint("subscription_id", name="pk_rrm_webhook_subscription"),
    )
    op.create_table(
        "rrm_webhook_delivery",
        sa.Column("delivery_id", sa.String(), nullable=False),
        sa.Column("subscription_id", sa.String(), nullable=False),
        sa.Column("event_type", sa.String(), nullable=False),
        sa.Column("case_id", sa.String(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTC_DATETIME, nullable=True),
        sa.Column("claimed_until", UTC_DATETIME, nullable=True),
        sa.Column("last_error", sa.String(), nullable=False),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("delivered_at", UTC_DATETIME, nullable=True),
        sa.PrimaryKeyConstraint("delivery_id", name="pk_rrm_webhook_delivery"),
    )
    op.create_index(
        "ix_rrm_webhook_delivery_subscription_id",
        "rrm_webhook_delivery",
        ["subscription_id"],
    )
    op.create_index(
        "ix_rrm_webhook_delivery_case_id", "rrm_webhook_delivery", ["case_id"]
    )
    op.create_index(
        "ix_rrm_webhook_delivery_status_next_attempt_at",
        "rrm_webhook_delivery",
        ["status", "next_attempt_at"],
    )
    op.create_table(
        "rrm_calendar_feed",
        sa.Column("feed_id", sa.String(), nullable=False),
        sa.Column("officer_id", sa.String(), nullable=False),
        sa.Column("secret_hash", sa.String(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("created_by", sa.String(), nullable=False),
        sa.Column("revoked_at", UTC_DATETIME, nullable=True),
        sa.PrimaryKeyConstraint("feed_id", name="pk_rrm_calendar_feed"),
    )
    op.create_index(
        "ix_rrm_calendar_feed_officer_id", "rrm_calendar_feed", ["officer_id"]
    )


def downgrade() -> None:
    op.drop_table("rrm_calendar_feed")
    op.drop_table("rrm_webhook_delivery")
    op.drop_table("rrm_webhook_subscription")
    op.drop_table("rrm_api_token")
    with op.batch_alter_table("rrm_case_event") as batch:
        batch.drop_column("via")
