"""The tables, as queries see them. How each came to be is in migrations/versions/ (Alembic),
which must end where this file is: tests compare the two."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

models = sa.Table(
    "models", metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("version", sa.String(64), primary_key=True),
    sa.Column("seq", sa.Integer, nullable=False, index=True),   # registration order, for @latest
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("type", sa.String(16), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("files", sa.JSON, nullable=False),
    sa.Column("tags", sa.JSON, nullable=False),
    sa.Column("archived", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", sa.String(32), nullable=False),
)

sa.Index("ix_models_name_seq", models.c.name, models.c.seq)

model_labels = sa.Table(
    "model_labels", metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("label", sa.String(64), primary_key=True),
    sa.Column("version", sa.String(64), nullable=False),
    sa.ForeignKeyConstraint(["name", "version"], ["models.name", "models.version"], ondelete="CASCADE"),
)

endpoints = sa.Table(
    "endpoints", metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("spec", sa.JSON, nullable=False),          # description, tags, auth_mode, compute
    sa.Column("traffic", sa.JSON, nullable=False),       # {deployment: percent}
    sa.Column("mirror_traffic", sa.JSON, nullable=False),
    sa.Column("primary_key", sa.String(128), nullable=False),
    sa.Column("secondary_key", sa.String(128), nullable=False),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("updated_at", sa.String(32), nullable=False),
)

deployments = sa.Table(
    "deployments", metadata,
    sa.Column("endpoint", sa.String(32), sa.ForeignKey("endpoints.name", ondelete="CASCADE"), primary_key=True),
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("spec", sa.JSON, nullable=False),          # desired state
    sa.Column("spec_hash", sa.String(64), nullable=False),
    sa.Column("active_spec", sa.JSON, nullable=True),         # what replicas serve now
    sa.Column("active_hash", sa.String(64), nullable=True),
    sa.Column("failed_hash", sa.String(64), nullable=True),   # last spec that failed (not retried)
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("updated_at", sa.String(32), nullable=False),
)

computes = sa.Table(
    "computes", metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("type", sa.String(16), nullable=False),         # ray
    sa.Column("address", sa.String(256), nullable=False),     # host:port of the cluster's GCS
    sa.Column("owned", sa.Boolean, nullable=False),           # started (and stopped) by modelfleet
    sa.Column("auth_token", sa.String(256), nullable=True),   # the cluster's token, when it has one
    sa.Column("temp_dir", sa.String(256), nullable=True),     # an owned cluster's Ray directory
    sa.Column("spec", sa.JSON, nullable=False),               # what it was created with (num_cpus)
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("updated_at", sa.String(32), nullable=False),
)


environments = sa.Table(
    "environments", metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("version", sa.String(64), primary_key=True),
    sa.Column("seq", sa.Integer, nullable=False, index=True),   # creation order, for @latest
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("tags", sa.JSON, nullable=False),
    sa.Column("image", sa.String(512), nullable=True),          # Azure's base image: kept, not used
    sa.Column("content", sa.JSON, nullable=False),              # requirements, index options, python pin
    sa.Column("sha256", sa.String(64), nullable=False),         # of the content
    sa.Column("source", sa.JSON, nullable=False),               # what it was read from (a conda document)
    sa.Column("lock", sa.JSON, nullable=True),                  # its resolution, made by its first build
    sa.Column("archived", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", sa.String(32), nullable=False),
)


datastores = sa.Table(
    "datastores", metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("type", sa.String(32), nullable=False),          # azure_blob
    sa.Column("spec", sa.JSON, nullable=False),                # the document, stored secrets left out
    sa.Column("secret", sa.Text, nullable=True),               # its account key or SAS token, encrypted (Fernet)
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("updated_at", sa.String(32), nullable=False),
)

# -- who may do what, and what they did (docs/security.md) -----------------------------------------

principals = sa.Table(
    "principals", metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(24), nullable=False),             # user | service_principal
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("created_by", sa.String(64), nullable=False),
)

tokens = sa.Table(
    "tokens", metadata,
    sa.Column("hash", sa.String(64), primary_key=True),           # sha256 of the token; the token is never kept
    sa.Column("principal", sa.String(64), sa.ForeignKey("principals.name", ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("expires_at", sa.String(32), nullable=True),        # None: until revoked
    sa.Column("last_used_at", sa.String(32), nullable=True),
    sa.UniqueConstraint("principal", "name", name="uq_tokens_principal_name"),
)

role_assignments = sa.Table(
    "role_assignments", metadata,
    sa.Column("id", sa.String(36), primary_key=True),             # Azure's assignment name: a UUID
    sa.Column("principal", sa.String(64), sa.ForeignKey("principals.name", ondelete="CASCADE"), nullable=False),
    sa.Column("role", sa.String(64), nullable=False),
    sa.Column("scope", sa.String(256), nullable=False),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("created_by", sa.String(64), nullable=False),
    sa.UniqueConstraint("principal", "role", "scope", name="uq_role_assignments"),
)

activity_log = sa.Table(
    "activity_log", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.String(32), nullable=False, index=True),
    sa.Column("caller", sa.String(64), nullable=False, index=True),
    sa.Column("operation", sa.String(256), nullable=False),       # the Azure action, e.g. .../models/write
    sa.Column("resource", sa.String(256), nullable=False),        # what it acted on: models/iris/versions/3
    sa.Column("status", sa.String(16), nullable=False),           # Succeeded | Failed
    sa.Column("http_status", sa.Integer, nullable=False),
    sa.Column("client", sa.String(64), nullable=False),           # the caller's address
    sa.Column("correlation_id", sa.String(64), nullable=False),   # the request id of the access log
    sa.Column("message", sa.Text, nullable=True),                 # a failure's one line
)


# -- several servers on one workspace (docs/production.md) -----------------------------------------

servers = sa.Table(
    "servers", metadata,
    sa.Column("id", sa.String(36), primary_key=True),             # a UUID per server process
    sa.Column("url", sa.String(512), nullable=False),             # where its API and gateway answer
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("started_at", sa.Float, nullable=False),            # the database's clock, epoch seconds
    sa.Column("heartbeat_at", sa.Float, nullable=False),
)

leases = sa.Table(
    "leases", metadata,
    sa.Column("name", sa.String(32), primary_key=True),           # controller
    sa.Column("holder", sa.String(36), nullable=False),           # a servers.id
    sa.Column("epoch", sa.BigInteger, nullable=False),            # the fencing token: +1 at each new holder
    sa.Column("since", sa.Float, nullable=False),                 # when the holder took it
    sa.Column("expires_at", sa.Float, nullable=False),
)

replicas = sa.Table(
    "replicas", metadata,
    sa.Column("id", sa.String(128), primary_key=True),            # the replica id (a Ray actor's name)
    sa.Column("endpoint", sa.String(32), nullable=False),
    sa.Column("deployment", sa.String(32), nullable=False),
    sa.Column("spec_hash", sa.String(64), nullable=False),        # what it runs
    sa.Column("compute", sa.String(64), nullable=False),
    sa.Column("address", sa.JSON, nullable=False),                # host, port, pid, node, its secret
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Index("ix_replicas_endpoint_deployment", "endpoint", "deployment"),
)

# The workspaces a server hosts besides its own (docs/workspaces.md): rows in the primary's store only.
hosted_workspaces = sa.Table(
    "hosted_workspaces", metadata,
    sa.Column("name", sa.String(33), primary_key=True),
    sa.Column("state", sa.String(16), nullable=False),            # creating, ready, deleting
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
)

# What the running servers keep for themselves, not part of a workspace: `workspace migrate` copies
# none of it, and a database holding only these rows holds no workspace.
SERVER_STATE = (servers, leases, replicas, hosted_workspaces)

# -- model monitoring (docs/monitoring.md) ---------------------------------------------------

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
