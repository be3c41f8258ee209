"""The officer console: server-side sign-in sessions, and an index for case lists.

Revision ID: 0005_console
Revises: 0004_service
Create Date: 2026-12-06 05:00:00+00:00

A console session is what a signed-in officer's browser holds: the cookie carries
its id and a 256-bit secret, and only the secret's SHA-256 is stored, with the
principal it proves. Signing out, or revoking the API token it was opened with,
ends it for every copy of the cookie.

A frozen snapshot: import only alembic.op and sqlalchemy, never rrm.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_console"
down_revision: str | Sequence[str] | None = "0004_service"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "rrm_console_session",
        sa.Column("session_id", sa.String(), nullable=False),
        sa.Column("secret_hash", sa.String(), nullable=False),
        sa.Column("principal", sa.String(), nullable=False),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column("agencies", sa.JSON(), nullable=False),
        sa.Column("via", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("token_id", sa.String(), nullable=True),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("expires_at", UTC_DATETIME, nullable=False),
        sa.Column("ended_at", UTC_DATETIME, nullable=True),
        sa.PrimaryKeyConstraint("session_id", name="pk_rrm_console_session"),
    )
    op.create_index(
        "ix_rrm_console_session_principal", "rrm_console_session", ["principal"]
    )
    # Case listings page by (opened_at, case_id), newest first.
    op.create_index(
        "ix_rrm_case_opened_at_case_id", "rrm_case", ["opened_at", "case_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_rrm_case_opened_at_case_id", "rrm_case")
    op.drop_index("ix_rrm_console_session_principal", "rrm_console_session")
    op.drop_table("rrm_console_session")
