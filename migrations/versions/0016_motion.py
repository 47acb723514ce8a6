"""motion: a study's motion-energy and synchrony settings (threshold, smoothing, window, lag,
step, surrogates, seed) and its default regions, as one JSON column

Revision ID: 0016
Revises: 0013
Create Date: 2026-11-30 02:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("studies", sa.Column("motion_settings", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("studies", "motion_settings")
