"""Datastores: Azure Blob containers a workspace reads and writes (docs/datastores.md); a stored
account key or SAS token sits in `secret`, encrypted with the workspace's key file."""

import sqlalchemy as sa
from alembic import op

revision, down_revision = "0004_datastores", "0003_environments"  # no branch labels, no dependencies


def upgrade() -> None:
    op.create_table("datastores",
                    sa.Column("name", sa.String(255), primary_key=True),
                    sa.Column("type", sa.String(32), nullable=False),
                    sa.Column("spec", sa.JSON, nullable=False),
                    sa.Column("secret", sa.Text, nullable=True),
                    sa.Column("created_at", sa.String(32), nullable=False),
                    sa.Column("updated_at", sa.String(32), nullable=False))


def downgrade() -> None:
    op.drop_table("datastores")
