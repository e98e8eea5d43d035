"""Compute targets in the control API (`fleet.computes`): create starts a Ray cluster on the
server's machine, attach records one that runs elsewhere; list, show, detach, delete.

    GET    /api/computes              POST /api/computes         (create)
    GET    /api/computes/{name}       POST /api/computes/attach
    DELETE /api/computes/{name}       POST /api/computes/{name}/detach

Starting and stopping clusters and asking one for its health are subprocesses: they run in
worker threads, never on the event loop the gateway shares.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from ...backends.ray import cluster as ray_cluster
from ...assets.computes import check_compute_name, check_type, view
from ...domain.errors import AlreadyExists, Conflict, InvalidInput


class CreateBody(BaseModel):
    name: str
    type: str = "ray"
    num_cpus: Any = None   # checked by hand: the error names the value as given


class AttachBody(BaseModel):
    name: str
    address: str
    type: str = "ray"
    auth_token: str | None = None


def add_routes(app: FastAPI, store, logs_dir: Path, deps: list) -> None:
    @app.get("/api/computes", dependencies=deps)
    async def list_computes() -> list[dict]:
        return [view(r) for r in await asyncio.to_thread(store.list)]

    @app.get("/api/computes/{name}", dependencies=deps)
    async def show(name: str, timeout: float = ray_cluster.STATUS_TIMEOUT) -> dict:
        """The compute, its endpoints, and how its cluster is now: nodes, CPUs, memory, health."""
        row = await asyncio.to_thread(store.get, name)
        timeout = min(max(timeout, 0.1), 120.0) if math.isfinite(timeout) else ray_cluster.STATUS_TIMEOUT
        health = await asyncio.to_thread(ray_cluster.status, row["address"], row["auth_token"], timeout=timeout)
        return {**view(row), "endpoints": await asyncio.to_thread(store.users, name),
                **{k: health[k] for k in ("healthy", "error", "cpus", "memory_bytes", "nodes")}}

    @app.post("/api/computes", dependencies=deps)
    async def create(body: CreateBody) -> dict:
        """Start a Ray cluster on this machine (127.0.0.1, token auth) that the workspace owns."""
        return await asyncio.to_thread(_create, store, logs_dir, body)

    @app.post("/api/computes/attach", dependencies=deps)
    async def attach(body: AttachBody) -> dict:
        """Record a Ray cluster that runs elsewhere; nothing is started, and detach leaves it running."""
        check_compute_name(body.name)
        check_type(body.type)
        ray_cluster.split_address(body.address)
        return view(await asyncio.to_thread(store.create, body.name, type=body.type, address=body.address.strip(),
                                            owned=False, auth_token=body.auth_token or None))

    @app.post("/api/computes/{name}/detach", dependencies=deps)
    async def detach(name: str) -> dict:
        """Forget an attached cluster; it keeps running. Endpoints on it stay, and report the
        fault until a compute of that name is attached again (then they serve with no command)."""
        row = await asyncio.to_thread(store.get, name)
        if row["owned"]:
            raise Conflict(f"compute {name!r} was created by modelfleet: stop and remove it with "
                           f"`fleet compute delete --name {name}`")
        users = await asyncio.to_thread(store.users, name)
        removed = await asyncio.to_thread(store.delete, name, unless_used=False)
        return {**view(removed), "endpoints": users}

    @app.delete("/api/computes/{name}", dependencies=deps)
    async def delete(name: str) -> dict:
        """Stop an owned cluster's processes and remove it; refused while an endpoint uses it."""
        row = await asyncio.to_thread(store.get, name)
        if not row["owned"]:
            raise Conflict(f"compute {name!r} is attached, not created by modelfleet: "
                           f"forget it with `fleet compute detach --name {name}`")
        await asyncio.to_thread(store.check_unused, name)  # before stopping anything; the delete checks again
        stopped = await asyncio.to_thread(ray_cluster.stop_local, row["temp_dir"])
        await asyncio.to_thread(store.delete, name)
        return {**view(row), "stopped_pids": stopped}


def _create(store, logs_dir: Path, body: CreateBody) -> dict:
    check_compute_name(body.name)
    check_type(body.type)
    n = body.num_cpus
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise InvalidInput(f"num_cpus {n!r}: use a whole number of at least 1")
    if any(r["name"] == body.name for r in store.list()):  # before starting anything
        raise AlreadyExists(f"compute {body.name!r} already exists")
    ray_cluster.require_ray(f"compute type {body.type!r}")
    started = ray_cluster.start_local(body.name, logs_dir / "computes", body.num_cpus)
    try:
        row = store.create(body.name, type=body.type, address=started["address"], owned=True,
                           auth_token=started["auth_token"], temp_dir=started["temp_dir"],
                           spec={"num_cpus": body.num_cpus})
    except BaseException:
        ray_cluster.stop_local(started["temp_dir"])  # created twice at once: keep no orphan
        raise
    return view(row)



