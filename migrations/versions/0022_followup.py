"""Follow-up pass: study setting, scheduled follow-ups, follow-up ratings beside moments

Revision ID: 0022
Revises: 0018
Create Date: 2026-11-30 04:05:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("studies", sa.Column("followup", sa.JSON(), nullable=True))
    op.create_table(
        "followups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("recall_session_id", sa.Integer(), nullable=False),
        sa.Column("due_at", sa.DateTime(), nullable=False),
        sa.Column("opened_at", sa.DateTime(), nullable=True),
        sa.Column("done_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["study_id"],
            ["studies.id"],
            ondelete="CASCADE",
            name=op.f("fk_followups_study_id_studies"),
        ),
        sa.ForeignKeyConstraint(
            ["recall_session_id"],
            ["recall_sessions.id"],
            ondelete="CASCADE",
            name=op.f("fk_followups_recall_session_id_recall_sessions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_followups")),
        sa.UniqueConstraint("recall_session_id", name=op.f("uq_followups_recall_session_id")),
    )
    op.create_index("ix_followups_study_id", "followups", ["study_id"])
    op.create_table(
        "followup_ratings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("followup_id", sa.Integer(), nullable=False),
        sa.Column("moment_id", sa.Integer(), nullable=False),
        sa.Column("ratings", sa.JSON(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["study_id"],
            ["studies.id"],
            ondelete="CASCADE",
            name=op.f("fk_followup_ratings_study_id_studies"),
        ),
        sa.ForeignKeyConstraint(
            ["followup_id"],
            ["followups.id"],
            ondelete="CASCADE",
            name=op.f("fk_followup_ratings_followup_id_followups"),
        ),
        sa.ForeignKeyConstraint(
            ["moment_id"],
            ["moments.id"],
            ondelete="CASCADE",
            name=op.f("fk_followup_ratings_moment_id_moments"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_followup_ratings")),
        sa.UniqueConstraint("moment_id", name=op.f("uq_followup_ratings_moment_id")),
    )
    op.create_index("ix_followup_ratings_study_id", "followup_ratings", ["study_id"])
    op.create_index("ix_followup_ratings_followup_id", "followup_ratings", ["followup_id"])


def downgrade() -> None:
    op.drop_table("followup_ratings")
    op.drop_table("followups")
    op.drop_column("studies", "followup")
