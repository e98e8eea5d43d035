"""The serving replicas that every server of a workspace can reach (Ray actors): where each one
listens and its secret, written by the leader whenever a deployment's serving group changes, read
by the followers (their gateways connect to them) and by a new leader (it adopts them). The only
SQL for them. A replica only one server can reach (a local process) has no row."""

from __future__ import annotations

import sqlalchemy as sa

from .db import Database, utcnow
from .leases import Fence, check_fence
from .schema import replicas


class ReplicaStore:
    def __init__(self, db: Database):
        self.db = db

    def set_serving(self, endpoint: str, deployment: str, rows: list[dict], fence: Fence | None) -> None:
        """The deployment's serving replicas are now `rows` (id, spec_hash, compute, address),
        in one transaction under the leader's lease."""
        now = utcnow()
        with self.db.write() as conn:
            check_fence(conn, fence)
            conn.execute(replicas.delete().where(replicas.c.endpoint == endpoint, replicas.c.deployment == deployment))
            if rows:
                conn.execute(replicas.insert(), [{**r, "endpoint": endpoint, "deployment": deployment,
                                                  "created_at": now} for r in rows])

    def all(self) -> list[dict]:
        with self.db.read() as conn:
            return [r._asdict() for r in conn.execute(sa.select(replicas).order_by(replicas.c.id))]
