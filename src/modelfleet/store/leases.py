"""The servers of a workspace and the controller's lease: the only SQL for them.

Every server has a row (where it answers, its host and pid, its last heartbeat). One lease row
says which server runs the controller, until when, and its epoch: a number that grows by one at
each new holder. The controller's writes carry the epoch they were decided under (a `Fence`), and
the store refuses them inside their own transaction when the lease has moved on or lapsed, so a
server that paused (a stop-the-world, a partition) cannot act after another took over.

Times come from the database's clock, the one clock every server shares.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import sqlalchemy as sa

from ..domain.errors import LeaseLost
from .db import Database
from .schema import leases, servers

CONTROLLER = "controller"


@dataclass(frozen=True)
class Lease:
    holder: str
    epoch: int
    since: float
    expires_at: float


@dataclass(frozen=True)
class Fence:
    """What a controller's write carries: the lease it acts under."""
    epoch: int
    name: str = CONTROLLER


def decide(current: Lease | None, me: str, now: float, duration_s: float) -> Lease | None:
    """The lease once `me` asked for it at `now`: renewed (mine and running), taken (nobody's, or
    lapsed: the epoch grows), or None (another server holds it)."""
    if current is None:
        return Lease(me, 1, now, now + duration_s)
    if current.expires_at > now:
        if current.holder != me:
            return None
        return Lease(me, current.epoch, current.since, now + duration_s)
    return Lease(me, current.epoch + 1, now, now + duration_s)   # a lapse ends a term, even my own


def db_now(conn: sa.Connection) -> float:
    """The database's clock, in seconds since the epoch."""
    if conn.dialect.name == "postgresql":
        return float(conn.exec_driver_sql("SELECT extract(epoch from clock_timestamp())").scalar())
    return float(conn.exec_driver_sql("SELECT (julianday('now') - 2440587.5) * 86400.0").scalar())


def _lease(conn: sa.Connection, name: str) -> Lease | None:
    row = conn.execute(sa.select(leases).where(leases.c.name == name)).first()
    return None if row is None else Lease(row.holder, row.epoch, row.since, row.expires_at)


def check_fence(conn: sa.Connection, fence: Fence | None) -> None:
    """Inside a write transaction: refuse it unless `fence`'s lease is still the one running."""
    if fence is None:
        return
    lease = _lease(conn, fence.name)
    if lease is None or lease.epoch != fence.epoch or lease.expires_at <= db_now(conn):
        now_at = "nobody holds it" if lease is None else f"it is at epoch {lease.epoch}"
        raise LeaseLost(f"the {fence.name} lease of epoch {fence.epoch} has ended ({now_at}): "
                        "this server no longer runs the controller")


class LeaseStore:
    def __init__(self, db: Database):
        self.db = db

    def register(self, server_id: str, url: str, host: str, pid: int) -> None:
        with self.db.write(notify=False) as conn:
            now = db_now(conn)
            # SQLite serves one server (its workspace's lock): earlier rows are dead servers'
            stale = servers.c.id == server_id if self.db.is_postgresql else sa.true()
            conn.execute(servers.delete().where(stale))
            conn.execute(servers.insert().values(id=server_id, url=url, host=host, pid=pid, started_at=now,
                                                 heartbeat_at=now))

    def claim(self, server_id: str, duration_s: float, name: str = CONTROLLER) -> Lease | None:
        """Heartbeat `server_id` and ask for the lease: the lease if it is now this server's, else
        None. One short transaction; it sends no change notice (nothing desired changed)."""
        with self.db.write(notify=False) as conn:
            now = db_now(conn)
            conn.execute(servers.update().where(servers.c.id == server_id).values(heartbeat_at=now))
            current = _lease(conn, name)
            if current is not None and current.holder != server_id and not self.db.is_postgresql:
                # SQLite serves one server at a time (its workspace's lock says so): a lease held
                # by another is a dead server's, and the one alive need not wait for it to end.
                current = dataclasses.replace(current, expires_at=now)
            lease = decide(current, server_id, now, duration_s)
            if lease is None:
                return None
            values = dict(holder=lease.holder, epoch=lease.epoch, since=lease.since, expires_at=lease.expires_at)
            if current is None:
                conn.execute(leases.insert().values(name=name, **values))
            else:
                conn.execute(leases.update().where(leases.c.name == name).values(**values))
            return lease

    def release(self, server_id: str, name: str = CONTROLLER) -> None:
        """A server that stops cleanly: its row goes, and its lease lapses now, so that another
        takes over at its next look instead of when the lease would have ended."""
        with self.db.write(notify=False) as conn:
            now = db_now(conn)
            conn.execute(leases.update().where(leases.c.name == name, leases.c.holder == server_id)
                         .values(expires_at=now))
            conn.execute(servers.delete().where(servers.c.id == server_id))

    def others_alive(self, server_id: str, within_s: float) -> int:
        """How many other servers heartbeat within the last `within_s`."""
        with self.db.read() as conn:
            cutoff = db_now(conn) - within_s
            return conn.execute(sa.select(sa.func.count()).select_from(servers).where(
                servers.c.id != server_id, servers.c.heartbeat_at >= cutoff)).scalar()

    def servers(self, name: str = CONTROLLER) -> tuple[list[dict], Lease | None, float]:
        """Every server's row, the lease, and the database's clock now."""
        with self.db.read() as conn:
            rows = [r._asdict() for r in conn.execute(sa.select(servers).order_by(servers.c.started_at))]
            return rows, _lease(conn, name), db_now(conn)

    def forget(self, older_than_s: float) -> int:
        """Remove the rows of servers silent for longer than `older_than_s` (killed, never stopped)."""
        with self.db.write(notify=False) as conn:
            cutoff = db_now(conn) - older_than_s
            return conn.execute(servers.delete().where(servers.c.heartbeat_at < cutoff)).rowcount
