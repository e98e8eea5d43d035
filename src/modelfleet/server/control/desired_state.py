"""The desired state as the controller reads it: endpoints, deployments and computes from the
store, read again only after something was committed (SQLite's `data_version`, on a connection of
the controller's own), each deployment's row turned into a typed `Desired` once per change."""

from __future__ import annotations

import asyncio
import logging

from ...schema.wire import DeploymentRecord
from .reconciler import Desired, Key
from .stores import Stores

log = logging.getLogger("modelfleet.controller")


class DesiredState:
    def __init__(self, stores: Stores):
        self._serving, self._computes_store, self._replicas = stores.serving, stores.computes, stores.replicas
        self._changes = stores.db.watch()     # rows are read again only after a commit
        self.endpoints: list[dict] = []
        self.rows: list[dict] = []            # deployments as last read
        self.computes: dict[str, str] = {}    # endpoint -> compute its replicas run on
        self.attached: set[str] = set()       # computes the workspace has now
        self.replica_rows: list[dict] = []    # serving replicas every server reaches (Ray), as last read
        self._spec_cache: dict[Key, tuple[dict, DeploymentRecord, Desired]] = {}   # row, its spec, Desired
        self._unreadable: set[Key] = set()    # rows whose spec failed validation (said once each)

    async def read(self) -> bool:
        """Read the rows again if something was committed since the last read; whether it did."""
        fresh = await asyncio.to_thread(self._changes.changed)
        if fresh:
            try:
                self.endpoints = await asyncio.to_thread(self._serving.endpoints)
                self.rows = await asyncio.to_thread(self._serving.deployments)
                if any((ep["spec"].get("compute") or "local") != "local" for ep in self.endpoints):
                    self.attached = {c["name"] for c in await asyncio.to_thread(self._computes_store.list)}
                    self.replica_rows = await asyncio.to_thread(self._replicas.all)
                else:
                    self.replica_rows = []
            except BaseException:
                self._changes.forget()
                raise
            self.computes = {ep["name"]: ep["spec"].get("compute") or "local" for ep in self.endpoints}
        return fresh

    def compute_of(self, endpoint: str) -> str:
        return self.computes.get(endpoint, "local")

    def desired(self) -> tuple[dict[Key, Desired], set[Key]]:
        """Every deployment as typed values, and those whose spec this server cannot read (said
        once each; one such row never stops the others)."""
        desired, unreadable = {}, set()
        for r in self.rows:
            key = (r["endpoint"], r["name"])
            try:
                desired[key] = self._desired(r)
            except ValueError as e:
                unreadable.add(key)
                if key not in self._unreadable:
                    log.error("deployment %s/%s has a spec this server cannot read; left as it runs: %s", *key, e)
        self._unreadable = unreadable
        return desired, unreadable

    def _desired(self, row: dict) -> Desired:
        """The row as typed values, made again only when the row was read again, and its spec
        validated again only when it changed."""
        key = (row["endpoint"], row["name"])
        cached = self._spec_cache.get(key)
        if cached is not None and cached[0] is row:
            return cached[2]
        if cached is None or cached[0]["spec"] != row["spec"]:
            spec = DeploymentRecord.model_validate(row["spec"])
        else:
            spec = cached[1]
        want = Desired(spec, row["spec_hash"], row["active_hash"], row["failed_hash"], row["state"],
                       spec.instance_count)
        self._spec_cache[key] = (row, spec, want)
        return want

    def forget(self, key: Key) -> None:
        """A retired deployment's cached spec."""
        self._spec_cache.pop(key, None)

    def close(self) -> None:
        self._changes.close()
