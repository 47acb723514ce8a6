"""The interviewer's prompt sheet per study and the answers captured at each stop

Revision ID: 0021
Revises: 0022
Create Date: 2026-11-30 04:15:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("studies", sa.Column("prompt_sheet", sa.JSON(), nullable=True))
    op.create_table(
        "prompt_answers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("moment_id", sa.Integer(), nullable=False),
        sa.Column("prompt_key", sa.String(length=40), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("answered_at", sa.DateTime(), nullable=False),
        sa.Column("by_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["study_id"],
            ["studies.id"],
            ondelete="CASCADE",
            name=op.f("fk_prompt_answers_study_id_studies"),
        ),
        sa.ForeignKeyConstraint(
            ["moment_id"],
            ["moments.id"],
            ondelete="CASCADE",
            name=op.f("fk_prompt_answers_moment_id_moments"),
        ),
        sa.ForeignKeyConstraint(
            ["by_id"], ["users.id"], ondelete="SET NULL", name=op.f("fk_prompt_answers_by_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prompt_answers")),
        sa.UniqueConstraint("moment_id", "prompt_key", name=op.f("uq_prompt_answers_moment_id")),
    )
    op.create_index("ix_prompt_answers_study_id", "prompt_answers", ["study_id"])
    op.create_index("ix_prompt_answers_moment_id", "prompt_answers", ["moment_id"])


def downgrade() -> None:
    op.drop_table("prompt_answers")
    op.drop_column("studies", "prompt_sheet")
