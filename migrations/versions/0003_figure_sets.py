"""figure_sets (stored figures per recording and parameter set) and recordings.figures_version

Revision ID: 0003
Revises: 0011
Create Date: 2026-11-30 01:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("recordings") as batch:
        batch.add_column(
            sa.Column("figures_version", sa.Integer(), server_default="0", nullable=False)
        )
    op.create_table(
        "figure_sets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("recording_id", sa.Integer(), nullable=False),
        sa.Column("params_key", sa.String(length=64), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("moments_version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("app_version", sa.String(length=40), nullable=False),
        sa.Column("requested_at", sa.DateTime(), nullable=False),
        sa.Column("computed_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["recording_id"],
            ["recordings.id"],
            name=op.f("fk_figure_sets_recording_id_recordings"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["study_id"],
            ["studies.id"],
            name=op.f("fk_figure_sets_study_id_studies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_figure_sets")),
        sa.UniqueConstraint("recording_id", "params_key", name=op.f("uq_figure_sets_recording_id")),
    )
    with op.batch_alter_table("figure_sets") as batch:
        batch.create_index(batch.f("ix_figure_sets_recording_id"), ["recording_id"], unique=False)
        batch.create_index(batch.f("ix_figure_sets_study_id"), ["study_id"], unique=False)


def downgrade() -> None:
    op.drop_table("figure_sets")
    with op.batch_alter_table("recordings") as batch:
        batch.drop_column("figures_version")
