"""The monitoring tables (data assets, schedules, monitor runs) and their migration, which
schema.py names in its list."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

data_assets = sa.Table(
    "data_assets", metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("version", sa.String(64), primary_key=True),
    sa.Column("seq", sa.Integer, nullable=False, index=True),
    sa.Column("type", sa.String(16), nullable=False),          # uri_file, uri_folder, mltable
    sa.Column("sha256", sa.String(64), nullable=True),         # None: collected data, by reference
    sa.Column("path", sa.Text, nullable=False),                # inside the snapshot, or the workspace
    sa.Column("files", sa.JSON, nullable=False),
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("tags", sa.JSON, nullable=False),
    sa.Column("created_at", sa.String(32), nullable=False),
)

schedules = sa.Table(
    "schedules", metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("spec", sa.JSON, nullable=False),                # the monitor schedule document
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("next_run_at", sa.String(32), nullable=True),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("updated_at", sa.String(32), nullable=False),
)

monitor_runs = sa.Table(
    "monitor_runs", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("schedule", sa.String(64), sa.ForeignKey("schedules.name", ondelete="CASCADE"), nullable=False),
    sa.Column("started_at", sa.String(32), nullable=False),
    sa.Column("window_start", sa.String(32), nullable=False),
    sa.Column("window_end", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),        # passed, breached, failed
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("results", sa.JSON, nullable=False),             # [{signal, feature, metric, value, threshold, passed}]
    sa.Index("ix_monitor_runs_schedule_id", "schedule", "id"),
)


def migrate(conn: sa.Connection) -> None:
    metadata.create_all(conn, tables=[data_assets, schedules, monitor_runs])
