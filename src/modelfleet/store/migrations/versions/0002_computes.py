"""Computes: Ray clusters that endpoints run on."""

import sqlalchemy as sa
from alembic import op

revision = "0002_computes"
down_revision = "0001_initial"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "computes",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("address", sa.String(256), nullable=False),
        sa.Column("owned", sa.Boolean, nullable=False),
        sa.Column("auth_token", sa.String(256), nullable=True),
        sa.Column("temp_dir", sa.String(256), nullable=True),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("updated_at", sa.String(32), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("computes")
