"""Worker heartbeats: rrm_worker, and the worker holding each alert's claim.

Revision ID: 0006_worker_heartbeat
Revises: 0005_console
Create Date: 2026-12-06 20:30:00+00:00

A delivering worker renews its row in ``rrm_worker`` every few seconds while it
holds claims, and each claimed alert names its worker (``rrm_alert.claimed_by``).
Claims of a worker whose heartbeat is older than a threshold, or gone, may be
taken over at once instead of waiting out their lease. Alerts claimed before
this revision have no worker and free themselves when their lease ends.

A frozen snapshot: import only alembic.op and sqlalchemy, never rrm.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_worker_heartbeat"
down_revision: str | Sequence[str] | None = "0005_console"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "rrm_worker",
        sa.Column("worker_id", sa.String(), nullable=False),
        sa.Column("started_at", UTC_DATETIME, nullable=False),
        sa.Column("last_seen", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("worker_id", name="pk_rrm_worker"),
    )
    with op.batch_alter_table("rrm_alert") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("rrm_alert") as batch:
        batch.drop_column("claimed_by")
    op.drop_table("rrm_worker")
