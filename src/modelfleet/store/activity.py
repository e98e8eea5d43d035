"""The activity log: every change (who, when, what, on what, from where, how it ended), appended
and never rewritten. The only SQL for it."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import sqlalchemy as sa

from .db import Database
from .schema import activity_log


@dataclass(frozen=True)
class Activity:
    at: str
    caller: str
    operation: str        # the Azure action: Microsoft.MachineLearningServices/workspaces/models/write
    resource: str         # models/iris/versions/3
    status: str           # Succeeded | Failed
    http_status: int
    client: str
    correlation_id: str
    message: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


class ActivityStore:
    def __init__(self, db: Database):
        self.db = db

    def append(self, entry: Activity) -> None:
        with self.db.write() as conn:
            conn.execute(activity_log.insert().values(**entry.to_dict()))

    def list(self, *, since: str | None = None, caller: str | None = None, limit: int = 1000) -> list[Activity]:
        """Newest last; `since` an ISO time (entries at or after it)."""
        q = sa.select(activity_log).order_by(activity_log.c.id.desc()).limit(limit)
        if since is not None:
            q = q.where(activity_log.c.at >= since)
        if caller is not None:
            q = q.where(activity_log.c.caller == caller)
        with self.db.read() as conn:
            rows = conn.execute(q).all()
        return [Activity(**{k: v for k, v in r._asdict().items() if k != "id"}) for r in reversed(rows)]
