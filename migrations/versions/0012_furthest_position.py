"""The furthest point a participant watched, kept apart from where they last were

Revision ID: 0012
Revises: 0003
Create Date: 2026-11-30 02:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("recall_sessions") as batch_op:
        batch_op.add_column(
            sa.Column("furthest_ms", sa.Integer(), server_default="0", nullable=False)
        )
    # Until now only the last position was kept: the best known lower bound of the furthest.
    op.execute("UPDATE recall_sessions SET furthest_ms = last_position_ms")


def downgrade() -> None:
    with op.batch_alter_table("recall_sessions") as batch_op:
        batch_op.drop_column("furthest_ms")
