"""Serving replicas every server of a workspace reaches (Ray actors), through the store.

The leader writes each deployment's serving replicas that other servers can reach (their
`address()`: host, port, secret) whenever that set changes, in one transaction under its lease:
the same moment its own gateway switches (store/replicas.py). A follower turns the rows into
connections of its own gateway, so that a request reaching any server is served; a replica whose
row goes is let go (not stopped: it is the leader's). When a follower becomes the leader, the
connections it holds are the replicas it adopts: nothing is restarted.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Callable

from ...backends.base import ReplicaSpec
from ...store.replicas import ReplicaStore
from .clock import Clock
from .deployment_state import DeploymentRuntime
from .reconciler import Key
from .replicas import Listener, Replica, ReplicaState as S, Roster, transition

log = logging.getLogger("modelfleet.controller")

CONNECT_TIMEOUT_S = 5.0   # a replica that does not answer by then is tried again after as long


def reachable(rt: DeploymentRuntime) -> list[Replica]:
    """`rt`'s ready replicas that other servers can reach."""
    return [r for r in rt.group if r.state is S.READY and r.handle.address() is not None]


class ReplicaRows:
    def __init__(self, store: ReplicaStore, backend, clock: Clock, logs_dir: Path, listeners: list[Listener],
                 roster: Roster, runtimes: dict[Key, DeploymentRuntime], publish: Callable[[str], None],
                 compute_of: Callable[[str], str]):
        self._store, self._backend, self._clock, self._logs_dir = store, backend, clock, logs_dir
        self._compute_of = compute_of   # an endpoint's compute, as the rows read last say
        self._listeners, self._roster, self._runtimes, self._publish = listeners, roster, runtimes, publish
        self._written: dict[Key, frozenset[str]] = {}   # what the store holds for each deployment
        self._failed: dict[str, float] = {}              # replica id -> when a connection last failed

    # -- the leader's side -------------------------------------------------------------------

    def changes(self) -> list[tuple[DeploymentRuntime, list[dict]]]:
        """The deployments whose reachable serving replicas differ from the rows, with their rows now."""
        out = []
        for key in set(self._written) | set(self._runtimes):
            rt = self._runtimes.get(key)
            serving = reachable(rt) if rt is not None and not rt.retired else []
            ids = frozenset(r.id for r in serving)
            if ids != self._written.get(key, frozenset()):
                out.append((rt or DeploymentRuntime(*key), [
                    {"id": r.id, "spec_hash": rt.hash, "compute": self._compute_of(rt.endpoint),
                     "address": r.handle.address()} for r in serving]))
        return out

    async def write(self, fence) -> None:
        """Write every deployment whose reachable serving set changed (LeaseLost when the lease ended)."""
        for rt, rows in self.changes():
            await asyncio.to_thread(self._store.set_serving, rt.endpoint, rt.name, rows, fence)
            if rows:
                self._written[rt.key] = frozenset(r["id"] for r in rows)
            else:
                self._written.pop(rt.key, None)

    # -- the follower's side -----------------------------------------------------------------

    async def follow(self, rows: list[dict]) -> None:
        """Hold a connection to every replica in `rows` (and only those), as each deployment's group."""
        wanted: dict[Key, dict[str, dict]] = {}
        for row in rows:
            wanted.setdefault((row["endpoint"], row["deployment"]), {})[row["id"]] = row
        self._written = {k: frozenset(v) for k, v in wanted.items()}
        changed: set[str] = set()
        for key, rt in self._runtimes.items():
            rows_here = wanted.get(key, {})
            for r in list(rt.group):
                if r.handle.address() is not None and (r.id not in rows_here or r.handle.closed):
                    self._let_go(rt, r)
                    changed.add(rt.endpoint)
        connects = []
        for key, rows_here in wanted.items():
            rt = self._runtimes.get(key)
            if rt is None or rt.desired is None:
                continue
            have = {r.id for r in rt.group}
            for rid, row in rows_here.items():
                if rid not in have and self._clock.now() - self._failed.get(rid, -1e9) > CONNECT_TIMEOUT_S:
                    connects.append(self._connect(rt, row))
        for rt in await asyncio.gather(*connects):
            if rt is not None:
                changed.add(rt.endpoint)
        for endpoint in changed:
            self._publish(endpoint)

    async def _connect(self, rt: DeploymentRuntime, row: dict) -> DeploymentRuntime | None:
        spec = self._spec(rt, row)
        try:
            handle = await asyncio.wait_for(self._backend.connect(spec, row["address"]), CONNECT_TIMEOUT_S)
            await asyncio.wait_for(handle.ready(), CONNECT_TIMEOUT_S)
        except Exception as e:
            self._failed[row["id"]] = self._clock.now()
            log.warning("cannot reach replica %s of %s/%s: %s", row["id"], rt.endpoint, rt.name,
                        getattr(e, "message", None) or f"{type(e).__name__}: {e}")
            return None
        replica = Replica(handle, rt.endpoint, rt.name, self._clock.now(), self._listeners, roster=self._roster)
        transition(replica, S.READY, "reached through the store")
        if rt.hash != row["spec_hash"]:   # the leader switched to another version: so does routing here
            for old in [r for r in rt.group if r.handle.address() is not None]:
                self._let_go(rt, old)
            rt.hash = row["spec_hash"]
        rt.group = [*rt.group, replica]
        return rt

    def _let_go(self, rt: DeploymentRuntime, r: Replica) -> None:
        """Out of routing here; the connection closes once its requests are answered."""
        rt.group = [x for x in rt.group if x is not r]
        if r.state is S.READY:
            transition(r, S.DRAINING, "no longer serving (the leader's rows)")

        async def drain() -> None:
            deadline = self._clock.now() + 30.0
            while r.handle.unanswered and self._clock.now() < deadline:
                await self._clock.sleep(0.05)
            r.handle.disconnect()
            transition(r, S.STOPPED, "let go")
        asyncio.ensure_future(drain())

    def _spec(self, rt: DeploymentRuntime, row: dict) -> ReplicaSpec:
        """What this server needs to know to route to a replica another server started."""
        spec = rt.desired.spec
        return ReplicaSpec(endpoint=rt.endpoint, deployment=rt.name, replica_id=row["id"],
                           model_key=row["spec_hash"], model_type=spec.model_type, model_dir=Path("."),
                           model_sha256=spec.model_sha256, code_dir=None, code_sha256=None, scoring_script=None,
                           env={}, batching=spec.batching, resources=spec.resources,
                           log_path=self._logs_dir / rt.endpoint / rt.name / f"{row['id']}.log",
                           compute=row["compute"], placement="dedicated")

    def adopted(self) -> dict[str, set[str]]:
        """The replicas this server holds connections to, by compute: what it adopts when it leads."""
        out: dict[str, set[str]] = {}
        for rt in self._runtimes.values():
            for r in reachable(rt):
                out.setdefault(self._compute_of(rt.endpoint), set()).add(r.id)
        return out
