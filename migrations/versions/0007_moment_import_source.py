"""moments.import_source: the file a moment was imported from ("csv:name.csv"), else null

Revision ID: 0007
Revises: 0002
Create Date: 2026-11-30 01:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("moments") as batch:
        batch.add_column(sa.Column("import_source", sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("moments") as batch:
        batch.drop_column("import_source")
