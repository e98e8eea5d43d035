"""The servers of a workspace (one a line, with its heartbeat), the controller's lease, and the
serving replicas every server's gateway can reach (Ray actors: address and secret)."""

import sqlalchemy as sa
from alembic import op

revision = "0007_servers"
down_revision = "0006_identities"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "servers",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("url", sa.String(512), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("heartbeat_at", sa.Float, nullable=False),
    )
    op.create_table(
        "leases",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("holder", sa.String(36), nullable=False),
        sa.Column("epoch", sa.BigInteger, nullable=False),
        sa.Column("since", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )

    op.create_table(
        "replicas",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("endpoint", sa.String(32), nullable=False),
        sa.Column("deployment", sa.String(32), nullable=False),
        sa.Column("spec_hash", sa.String(64), nullable=False),
        sa.Column("compute", sa.String(64), nullable=False),
        sa.Column("address", sa.JSON, nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Index("ix_replicas_endpoint_deployment", "endpoint", "deployment"),
    )


def downgrade() -> None:
    op.drop_table("replicas")
    op.drop_table("leases")
    op.drop_table("servers")
