"""Model monitoring: data assets, monitor schedules and their runs (docs/monitoring.md)."""

import sqlalchemy as sa
from alembic import op

revision, down_revision = "0005_monitoring", "0004_datastores"  # no branch labels, no dependencies


def upgrade() -> None:
    op.create_table(
        "data_assets",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("version", sa.String(64), primary_key=True),
        sa.Column("seq", sa.Integer, nullable=False, index=True),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("files", sa.JSON, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
    )
    op.create_table(
        "schedules",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("next_run_at", sa.String(32), nullable=True),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("updated_at", sa.String(32), nullable=False),
    )
    op.create_table(
        "monitor_runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("schedule", sa.String(64), sa.ForeignKey("schedules.name", ondelete="CASCADE"), nullable=False),
        sa.Column("started_at", sa.String(32), nullable=False),
        sa.Column("window_start", sa.String(32), nullable=False),
        sa.Column("window_end", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("results", sa.JSON, nullable=False),
    )
    op.create_index("ix_monitor_runs_schedule_id", "monitor_runs", ["schedule", "id"])


def downgrade() -> None:
    op.drop_table("monitor_runs")
    op.drop_table("schedules")
    op.drop_table("data_assets")
