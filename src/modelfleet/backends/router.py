"""One Backend for the controller that sends each replica to the backend of its endpoint's compute:
`local` (a process of its own, or a shared multi-model worker for `placement: shared`), or a Ray
compute by name (one RayBackend, and one agent process, per compute in use; always dedicated)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Callable

from ..domain.errors import DeploymentFailed, FleetError
from .base import ReplicaHandle, ReplicaSpec
from .local.backend import LocalBackend
from .shared.pool import SharedPool

log = logging.getLogger("modelfleet.backends")

# compute name -> its row ({"type", "address", "auth_token", ...}) or None when unknown
Lookup = Callable[[str], "dict | None"]


class ComputeBackends:
    name = "compute"

    def __init__(self, local: LocalBackend, lookup: Lookup, logs_dir: Path, namespace: str,
                 shared: SharedPool | None = None):
        self.local = local
        self.shared = shared or SharedPool(local, logs_dir / "shared")
        self.lookup = lookup
        self.logs_dir = logs_dir
        self.namespace = namespace
        self.ray: dict[str, object] = {}   # compute name -> RayBackend
        self.adopted: dict[str, set[str]] | None = None   # see adopt(): None until this server leads

    async def warm(self) -> None:
        await self.local.warm()

    async def start(self, spec: ReplicaSpec) -> ReplicaHandle:
        if spec.compute == "local":
            if spec.placement == "shared":
                return await self.shared.start(spec)
            return await self.local.start(spec)
        return await (await self._backend(spec.compute)).start(spec)

    async def connect(self, spec: ReplicaSpec, address: dict) -> ReplicaHandle:
        """This server's connection to a replica another server started (its row's `address`)."""
        return await (await self._backend(spec.compute)).connect(spec, address)

    async def adopt(self, replica_ids: dict[str, set[str]] | None) -> None:
        """This server now leads and serves these replicas (by compute) as its own: its first agent
        on each compute removes the actors of earlier servers but these. None: it follows, and
        removes nothing."""
        self.adopted = replica_ids
        for name in {*self.ray, *(replica_ids or {})}:
            try:
                backend = self.ray.get(name) or await self._backend(name)
                await backend.adopt(None if replica_ids is None else replica_ids.get(name, set()))
            except FleetError as e:   # a compute gone or unreachable: its agent removes nothing now
                log.warning("compute %s: %s", name, e.message)

    async def _backend(self, name: str):
        from .ray.cluster import require_ray
        from .ray.backend import RayBackend
        row = await asyncio.to_thread(self.lookup, name)
        if row is None:
            raise DeploymentFailed(f"compute {name!r} is not attached to this workspace "
                                   f"(fleet compute attach --name {name} ...)")
        if row.get("type", "ray") != "ray":
            raise DeploymentFailed(f"compute {name!r} is of type {row.get('type')!r}; this server runs local and ray")
        try:
            require_ray(f"compute {name!r}")
        except FleetError as e:
            raise DeploymentFailed(e.message) from None
        backend = self.ray.get(name)
        if backend is not None and (backend.address, backend.auth_token) != (row["address"], row.get("auth_token")):
            await backend.shutdown()  # re-attached elsewhere: a new driver for the new address
            backend = None
        if backend is None:
            keep = None if self.adopted is None else frozenset(self.adopted.get(name, ()))
            backend = self.ray[name] = RayBackend(name, row["address"], row.get("auth_token"), self.namespace,
                                                  self.logs_dir, keep)
        return backend

    def release(self, python: Path) -> None:
        """An environment's build is going away: its local zygote may stop."""
        self.local.release(python)

    def fault(self, compute: str) -> str | None:
        """Why a compute cannot be used now, if its last use failed."""
        backend = self.ray.get(compute)
        return backend.fault(compute) if backend is not None else None

    async def shutdown(self) -> None:
        await self.shared.shutdown()
        await self.local.shutdown()
        await asyncio.gather(*(b.shutdown() for b in self.ray.values()), return_exceptions=True)
