"""Integrity: entries seal what they gave (rrm_case_event.subject); rrm_damage.

Revision ID: 0007_integrity
Revises: 0006_worker_heartbeat
Create Date: 2026-12-06 22:30:00+00:00

The entry that opens a case, and each officer assignment, carries salted
digests of the parties, facility, claim, petitioners (with their confidential
flag) and officers (with their e-mail addresses) it gave, hashed with the
entry, so ``rrm audit verify`` can name a row changed behind the engine's back.
Entries written before this revision have none (NULL) and keep their hashes.

``rrm_damage`` is the damage register: the cases whose stored rows the last
verification found not to match their history. Reads name them and the
deadline sweep skips them until a verification finds them whole again.

A frozen snapshot: import only alembic.op and sqlalchemy, never rrm.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_integrity"
down_revision: str | Sequence[str] | None = "0006_worker_heartbeat"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("rrm_case_event") as batch:
        batch.add_column(sa.Column("subject", sa.JSON(), nullable=True))
    op.create_table(
        "rrm_damage",
        sa.Column("case_id", sa.String(), nullable=False),
        sa.Column("found_at", UTC_DATETIME, nullable=False),
        sa.Column("field", sa.String(), nullable=False),
        sa.Column("problems", sa.JSON(), nullable=False),
        sa.Column("fingerprint", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("case_id", name="pk_rrm_damage"),
    )


def downgrade() -> None:
    op.drop_table("rrm_damage")
    with op.batch_alter_table("rrm_case_event") as batch:
        batch.drop_column("subject")
