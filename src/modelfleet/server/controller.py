"""The reconcile loop: make the running replicas match the desired state in the store.

Each pass reads endpoints and deployments, asks the pure `reconciler.step` what to do, and runs
each action as its own task, so one slow or failing deployment never holds up another. A rollout
starts the new replicas, waits until every one is ready, switches routing in one publish, drains
the old replicas, then stops them; if the new ones fail, they are stopped and the old ones never
stop serving. A replica that dies is dropped from routing at once and restarted with backoff.
Any error while starting replicas (an init that fails, the OS refusing a socket or a process)
is one log line and a backoff, never a tight loop.

The controller knows replicas only through the backend's `ReplicaHandle`s (backends/base.py),
moves them through the state machine in replicas.py, and tells the gateway about them only by
publishing routing snapshots (routing.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..backends.base import Backend, InitFailed, ReplicaEnvironment, ReplicaSpec
from ..environments import Environments
from ..interpreters import Policy
from ..errors import DeploymentFailed, FleetError, IntegrityError
from ..fsutil import tail_lines
from ..registry import Registry
from ..specs import DeploymentRecord
from ..store import ArtifactStore, Database
from ..store.artifacts import content_digest
from ..store.computes import ComputeStore
from ..store.serving import ServingStore
from ..workspace import Workspace
from . import autoscaler, reconciler, replica_states, settings
from .clock import Clock
from .reconciler import Actual, Desired, Key, Retire, Rollout, Scale, Settle
from .replicas import Replica, ReplicaState as S, Roster, transition
from .routing import NO_COLLECTION, DeploymentSnapshot, EndpointSnapshot, Router, RoutingTable, gate_of
from .supervisor import Supervisor

log = logging.getLogger("modelfleet.controller")

BACKOFF_FIRST_S = 0.1
BACKOFF_MAX_S = 30.0
HEALTHY_AFTER_S = 60.0     # a replica up this long (or that answered a request) forgives earlier crashes
CRASH_LOOP_AFTER = 3       # consecutive failed starts or early deaths before health says CrashLoop
ERROR_REPEAT_S = 60.0      # the same reconcile error is logged again at most this often


@dataclass(eq=False)
class DeploymentRuntime:
    endpoint: str
    name: str
    group: list[Replica] = field(default_factory=list)   # the serving replicas
    hash: str | None = None                # what the group runs
    spec: DeploymentRecord | None = None   # the newest desired spec (settings apply in place)
    busy: asyncio.Task | None = None       # the one rollout or scale in progress
    failures: int = 0                      # consecutive failures, for backoff
    not_before: float = 0.0                # clock time before which no new step starts
    serial: int = 0                        # replica numbering
    retired: bool = False
    fault: str | None = None               # why it has fewer replicas than wanted, if it does
    restarts: int = 0                      # replicas lost and replaced since the server started
    last_failure: str | None = None        # why the last one was lost
    scale: autoscaler.ScaleState | None = None   # autoscaled deployments only
    seen_arrivals: int = 0                 # the admission's arrivals when last looked at
    last_active: float = 0.0               # when a request was last seen (clock time)
    demand_at: float | None = None         # when a request came while it had no replica
    cold_start_ms: float | None = None     # from that request to a ready replica, last time
    desired: Desired | None = None         # its row as last read, before the autoscaler's count
    snapshot: DeploymentSnapshot | None = None   # as last published

    @property
    def key(self) -> Key:
        return (self.endpoint, self.name)

    def actual(self) -> Actual:
        return Actual(self.hash, len(self.group), self.busy is not None, self.not_before, self.retired)


class Controller:
    def __init__(self, ws: Workspace, db: Database, backend: Backend, router: Router,
                 clock: Clock | None = None, after_pass: Callable[[bool], None] | None = None):
        self.ws = ws
        self.serving = ServingStore(db)
        self.computes = ComputeStore(db)
        self.artifacts = ArtifactStore(ws.artifacts)
        self.registry = Registry(db, self.artifacts)
        self.environments = Environments.of_workspace(ws, db, Policy.of_settings(settings.load(ws)))
        self.backend = backend
        self.router = router
        self.clock = clock or Clock()
        self.supervisor = Supervisor(self.clock, self._lost)
        self._after_pass = after_pass         # told after each pass whether it read the rows (heap.py)
        self.runtimes: dict[Key, DeploymentRuntime] = {}
        self.roster = Roster()   # every replica until it stops, as every view counts them
        self._endpoints: list[dict] = []
        self._rows: list[dict] = []           # deployments as last read
        self._changes = db.watch()            # rows are read again only after a commit
        self._published: dict[str, tuple[dict, dict, EndpointSnapshot]] = {}   # endpoint -> its inputs, snapshot
        self._computes: dict[str, str] = {}   # endpoint -> compute its replicas run on
        self._attached: set[str] = set()      # computes the workspace has now
        self._spec_cache: dict[Key, tuple[dict, DeploymentRecord, Desired]] = {}   # row, its spec, Desired
        self._unreadable: set[Key] = set()    # rows whose spec failed validation (said once each)
        self._restored = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()
        self._reconciling = asyncio.Lock()  # one pass at a time: the last reads are the ones published
        self._verified: set[str] = set()     # snapshots checked against their sha256 in this process
        self._stopping = False
        self._last_error: tuple[str, float] | None = None   # the reconcile error logged last, and when
        self.collection = NO_COLLECTION       # collection.hub.CollectionHub once monitoring is installed

    # -- loop --------------------------------------------------------------------------------

    def poke(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        await self.reconcile()
        self._task = asyncio.create_task(self._loop())

    async def _loop(self) -> None:
        while not self._stopping:
            await self.clock.wait(asyncio.ensure_future(self._wake.wait()), 1.0)
            self._wake.clear()
            try:
                await self.reconcile()
                self._last_error = None
            except Exception as e:  # a full disk, a locked database: retried every second, logged rarely
                text, now = f"{type(e).__name__}: {e}", self.clock.now()
                if self._last_error is None or self._last_error[0] != text:
                    if isinstance(e, (OSError, FleetError)):   # the machine's state, not a bug: one line
                        log.warning("reconcile failed: %s; retrying", text)
                    else:
                        log.exception("reconcile failed; retrying")
                    self._last_error = (text, now)
                elif now - self._last_error[1] >= ERROR_REPEAT_S:
                    log.warning("reconcile still failing: %s", text)
                    self._last_error = (text, now)

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            e = task.exception()
            log.warning("controller step failed: %s", e.message if isinstance(e, FleetError) else
                        f"{type(e).__name__}: {e}")

    def _backoff(self, rt: DeploymentRuntime) -> None:
        """Hold off the next step on `rt`: 100 ms doubling to 30 s; a poke when it may go."""
        rt.failures += 1
        delay = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** (rt.failures - 1))
        rt.not_before = self.clock.now() + delay
        # a millisecond late: the loop's clock moves in millisecond steps, and a pass in the same
        # millisecond as the hold's end may find itself a hair before it and wait a whole second
        self.clock.call_later(delay + 0.001, self.poke)

    async def reconcile(self) -> None:
        async with self._reconciling:
            if self._stopping:
                return
            fresh = await asyncio.to_thread(self._changes.changed)
            if fresh:
                try:
                    self._endpoints = await asyncio.to_thread(self.serving.endpoints)
                    self._rows = await asyncio.to_thread(self.serving.deployments)
                    if any((ep["spec"].get("compute") or "local") != "local" for ep in self._endpoints):
                        self._attached = {c["name"] for c in await asyncio.to_thread(self.computes.list)}
                except BaseException:
                    self._changes.forget()
                    raise
            self._step(fresh)
            if self._after_pass is not None:
                self._after_pass(fresh)

    def _step(self, fresh: bool) -> None:
        """One pass over every deployment. Between commits to the store (`fresh` false) the rows
        are those read last, and routing changes only through the actions' own publishes."""
        if fresh:
            self._computes = {ep["name"]: ep["spec"].get("compute") or "local" for ep in self._endpoints}
        desired, unreadable = {}, set()
        for r in self._rows:
            key = (r["endpoint"], r["name"])
            try:
                desired[key] = self._desired(r)
            except ValueError as e:  # one row this server cannot read never stops the others
                unreadable.add(key)
                if key not in self._unreadable:
                    log.error("deployment %s/%s has a spec this server cannot read; left as it runs: %s", *key, e)
        self._unreadable = unreadable
        now = self.clock.now()
        for key, want in desired.items():
            rt = self.runtimes.get(key)
            if rt is None:
                rt = self.runtimes[key] = DeploymentRuntime(*key)
            rt.desired = want
            if rt.hash is None or rt.hash == want.spec_hash:
                rt.spec = want.spec   # settings (request, probes, limits) apply in place
            elif rt.spec is not None and any(getattr(rt.spec, k) is not getattr(want.spec, k)
                                             for k in SETTINGS_IN_PLACE):
                rt.spec = rt.spec.model_copy(update={k: getattr(want.spec, k) for k in SETTINGS_IN_PLACE})
            desired[key] = self._autoscale(rt, want, now)
        actual = {key: rt.actual() for key, rt in self.runtimes.items() if key not in unreadable}
        for action in reconciler.step(desired, actual, now):
            self._execute(action)
        restored = self._restored or not any(rt.busy for rt in self.runtimes.values())
        if fresh or restored != self._restored:
            self._restored = restored
            self.publish()

    def _step_one(self, rt: DeploymentRuntime) -> None:
        """Step `rt` alone, from its row as last read: what a request at zero or the end of a
        scale needs at once, without the cost of a pass over the whole fleet."""
        if rt.desired is None or rt.busy is not None or rt.retired:
            self.poke()
            return
        now = self.clock.now()
        want = self._autoscale(rt, rt.desired, now)
        for action in reconciler.step({rt.key: want}, {rt.key: rt.actual()}, now):
            self._execute(action)

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

    def _autoscale(self, rt: DeploymentRuntime, want: Desired, now: float) -> Desired:
        """`want` with the replicas an autoscaled deployment wants now (see autoscaler.py)."""
        settings = want.spec.scale_settings
        if not settings.autoscaled:
            rt.scale = None
            return want
        adm = self.router.admission(rt.endpoint, rt.name)
        if adm.on_demand is None:
            adm.on_demand = lambda: self._demand(rt)
        if rt.scale is None:
            rt.scale = autoscaler.ScaleState(autoscaler.initial(settings, want.spec.instance_count))
            rt.last_active = now
        if adm.arrivals != rt.seen_arrivals or adm.inflight or adm.waiters:
            rt.seen_arrivals, rt.last_active = adm.arrivals, now
        if now >= rt.scale.next_poll:
            autoscaler.decide(settings, want.spec.request_settings.max_concurrent_requests_per_instance, rt.scale,
                              adm.take_peak(), now - rt.last_active, now)
        return want if want.replicas == rt.scale.want else dataclasses.replace(want, replicas=rt.scale.want)

    def _demand(self, rt: DeploymentRuntime) -> None:
        """A request came to a deployment scaled to zero; it waits meanwhile. The deployment is
        stepped at once, alone, from its row as last read: a pass over every deployment would
        make a cold start cost as much as the whole fleet's reconcile."""
        now = self.clock.now()
        if rt.demand_at is None:
            rt.demand_at = now
        if rt.scale is not None:
            rt.scale.next_poll = 0.0
        self._step_one(rt)

    def _execute(self, action: reconciler.Action) -> None:
        rt = self.runtimes[action.key]
        if isinstance(action, Rollout):
            rt.busy = self._spawn(self._rollout(rt, action.desired))
        elif isinstance(action, Scale):
            rt.busy = self._spawn(self._scale(rt, action.want))
        elif isinstance(action, Settle):
            self._spawn(asyncio.to_thread(self.serving.record_rollout, rt.endpoint, rt.name,
                                          action.spec_hash, ok=True))
        elif isinstance(action, Retire):
            rt.retired = True
            self._spawn(self._retire(rt))

    # -- routing -----------------------------------------------------------------------------

    def publish(self, endpoint: str | None = None) -> None:
        """Publish every endpoint's snapshot from the last rows read and the serving groups, or
        only `endpoint`'s after a change to its replicas. A snapshot whose inputs are unchanged is
        kept, so that a change to one deployment costs a new snapshot of its endpoint, not of
        the thousand others."""
        if endpoint is not None and endpoint in self._published:
            self._publish_one(endpoint)
            return
        by_endpoint: dict[str, dict[str, DeploymentSnapshot]] = {}
        for (endpoint, name), rt in self.runtimes.items():
            if not rt.retired and rt.spec is not None:
                by_endpoint.setdefault(endpoint, {})[name] = self._deployment_snapshot(rt)
        published, table = {}, {}
        for ep in self._endpoints:
            name, deployments = ep["name"], by_endpoint.get(ep["name"], {})
            last = self._published.get(name)
            if last is not None and last[1] == deployments and (last[0] is ep or last[0] == ep):
                snapshot = last[2]
            else:
                snapshot = EndpointSnapshot.build(name, gate_of(ep["spec"]),
                                                  (ep["primary_key"], ep["secondary_key"]), ep["traffic"],
                                                  ep["mirror_traffic"], deployments)
            published[name], table[name] = (ep, deployments, snapshot), snapshot
        self._published = published
        self.router.publish(RoutingTable(table, ready=self._restored))

    def _publish_one(self, endpoint: str) -> None:
        ep = self._published[endpoint][0]
        deployments = {name: self._deployment_snapshot(rt) for (e, name), rt in self.runtimes.items()
                       if e == endpoint and not rt.retired and rt.spec is not None}
        snapshot = EndpointSnapshot.build(endpoint, gate_of(ep["spec"]),
                                          (ep["primary_key"], ep["secondary_key"]), ep["traffic"],
                                          ep["mirror_traffic"], deployments)
        self._published[endpoint] = (ep, deployments, snapshot)
        self.router.publish(RoutingTable({**self.router.table.endpoints, endpoint: snapshot}, ready=self._restored),
                            changed=(endpoint,))

    def _deployment_snapshot(self, rt: DeploymentRuntime) -> DeploymentSnapshot:
        """`rt`'s snapshot: the one published last if its ready replicas and settings are the same."""
        ready = tuple(r.handle for r in rt.group if r.state is S.READY)
        admission = self.router.admission(rt.endpoint, rt.name)
        last = rt.snapshot
        if (last is None or last.replicas != ready or last.model_key != (rt.hash or "")
                or last.settings is not rt.spec.request_settings or last.admission is not admission):
            last = rt.snapshot = DeploymentSnapshot(rt.endpoint, rt.name, rt.hash or "", rt.spec.request_settings,
                ready, admission, ready[0].info.get("metadata") or {} if ready else {},
                ((b"azureml-model-deployment", rt.name.encode()),), self.collection.collector(rt))
        return last

    # -- replicas ----------------------------------------------------------------------------

    def _replica_spec(self, rt: DeploymentRuntime, spec: DeploymentRecord, spec_hash: str, model_dir: Path,
                      code_dir: Path | None, environment: ReplicaEnvironment | None = None) -> ReplicaSpec:
        rt.serial += 1
        rid = f"{rt.name}-{spec_hash[:6]}-{rt.serial}"
        code = spec.code
        return ReplicaSpec(endpoint=rt.endpoint, deployment=rt.name, replica_id=rid, model_key=spec_hash,
                           model_type=spec.model_type, model_dir=model_dir, model_sha256=spec.model_sha256,
                           code_dir=code_dir, code_sha256=code.sha256 if code else None,
                           scoring_script=code.scoring_script if code else None,
                           env=self.collection.replica_env(rt, spec), batching=spec.batching, resources=spec.resources,
                           log_path=self.ws.logs_dir / rt.endpoint / rt.name / f"{rid}.log",
                           compute=self._computes.get(rt.endpoint, "local"), environment=environment,
                           placement=spec.effective_placement, fast_path=spec.fast_path)

    async def _resolve(self, spec: DeploymentRecord) -> tuple[Path, Path | None]:
        """Model directory and code root; each snapshot is checked against its sha256 the first
        time this server uses it (a restart after a crash does not re-hash)."""
        model = await asyncio.to_thread(self.registry.get, spec.model)
        verify = model.sha256 not in self._verified
        model_dir = await asyncio.to_thread(self.registry.path_of, model, verify)
        self._verified.add(model.sha256)
        code = spec.code
        if code is None:
            return model_dir, None
        root = self.artifacts.snapshot_dir("code", code.sha256) / code.root
        if code.sha256 not in self._verified:
            found, _ = await asyncio.to_thread(content_digest, root)
            if found != code.sha256:
                raise IntegrityError(f"code snapshot {code.sha256[:12]} does not match its sha256 "
                                     "(its files were changed after the deployment was created)")
            self._verified.add(code.sha256)
        if not (root / code.scoring_script).is_file():
            raise DeploymentFailed(f"scoring script {code.scoring_script} is missing from the code snapshot")
        return model_dir, root

    async def _environment(self, rt: DeploymentRuntime, spec: DeploymentRecord) -> ReplicaEnvironment | None:
        """The deployment's environment (built before its row was written; built again here only
        if it went missing); on a Ray compute, the pins Ray builds it from on each node."""
        if spec.environment is None:
            return None
        local = self._computes.get(rt.endpoint, "local") == "local"
        return await asyncio.to_thread(self.environments.for_replicas, spec.environment, build=local)

    async def _start_group(self, rt: DeploymentRuntime, spec: DeploymentRecord, spec_hash: str,
                           count: int) -> list[Replica]:
        """Start `count` replicas and wait until all are ready; on any failure stop them all."""
        model_dir, code_dir = await self._resolve(spec)
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
                handle = await self.backend.start(self._replica_spec(rt, spec, spec_hash, model_dir, code_dir,
                                                                     environment))
                started.append(Replica(handle, rt.endpoint, rt.name, self.clock.now(), roster=self.roster))
            await self.clock.within(asyncio.gather(*(ready(r) for r in started)), timeout)
        except BaseException as e:
            await self._stop(started, 1.0)
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
        self.publish(rt.endpoint)
        for r in new:
            self._spawn(self.supervisor.watch(r, lambda rt=rt: rt.spec))

    async def _stop(self, replicas: list[Replica], grace_s: float) -> None:
        await asyncio.gather(*(r.handle.stop(grace_s) for r in replicas), return_exceptions=True)
        for r in replicas:
            transition(r, S.STOPPED)

    async def _drain_and_stop(self, rt: DeploymentRuntime, replicas: list[Replica]) -> None:
        for r in replicas:
            if r.state is S.READY:
                transition(r, S.DRAINING)
        timeout_s = rt.spec.request_settings.request_timeout_ms / 1000.0 if rt.spec else 5.0
        deadline = self.clock.now() + timeout_s + 1.0
        while any(r.handle.unanswered for r in replicas) and self.clock.now() < deadline:
            await self.clock.sleep(0.01)
        await self._stop(replicas, 5.0)

    def _lost(self, r: Replica, code: int | None, why: str) -> None:
        """The supervisor saw a serving replica die: drop it, then restart after a backoff (short
        for a replica that served: a hang or a leak is not a crash loop)."""
        rt = self.runtimes.get((r.endpoint, r.deployment))
        if rt is None:
            return
        rt.group = [x for x in rt.group if x is not r]
        self.publish(rt.endpoint)
        if r.handle.answered or self.clock.now() - r.started_at > HEALTHY_AFTER_S:
            rt.failures = 0
        rt.restarts += 1
        rt.last_failure = why
        self._backoff(rt)  # then the reconcile scales the group back to instance_count

    async def _scale(self, rt: DeploymentRuntime, want: int) -> None:
        try:
            have = len(rt.group)
            if have < want:
                try:
                    new = await self._start_group(rt, rt.spec, rt.hash, want - have)
                except Exception as e:  # an init that fails, or the OS refusing (EMFILE, EAGAIN, ENOMEM)
                    why = e.message if isinstance(e, FleetError) else f"{type(e).__name__}: {e}"
                    log.warning("could not start replicas of %s/%s: %s", rt.endpoint, rt.name, why)
                    rt.fault = why
                    self._backoff(rt)
                    return
                rt.fault = None
                if rt.retired:
                    await self._drain_and_stop(rt, new)
                    return
                rt.group = rt.group + new
                self._serve(rt, new)
                if rt.demand_at is not None:   # a cold start: a request waited for this replica
                    rt.cold_start_ms = round((self.clock.now() - rt.demand_at) * 1000, 1)
                    rt.demand_at = None
            elif have > want:
                extra = rt.group[want:]
                rt.group = rt.group[:want]
                self.publish(rt.endpoint)
                await self._drain_and_stop(rt, extra)
        finally:
            rt.busy = None
            self._step_one(rt)

    async def _rollout(self, rt: DeploymentRuntime, want: Desired) -> None:
        spec, h = want.spec, want.spec_hash
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
                    self._backoff(rt)  # restoring what served before: try again later
                await asyncio.to_thread(self.serving.record_rollout, rt.endpoint, rt.name, h, ok=False, error=text)
                return
            if rt.retired:
                await self._drain_and_stop(rt, new)
                return
            old = rt.group
            rt.group, rt.hash, rt.spec, rt.failures, rt.fault = new, h, spec, 0, None
            self._serve(rt, new)                 # the switch: new requests go to the new group
            await self._drain_and_stop(rt, old)  # in-flight requests on the old group finish
            await asyncio.to_thread(self.serving.record_rollout, rt.endpoint, rt.name, h, ok=True)
            log.info("%s/%s now serves %s", rt.endpoint, rt.name, spec.model)
        finally:
            rt.busy = None
            self.poke()

    async def _retire(self, rt: DeploymentRuntime) -> None:
        if rt.busy is not None:
            with contextlib.suppress(BaseException):
                await rt.busy
        replicas, rt.group = rt.group, []
        self.publish(rt.endpoint)
        await self._drain_and_stop(rt, replicas)
        if self.runtimes.get(rt.key) is rt:
            del self.runtimes[rt.key]
            self._spec_cache.pop(rt.key, None)
        self.poke()

    # -- queries and shutdown ----------------------------------------------------------------

    def replicas_of(self, endpoint: str, name: str) -> list[dict]:
        rt = self.runtimes.get((endpoint, name))
        return [r.to_dict() for r in rt.group] if rt else []

    async def logs(self, endpoint: str, name: str, lines: int) -> str:
        """The serving replicas' logs, wherever they run, after the newest log of a replica that
        no longer serves (a failed start or a crash shows there)."""
        rt = self.runtimes.get((endpoint, name))
        current = list(rt.group) if rt else []
        ids = {r.id for r in current}
        folder = self.ws.logs_dir / endpoint / name

        def newest_other() -> list[tuple[str, list[str]]]:
            files = sorted(folder.glob("*.log"), key=lambda f: f.stat().st_mtime) if folder.is_dir() else []
            return [(f.stem, tail_lines(f, lines)) for f in [f for f in files if f.stem not in ids][-1:]]

        parts = await asyncio.to_thread(newest_other)
        tails = await asyncio.gather(*(r.handle.log_tail(lines) for r in current))
        parts += [(r.id, tail.splitlines()) for r, tail in zip(current, tails)]
        return "\n".join(line for rid, text in parts for line in (f"==> {rid} <==", *text))

    def health_of(self, endpoint: str, name: str, instance_count: int) -> dict:
        """Healthy (every wanted replica ready), Degraded (some), Unavailable (none), CrashLoop
        (replicas keep failing to start or dying before they serve), or Idle (scaled to zero);
        why, how many replicas it wants now, and how many it lost."""
        rt = self.runtimes.get((endpoint, name))
        n = self.replica_counts(endpoint, name, instance_count)
        health = ("Idle" if n.wanted == n.ready == 0 else "Healthy" if n.ready >= n.wanted else
                  "CrashLoop" if rt and rt.failures >= CRASH_LOOP_AFTER else
                  "Degraded" if n.ready else "Unavailable")
        fault = rt.fault if rt else None
        if health == "CrashLoop" and fault is None:
            fault = rt.last_failure
        compute = self._computes.get(endpoint, "local")
        if compute != "local" and compute not in self._attached:
            fault = f"compute {compute!r} is not attached to this workspace (fleet compute attach --name {compute})"
        elif fault is None and health != "Healthy" and compute != "local":
            fault = getattr(self.backend, "fault", lambda _c: None)(compute)
        return {"health": health, **{f"{k}_replicas": v for k, v in n.to_dict().items()}, "fault": fault,
                "restarts": rt.restarts if rt else 0, "last_failure": rt.last_failure if rt else None,
                "last_cold_start_ms": rt.cold_start_ms if rt else None}

    def replica_counts(self, endpoint: str, name: str, instance_count: int = 0) -> replica_states.ReplicaCounts:
        """Its replicas by state (replica_states.py) and how many it wants now: the autoscaler's
        count, else its row's instance_count as last read (`instance_count` until it is read)."""
        rt = self.runtimes.get((endpoint, name))
        if rt is not None and rt.desired is not None:
            instance_count = 0 if rt.retired else rt.desired.spec.instance_count
        wanted = rt.scale.want if rt and rt.scale else instance_count
        return replica_states.count(self.roster.of(endpoint, name), wanted)

    def is_busy(self, endpoint: str, name: str) -> bool:
        rt = self.runtimes.get((endpoint, name))
        return bool(rt and rt.busy)

    async def stop(self) -> None:
        self._stopping = True
        if self._task:
            self._task.cancel()
        for t in list(self._tasks):
            t.cancel()
        everyone = [r for rt in self.runtimes.values() for r in rt.group]
        for r in everyone:
            if r.state is S.READY:
                transition(r, S.DRAINING, "server stopping")
        await self._stop(everyone, 2.0)
        await self.backend.shutdown()
        self._changes.close()


# Settings that never change what a replica runs: they apply to the serving group at once, even
# while a rollout of a new spec is under way.
SETTINGS_IN_PLACE = ("request_settings", "liveness_probe", "readiness_probe", "resources", "instance_count",
                     "description", "tags")
