"""Recall interview: audio aligned to stops, transcripts, consent records

Revision ID: 0018
Revises: 0016
Create Date: 2026-11-30 02:50:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "interview_audio",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("recall_session_id", sa.Integer(), nullable=False),
        sa.Column("storage_name", sa.String(length=80), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("format_name", sa.String(length=40), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["study_id"],
            ["studies.id"],
            ondelete="CASCADE",
            name=op.f("fk_interview_audio_study_id_studies"),
        ),
        sa.ForeignKeyConstraint(
            ["recall_session_id"],
            ["recall_sessions.id"],
            ondelete="CASCADE",
            name=op.f("fk_interview_audio_recall_session_id_recall_sessions"),
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["users.id"],
            ondelete="SET NULL",
            name=op.f("fk_interview_audio_created_by_id_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_interview_audio")),
        sa.UniqueConstraint("recall_session_id", name=op.f("uq_interview_audio_recall_session_id")),
    )
    op.create_index("ix_interview_audio_study_id", "interview_audio", ["study_id"])
    op.create_table(
        "interview_utterances",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("recall_session_id", sa.Integer(), nullable=False),
        sa.Column("moment_id", sa.Integer(), nullable=True),
        sa.Column("start_ms", sa.Integer(), nullable=False),
        sa.Column("end_ms", sa.Integer(), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["study_id"],
            ["studies.id"],
            ondelete="CASCADE",
            name=op.f("fk_interview_utterances_study_id_studies"),
        ),
        sa.ForeignKeyConstraint(
            ["recall_session_id"],
            ["recall_sessions.id"],
            ondelete="CASCADE",
            name=op.f("fk_interview_utterances_recall_session_id_recall_sessions"),
        ),
        sa.ForeignKeyConstraint(
            ["moment_id"],
            ["moments.id"],
            ondelete="CASCADE",
            name=op.f("fk_interview_utterances_moment_id_moments"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_interview_utterances")),
    )
    for col in ("study_id", "recall_session_id", "moment_id"):
        op.create_index(f"ix_interview_utterances_{col}", "interview_utterances", [col])
    op.create_table(
        "consent_records",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("participant_id", sa.Integer(), nullable=False),
        sa.Column("sheet_version", sa.String(length=40), nullable=False),
        sa.Column("consented_on", sa.Date(), nullable=False),
        sa.Column("recorded_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["study_id"],
            ["studies.id"],
            ondelete="CASCADE",
            name=op.f("fk_consent_records_study_id_studies"),
        ),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participants.id"],
            ondelete="CASCADE",
            name=op.f("fk_consent_records_participant_id_participants"),
        ),
        sa.ForeignKeyConstraint(
            ["recorded_by_id"],
            ["users.id"],
            ondelete="SET NULL",
            name=op.f("fk_consent_records_recorded_by_id_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_records")),
    )
    op.create_index("ix_consent_records_study_id", "consent_records", ["study_id"])
    op.create_index("ix_consent_records_participant_id", "consent_records", ["participant_id"])


def downgrade() -> None:
    op.drop_table("consent_records")
    op.drop_table("interview_utterances")
    op.drop_table("interview_audio")
