"""Case schedule stamp: rrm_case.schedule_seq.

Revision ID: 0003_schedule_seq
Revises: 0002_alerts
Create Date: 2026-11-21 10:30:00+00:00

The deadline sweep stores alert bookkeeping without adding a history entry, so
the case version alone cannot tell a reader that its copy of the deadlines is
stale. The sweep increments this stamp instead; a cached copy is reused only
while both the version and the stamp match the row.

A frozen snapshot: import only alembic.op and sqlalchemy, never rrm.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_schedule_seq"
down_revision: str | Sequence[str] | None = "0002_alerts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("rrm_case") as batch:
        batch.add_column(
            sa.Column("schedule_seq", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("rrm_case") as batch:
        batch.drop_column("schedule_seq")
