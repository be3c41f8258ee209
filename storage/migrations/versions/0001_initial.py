"""Create RRM's tables: facilities, cases, history, deadlines, determinations.

Revision ID: 0001_initial
Revises:
Create Date: 2025-01-06 15:00:00+00:00

A frozen snapshot: import only alembic.op and sqlalchemy, never rrm. Time stamps are
``DateTime(timezone=True)``; RRM's UTCDateTime column type is that type plus
UTC handling in Python, so the stored schema is the same.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001_initial"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "rrm_facility",
        sa.Column("facility_id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("owner", sa.String(), nullable=False),
        sa.Column("country", sa.String(), nullable=False),
        sa.Column("city", sa.String(), nullable=False),
        sa.Column("region", sa.String(), nullable=False),
        sa.Column("sector", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("facility_id", name="pk_rrm_facility"),
    )
    op.create_index("ix_rrm_facility_owner", "rrm_facility", ["owner"])

    op.create_table(
        "rrm_case",
        sa.Column("case_id", sa.String(), nullable=False),
        sa.Column("external_ref", sa.String(), nullable=False),
        sa.Column("workflow_id", sa.String(), nullable=False),
        sa.Column("workflow_version", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("complainant", sa.String(), nullable=False),
        sa.Column("respondent", sa.String(), nullable=False),
        sa.Column("initiation", sa.String(), nullable=False),
        sa.Column("facility_id", sa.String(), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("opened_at", UTC_DATETIME, nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.Column("last_event_at", UTC_DATETIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["facility_id"],
            ["rrm_facility.facility_id"],
            name="fk_rrm_case_facility_id_rrm_facility",
        ),
        sa.PrimaryKeyConstraint("case_id", name="pk_rrm_case"),
        sa.UniqueConstraint("external_ref", name="uq_rrm_case_external_ref"),
    )
    op.create_index("ix_rrm_case_state", "rrm_case", ["state"])
    op.create_index("ix_rrm_case_facility_id", "rrm_case", ["facility_id"])

    op.create_table(
        "rrm_petitioner",
        sa.Column("case_id", sa.String(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("confidential", sa.Boolean(), nullable=False),
        sa.Column("contact", sa.String(), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"], ["rrm_case.case_id"], name="fk_rrm_petitioner_case_id_rrm_case"
        ),
        sa.PrimaryKeyConstraint("case_id", "position", name="pk_rrm_petitioner"),
    )

    op.create_table(
        "rrm_case_officer",
        sa.Column("case_id", sa.String(), nullable=False),
        sa.Column("officer_id", sa.String(), nullable=False),
        sa.Column("role", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("email", sa.String(), nullable=False),
        sa.Column("language", sa.String(), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["rrm_case.case_id"],
            name="fk_rrm_case_officer_case_id_rrm_case",
        ),
        sa.PrimaryKeyConstraint(
            "case_id", "officer_id", "role", name="pk_rrm_case_officer"
        ),
    )
    op.create_index(
        "ix_rrm_case_officer_officer_id", "rrm_case_officer", ["officer_id"]
    )

    op.create_table(
        "rrm_case_event",
        sa.Column("case_id", sa.String(), nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("event", sa.String(), nullable=False),
        sa.Column("from_state", sa.String(), nullable=True),
        sa.Column("to_state", sa.String(), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("role", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("occurred_at", UTC_DATETIME, nullable=False),
        sa.Column("recorded_at", UTC_DATETIME, nullable=False),
        sa.Column("idempotency_key", sa.String(), nullable=True),
        sa.Column("prev_hash", sa.String(), nullable=False),
        sa.Column("hash", sa.String(), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"], ["rrm_case.case_id"], name="fk_rrm_case_event_case_id_rrm_case"
        ),
        sa.PrimaryKeyConstraint("case_id", "seq", name="pk_rrm_case_event"),
        sa.UniqueConstraint(
            "case_id",
            "idempotency_key",
            name="uq_rrm_case_event_case_id_idempotency_key",
        ),
    )

    op.create_table(
        "rrm_deadline",
        sa.Column("deadline_id", sa.String(), nullable=False),
        sa.Column("case_id", sa.String(), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("label", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("due_at", UTC_DATETIME, nullable=False),
        sa.Column("anchor_event", sa.String(), nullable=False),
        sa.Column("anchor_at", UTC_DATETIME, nullable=False),
        sa.Column("counting", sa.String(), nullable=False),
        sa.Column("days", sa.Integer(), nullable=True),
        sa.Column("calendar_id", sa.String(), nullable=False),
        sa.Column("timezone", sa.String(), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("citation", sa.String(), nullable=False),
        sa.Column("evidence", sa.String(), nullable=False),
        sa.Column("explanation", sa.String(), nullable=False),
        sa.Column("opened_seq", sa.Integer(), nullable=False),
        sa.Column("opened_at", UTC_DATETIME, nullable=False),
        sa.Column("closed_seq", sa.Integer(), nullable=True),
        sa.Column("closed_at", UTC_DATETIME, nullable=True),
        sa.Column("paused_at", UTC_DATETIME, nullable=True),
        sa.Column("extensions", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"], ["rrm_case.case_id"], name="fk_rrm_deadline_case_id_rrm_case"
        ),
        sa.PrimaryKeyConstraint("deadline_id", name="pk_rrm_deadline"),
    )
    op.create_index("ix_rrm_deadline_case_id", "rrm_deadline", ["case_id"])
    # The deadline sweep asks for open deadlines due before an instant.
    op.create_index(
        "ix_rrm_deadline_status_due_at", "rrm_deadline", ["status", "due_at"]
    )

    op.create_table(
        "rrm_determination",
        sa.Column("case_id", sa.String(), nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("facility_id", sa.String(), nullable=False),
        sa.Column("owner", sa.String(), nullable=False),
        sa.Column("determined_at", UTC_DATETIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["rrm_case.case_id"],
            name="fk_rrm_determination_case_id_rrm_case",
        ),
        sa.PrimaryKeyConstraint("case_id", "seq", name="pk_rrm_determination"),
    )
    op.create_index(
        "ix_rrm_determination_facility_id", "rrm_determination", ["facility_id"]
    )
    op.create_index("ix_rrm_determination_owner", "rrm_determination", ["owner"])


def downgrade() -> None:
    op.drop_table("rrm_determination")
    op.drop_table("rrm_deadline")
    op.drop_table("rrm_case_event")
    op.drop_table("rrm_case_officer")
    op.drop_table("rrm_petitioner")
    op.drop_table("rrm_case")
    op.drop_table("rrm_facility")
