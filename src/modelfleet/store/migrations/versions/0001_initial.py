"""Models, their labels, endpoints and deployments."""

import sqlalchemy as sa
from alembic import op

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("version", sa.String(64), primary_key=True),
        sa.Column("seq", sa.Integer, nullable=False, index=True),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("files", sa.JSON, nullable=False),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("archived", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
    )
    op.create_index("ix_models_name_seq", "models", ["name", "seq"])
    op.create_table(
        "model_labels",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("label", sa.String(64), primary_key=True),
        sa.Column("version", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(["name", "version"], ["models.name", "models.version"], ondelete="CASCADE"),
    )
    op.create_table(
        "endpoints",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("traffic", sa.JSON, nullable=False),
        sa.Column("mirror_traffic", sa.JSON, nullable=False),
        sa.Column("primary_key", sa.String(128), nullable=False),
        sa.Column("secondary_key", sa.String(128), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("updated_at", sa.String(32), nullable=False),
    )
    op.create_table(
        "deployments",
        sa.Column("endpoint", sa.String(32), sa.ForeignKey("endpoints.name", ondelete="CASCADE"), primary_key=True),
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("spec_hash", sa.String(64), nullable=False),
        sa.Column("active_spec", sa.JSON, nullable=True),
        sa.Column("active_hash", sa.String(64), nullable=True),
        sa.Column("failed_hash", sa.String(64), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("updated_at", sa.String(32), nullable=False),
    )


def downgrade() -> None:
    for table in ("deployments", "endpoints", "model_labels", "models"):
        op.drop_table(table)
