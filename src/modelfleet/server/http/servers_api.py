"""`GET /api/servers`: the servers of this workspace, which one leads and since when (`fleet server list`)."""

from __future__ import annotations

import asyncio
import datetime as dt

from fastapi import Depends, FastAPI

from ...store.leases import Lease, LeaseStore

# A server silent for this many lease durations is shown as unresponsive (killed, or cut off from
# the database); one silent for an hour is forgotten.
UNRESPONSIVE_AFTER_LEASES = 2
FORGET_AFTER_S = 3600.0


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def server_view(row: dict, lease: Lease | None, now: float, duration_s: float) -> dict:
    leads = lease is not None and lease.holder == row["id"] and lease.expires_at > now
    silent = now - row["heartbeat_at"]
    role = "leader" if leads else "unresponsive" if silent > UNRESPONSIVE_AFTER_LEASES * duration_s else "follower"
    return {"id": row["id"], "url": row["url"], "host": row["host"], "pid": row["pid"], "role": role,
            "since": _iso(lease.since if leads else row["started_at"]), "started_at": _iso(row["started_at"]),
            "last_heartbeat": _iso(row["heartbeat_at"]), "heartbeat_age_s": round(max(0.0, silent), 1),
            **({"epoch": lease.epoch} if leads else {})}


def add_routes(api: FastAPI, servers: LeaseStore, duration_s: float) -> None:
    deps = [Depends(api.state.admin)]

    @api.get("/api/servers", dependencies=deps)
    async def list_servers() -> list[dict]:
        """Every server of the workspace: where it answers, its host and pid, leader or follower
        (and since when), its last heartbeat."""
        await asyncio.to_thread(servers.forget, FORGET_AFTER_S)
        rows, lease, now = await asyncio.to_thread(servers.servers)
        return [server_view(r, lease, now, duration_s) for r in rows]
