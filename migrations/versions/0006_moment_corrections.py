"""moments.corrected_at / corrected_by_id: a researcher's correction of a frozen blind moment

Revision ID: 0006
Revises: 0007
Create Date: 2026-11-30 01:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("moments") as batch:
        batch.add_column(sa.Column("corrected_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("corrected_by_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            batch.f("fk_moments_corrected_by_id_users"),
            "users",
            ["corrected_by_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table("moments") as batch:
        batch.drop_constraint(batch.f("fk_moments_corrected_by_id_users"), type_="foreignkey")
        batch.drop_column("corrected_by_id")
        batch.drop_column("corrected_at")
