"""moments.phase: blind (before the reveal) or response (after it)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 01:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("moments") as batch:
        batch.add_column(
            sa.Column("phase", sa.String(length=16), server_default="blind", nullable=False)
        )
    # Moments written after their recording's reveal are the response phase.
    op.execute(
        "UPDATE moments SET phase = 'response' WHERE responds_to_id IS NOT NULL OR "
        "created_at >= (SELECT r.revealed_at FROM recall_sessions s JOIN recordings r "
        "ON r.id = s.recording_id WHERE s.id = moments.recall_session_id)"
    )


def downgrade() -> None:
    with op.batch_alter_table("moments") as batch:
        batch.drop_column("phase")
