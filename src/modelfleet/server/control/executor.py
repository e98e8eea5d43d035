"""Carries out the reconciler's steps for one deployment at a time: a rollout (start the new
group, wait until every replica is ready, switch routing in one publish, drain and stop the old
group; on failure stop the new one and record why), a scale, a retirement, and a lost replica's
replacement after a backoff. Model and code snapshots are checked against their sha256 the first
time this server uses them."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from pathlib import Path
from typing import Awaitable, Callable

from ...backends.base import Backend, DatastoreSource, InitFailed, ReplicaEnvironment, ReplicaSpec
from ...domain.errors import DeploymentFailed, FleetError, IntegrityError, LeaseLost
from ...files.digests import content_digest
from ...schema.wire import DeploymentRecord
from ...schema.workspace import Workspace
from ...store.leases import Fence
from . import spares
from .clock import Clock
from .deployment_state import HEALTHY_AFTER_S, DeploymentRuntime
from .node_sources import NodeSources
from .desired_state import DesiredState
from .publisher import RoutePublisher
from .reconciler import Desired
from .replicas import Listener, Replica, ReplicaState as S, Roster, transition
from .stores import Stores
from .supervisor import Supervisor

log = logging.getLogger("modelfleet.controller")

# Replicas other servers route to are stopped this long after the store says they no longer serve:
# a follower reads the change at its next pass (every FOLLOW_POLL_S) and drains its own requests.
FOLLOWERS_SWITCH_S = 2.0


class Executor:
    def __init__(self, ws: Workspace, stores: Stores, backend: Backend, clock: Clock, state: DesiredState,
                 publisher: RoutePublisher, spawn: Callable, poke: Callable[[], None],
                 step_one: Callable[[DeploymentRuntime], None], runtimes: dict, listeners: list[Listener],
                 roster: Roster, collection: Callable, fence: Callable[[], "Fence | None | bool"] = lambda: None,
                 share: Callable[[], Awaitable[None]] | None = None):
        self._ws, self._stores, self._backend, self._clock = ws, stores, backend, clock
        self._state, self._publisher = state, publisher
        self._spawn, self._poke, self._step_one, self._runtimes = spawn, poke, step_one, runtimes
        self._listeners, self._roster = listeners, roster
        self._collection = collection   # the controller's collection hub, as it is now (monitoring)
        self._fence = fence             # the lease this server acts under; False once it stopped leading
        self._share = share             # writes the serving replicas other servers reach (replica_rows.py)
        self.watching: dict[Replica, asyncio.Task] = {}   # the supervisor's watch of each serving replica
        self.supervisor = Supervisor(clock, self.lost)
        self._verified: set[str] = set()     # snapshots checked against their sha256 in this process
        self._sources = NodeSources(ws, stores)
        self._code_files: dict[str, list[dict]] = {}   # code snapshot -> its files, once hashed

    def backoff(self, rt: DeploymentRuntime) -> None:
        """Hold off the next step on `rt` (100 ms doubling to 30 s); a poke when it may go."""
        delay = rt.backoff(self._clock.now())
        # a millisecond late: the loop's clock moves in millisecond steps, and a pass in the same
        # millisecond as the hold's end may find itself a hair before it and wait a whole second
        self._clock.call_later(delay + 0.001, self._poke)

    # -- replicas ----------------------------------------------------------------------------

    def _replica_spec(self, rt: DeploymentRuntime, spec: DeploymentRecord, spec_hash: str, model_dir: Path,
                      code_dir: Path | None, environment: ReplicaEnvironment | None = None,
                      sources: tuple[DatastoreSource | None, DatastoreSource | None] = (None, None)) -> ReplicaSpec:
        rt.serial += 1
        fence = self._fence()
        # A later leader numbers its replicas under its epoch: names stay unique across leaders
        # (a Ray actor's name is its replica id, and an adopted one keeps its own).
        term = f"{fence.epoch}-" if fence and fence.epoch > 1 else ""
        # The endpoint is in the digest: the same deployment of the same model on two endpoints
        # must not share an id (a Ray actor's name is cluster-wide).
        tag = hashlib.sha256(f"{rt.endpoint}/{spec_hash}".encode()).hexdigest()[:6]
        rid = f"{rt.name}-{tag}-{term}{rt.serial}"
        code = spec.code
        return ReplicaSpec(endpoint=rt.endpoint, deployment=rt.name, replica_id=rid, model_key=spec_hash,
                           model_type=spec.model_type, model_dir=model_dir, model_sha256=spec.model_sha256,
                           code_dir=code_dir, code_sha256=code.sha256 if code else None,
                           scoring_script=code.scoring_script if code else None,
                           env=self._collection().replica_env(rt, spec), batching=spec.batching,
                           resources=spec.resources,
                           log_path=self._ws.logs_dir / rt.endpoint / rt.name / f"{rid}.log",
                           compute=self._state.compute_of(rt.endpoint), environment=environment,
                           placement=spec.effective_placement, fast_path=spec.fast_path,
                           model_source=sources[0], code_source=sources[1])

    async def _resolve(self, spec: DeploymentRecord, remote: bool) -> tuple[Path, Path | None, tuple]:
        """Model directory and code root, and for replicas on other nodes (`remote`) the datastore
        they read the model and code from themselves (then the server's copy of the model is not
        read: each node checks every blob against its sha256). Each snapshot the server reads is
        checked against its sha256 the first time it uses it (a restart after a crash does not
        re-hash)."""
        registry = self._stores.registry
        model = await asyncio.to_thread(registry.get, spec.model)
        source = await asyncio.to_thread(self._sources.model, model) if remote else None
        if source is not None:   # its name only: the nodes read the store, not this folder
            model_dir = self._stores.artifacts.snapshot_dir("models", model.sha256)
        else:
            verify = model.sha256 not in self._verified
            model_dir = await asyncio.to_thread(registry.path_of, model, verify)
            self._verified.add(model.sha256)
        code = spec.code
        if code is None:
            return model_dir, None, (source, None)
        root = self._stores.artifacts.snapshot_dir("code", code.sha256) / code.root
        if code.sha256 not in self._verified:
            found, self._code_files[code.sha256] = await asyncio.to_thread(content_digest, root)
            if found != code.sha256:
                raise IntegrityError(f"code snapshot {code.sha256[:12]} does not match its sha256 "
                                     "(its files were changed after the deployment was created)")
            self._verified.add(code.sha256)
        if not (root / code.scoring_script).is_file():
            raise DeploymentFailed(f"scoring script {code.scoring_script} is missing from the code snapshot")
        code_source = (await asyncio.to_thread(self._sources.code, code.sha256, self._code_files[code.sha256],
                                               code.root) if remote else None)
        return model_dir, root, (source, code_source)

    async def _environment(self, rt: DeploymentRuntime, spec: DeploymentRecord) -> ReplicaEnvironment | None:
        """The deployment's environment (built before its row was written; built again here only
        if it went missing); on a Ray compute, the pins Ray builds it from on each node."""
        if spec.environment is None:
            return None
        local = self._state.compute_of(rt.endpoint) == "local"
        return await asyncio.to_thread(self._stores.environments.for_replicas, spec.environment, build=local)

    def fence(self) -> Fence | None:
        """The lease to write under; LeaseLost once this server no longer leads."""
        fence = self._fence()
        if fence is False:
            raise LeaseLost("this server no longer runs the controller")
        return fence

    async def _start_group(self, rt: DeploymentRuntime, spec: DeploymentRecord, spec_hash: str,
                           count: int) -> list[Replica]:
        """Start `count` replicas and wait until all are ready; on any failure stop them all."""
        self.fence()   # only the leader starts replicas
        model_dir, code_dir, sources = await self._resolve(spec, self._state.compute_of(rt.endpoint) != "local")
        environment = await self._environment(rt, spec)
        probe = spec.readiness_probe
        timeout = probe.initial_delay + probe.period * probe.failure_threshold
        started: list[Replica] = []

        async def ready(r: Replica) -> None:
            try:
                await r.handle.ready()
            except InitFailed as e:
                transition(r, S.FAILED, str(e))
                raise DeploymentFailed(f"replica {r.id} {e}", detail=e.detail) from None

        try:
            for _ in range(count):
                handle = await self._backend.start(self._replica_spec(rt, spec, spec_hash, model_dir, code_dir,
                                                                      environment, sources))
                started.append(Replica(handle, rt.endpoint, rt.name, self._clock.now(), self._listeners,
                                       roster=self._roster))
            await self._clock.within(asyncio.gather(*(ready(r) for r in started)), timeout)
        except BaseException as e:
            await self.stop(started, 1.0)
            if isinstance(e, asyncio.TimeoutError):
                tails = await asyncio.gather(*(r.handle.log_tail(20) for r in started))
                raise DeploymentFailed(f"replicas of {rt.endpoint}/{rt.name} were not ready within {timeout}s",
                                       detail="\n".join(tails)) from None
            raise
        for r in started:
            transition(r, S.READY)
        return started

    def _serve(self, rt: DeploymentRuntime, new: list[Replica]) -> None:
        """Publish `rt.group` and start supervising the `new` replicas."""
        self._publisher.publish(rt.endpoint)
        for r in new:
            self.watch(rt, r)
        if self._share is not None and any(r.handle.address() is not None for r in new):
            self._spawn(self._share())   # the other servers' gateways route to them too

    def watch(self, rt: DeploymentRuntime, r: Replica) -> None:
        """Supervise `r` (a new replica, or one this server adopted as it took the lead)."""
        task = self.watching[r] = self._spawn(self.supervisor.watch(r, lambda: rt.spec))
        task.add_done_callback(lambda _: self.watching.pop(r, None))

    async def stop(self, replicas: list[Replica], grace_s: float) -> None:
        await asyncio.gather(*(r.handle.stop(grace_s) for r in replicas), return_exceptions=True)
        for r in replicas:
            transition(r, S.STOPPED)

    async def _drain_and_stop(self, rt: DeploymentRuntime, replicas: list[Replica]) -> None:
        for r in replicas:
            if r.state is S.READY:
                transition(r, S.DRAINING)
        if self._share is not None and any(r.handle.address() is not None for r in replicas):
            # other servers route to them too: tell them first, and give them time to switch
            await self._share()
            await self._clock.sleep(FOLLOWERS_SWITCH_S)
        timeout_s = rt.spec.request_settings.request_timeout_ms / 1000.0 if rt.spec else 5.0
        deadline = self._clock.now() + timeout_s + 1.0
        while any(r.handle.unanswered for r in replicas) and self._clock.now() < deadline:
            await self._clock.sleep(0.01)
        await self.stop(replicas, 5.0)

    def lost(self, r: Replica, code: int | None, why: str, hung: bool = False) -> None:
        """The supervisor saw a serving replica die, or is killing one whose call is stuck (`hung`):
        drop it, then restart after a backoff (short for a replica that served: a leak is not a
        crash loop; none for a hang). A spare, if one runs, takes its place instead."""
        rt = self._runtimes.get((r.endpoint, r.deployment))
        if rt is None:
            return
        rt.group = [x for x in rt.group if x is not r]
        self._publisher.publish(rt.endpoint)
        if hung or r.handle.answered or self._clock.now() - r.started_at > HEALTHY_AFTER_S:
            rt.failures = 0
        rt.restarts += 1
        rt.last_failure = why
        spares.stood_in(rt.spare)
        if hung:
            self._step_one(rt)   # its replacement starts while it is killed
        else:
            self.backoff(rt)     # then the reconcile scales the group back to instance_count

    # -- the steps ---------------------------------------------------------------------------

    async def scale(self, rt: DeploymentRuntime, want: int) -> None:
        try:
            have = len(rt.group)
            if have < want:
                try:
                    new = await self._start_group(rt, rt.spec, rt.hash, want - have)
                except Exception as e:  # an init that fails, or the OS refusing (EMFILE, EAGAIN, ENOMEM)
                    why = e.message if isinstance(e, FleetError) else f"{type(e).__name__}: {e}"
                    log.warning("could not start replicas of %s/%s: %s", rt.endpoint, rt.name, why)
                    rt.fault = why
                    self.backoff(rt)
                    return
                rt.fault = None
                if rt.retired:
                    await self._drain_and_stop(rt, new)
                    return
                rt.group = rt.group + new
                self._serve(rt, new)
                if rt.demand_at is not None:   # a cold start: a request waited for this replica
                    rt.cold_start_ms = round((self._clock.now() - rt.demand_at) * 1000, 1)
                    rt.demand_at = None
            elif have > want:
                extra = rt.group[want:]
                rt.group = rt.group[:want]
                self._publisher.publish(rt.endpoint)
                await self._drain_and_stop(rt, extra)
        finally:
            rt.busy = None
            self._step_one(rt)

    async def rollout(self, rt: DeploymentRuntime, want: Desired) -> None:
        spec, h = want.spec, want.spec_hash
        serving = self._stores.serving
        try:
            try:
                # at least one, even for a deployment scaled to zero: a new version must prove it starts
                new = await self._start_group(rt, spec, h, max(1, want.replicas))
            except Exception as e:
                err = e if isinstance(e, FleetError) else FleetError(f"{type(e).__name__}: {e}")
                text = err.message + (f"\n{err.detail}" if err.detail else "")
                log.warning("rollout of %s/%s failed: %s", rt.endpoint, rt.name, text)
                if h == want.active_hash:
                    rt.fault = err.message
                    self.backoff(rt)  # restoring what served before: try again later
                await asyncio.to_thread(serving.record_rollout, rt.endpoint, rt.name, h, ok=False, error=text,
                                        fence=self.fence())
                return
            if rt.retired:
                await self._drain_and_stop(rt, new)
                return
            old = rt.group
            rt.group, rt.hash, rt.spec, rt.failures, rt.fault = new, h, spec, 0, None
            self._serve(rt, new)                 # the switch: new requests go to the new group
            await self._drain_and_stop(rt, old)  # in-flight requests on the old group finish
            await asyncio.to_thread(serving.record_rollout, rt.endpoint, rt.name, h, ok=True,
                                    fence=self.fence())
            log.info("%s/%s now serves %s", rt.endpoint, rt.name, spec.model)
        finally:
            rt.busy = None
            self._poke()

    async def retire(self, rt: DeploymentRuntime) -> None:
        if rt.busy is not None:
            with contextlib.suppress(BaseException):
                await rt.busy
        replicas, rt.group = rt.group, []
        self._publisher.publish(rt.endpoint)
        await self._drain_and_stop(rt, replicas)
        if self._runtimes.get(rt.key) is rt:
            del self._runtimes[rt.key]
            self._state.forget(rt.key)
        self._poke()
