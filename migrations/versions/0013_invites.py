"""Invitations panel and study texts per language

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30 02:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("studies") as batch_op:
        batch_op.add_column(sa.Column("languages", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("texts", sa.JSON(), nullable=True))
    with op.batch_alter_table("codes") as batch_op:
        batch_op.add_column(sa.Column("translations", sa.JSON(), nullable=True))
    with op.batch_alter_table("rating_scales") as batch_op:
        batch_op.add_column(sa.Column("translations", sa.JSON(), nullable=True))
    with op.batch_alter_table("participants") as batch_op:
        batch_op.add_column(sa.Column("language", sa.String(length=8), nullable=True))
    with op.batch_alter_table("recall_sessions") as batch_op:
        batch_op.add_column(sa.Column("last_seen_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("paused_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("recall_sessions") as batch_op:
        batch_op.drop_column("paused_at")
        batch_op.drop_column("last_seen_at")
    with op.batch_alter_table("participants") as batch_op:
        batch_op.drop_column("language")
    with op.batch_alter_table("rating_scales") as batch_op:
        batch_op.drop_column("translations")
    with op.batch_alter_table("codes") as batch_op:
        batch_op.drop_column("translations")
    with op.batch_alter_table("studies") as batch_op:
        batch_op.drop_column("texts")
        batch_op.drop_column("languages")
