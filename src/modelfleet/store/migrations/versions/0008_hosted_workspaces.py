"""The workspaces a server hosts besides its own: one row each, in the primary workspace's store."""

import sqlalchemy as sa
from alembic import op

revision = "0008_hosted_workspaces"
down_revision = "0007_servers"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hosted_workspaces",
        sa.Column("name", sa.String(33), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("hosted_workspaces")
