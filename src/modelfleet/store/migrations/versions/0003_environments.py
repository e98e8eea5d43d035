"""Environments: versioned package sets built with uv."""

import sqlalchemy as sa
from alembic import op

revision = "0003_environments"
down_revision = "0002_computes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "environments",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("version", sa.String(64), primary_key=True),
        sa.Column("seq", sa.Integer, nullable=False, index=True),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("image", sa.String(512), nullable=True),
        sa.Column("content", sa.JSON, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("source", sa.JSON, nullable=False),
        sa.Column("lock", sa.JSON, nullable=True),
        sa.Column("archived", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("environments")
