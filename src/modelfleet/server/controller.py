"""The reconcile loop: make the running replicas match the desired state in the store.

Each pass reads endpoints and deployments, then for every deployment takes at most one idempotent
step (a rollout, a scale, a retirement) as its own task, so one slow or failing deployment never
holds up another. A rollout starts the new replicas, waits until every one is ready, switches the
gateway's routing in one assignment, drains the old replicas, then stops them; if the new ones
fail, they are stopped and the old ones never stop serving. A replica that dies is dropped from
routing at once and restarted with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from ..backends.base import Backend, InitFailed, Replica, ReplicaGone, ReplicaSpec
from ..errors import DeploymentFailed, FleetError, IntegrityError
from ..registry import Registry
from ..runtime import protocol as p
from ..specs import memory_bytes
from ..store import ArtifactStore, Database
from ..store.artifacts import content_digest
from ..fsutil import tail_lines
from ..store.serving import ServingStore
from ..workspace import Workspace
from .gateway import Gateway
from .routing import DeploymentRoute, EndpointRoute

log = logging.getLogger("modelfleet.controller")

BACKOFF_MAX_S = 30.0


def _memory_limit(spec: dict) -> int | None:
    memory = ((spec.get("resources") or {}).get("limits") or {}).get("memory")
    return memory_bytes(memory) if memory else None


def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


@dataclass(eq=False)
class DeploymentRuntime:
    endpoint: str
    name: str
    route: DeploymentRoute
    replicas: list[Replica] = field(default_factory=list)   # the serving group
    hash: str | None = None
    spec: dict | None = None
    busy: asyncio.Task | None = None       # the one step in progress (rollout, scale)
    failures: int = 0                      # consecutive failures, for backoff
    not_before: float = 0.0                # monotonic time before which no new step starts
    serial: int = 0                        # replica numbering
    retired: bool = False

    @property
    def log_dir(self) -> Path:
        return Path(self.endpoint) / self.name


class Controller:
    def __init__(self, ws: Workspace, db: Database, backend: Backend, gateway: Gateway):
        self.ws = ws
        self.serving = ServingStore(db)
        self.artifacts = ArtifactStore(ws.artifacts)
        self.registry = Registry(db, self.artifacts)
        self.backend = backend
        self.gateway = gateway
        self.runtimes: dict[tuple[str, str], DeploymentRuntime] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()
        self._reconciling = asyncio.Lock()  # one pass at a time: the last reads are the ones published
        self._verified: set[str] = set()     # snapshots checked against their sha256 in this process
        self._stopping = False

    # -- loop --------------------------------------------------------------------------------

    def poke(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        await self.reconcile()
        self._task = asyncio.create_task(self._loop())

    async def _loop(self) -> None:
        while not self._stopping:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 1.0)
            self._wake.clear()
            try:
                await self.reconcile()
            except Exception:
                log.exception("reconcile failed; retrying")

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _backoff(self, rt: DeploymentRuntime) -> None:
        """Hold off the next step on `rt`: 100 ms doubling to 30 s; a poke when it may go."""
        rt.failures += 1
        delay = min(BACKOFF_MAX_S, 0.1 * 2 ** (rt.failures - 1))
        rt.not_before = time.monotonic() + delay
        asyncio.get_running_loop().call_later(delay, self.poke)

    async def reconcile(self) -> None:
        async with self._reconciling:
            if self._stopping:
                return
            endpoints = await asyncio.to_thread(self.serving.endpoints)
            rows = await asyncio.to_thread(self.serving.deployments)
            self._step(endpoints, rows)

    def _step(self, endpoints: list[dict], rows: list[dict]) -> None:
        """Start at most one task per deployment toward its row; publish the routing table."""
        desired = {(r["endpoint"], r["name"]): r for r in rows}
        for key, rt in list(self.runtimes.items()):
            if key not in desired and not rt.retired:
                rt.retired = True
                self._spawn(self._retire(rt))
        now = time.monotonic()
        for key, row in desired.items():
            rt = self.runtimes.get(key)
            if rt is None:
                rt = self.runtimes[key] = DeploymentRuntime(*key, route=DeploymentRoute(*key))
            rt.route.apply_settings(row["spec"].get("request_settings", {}))
            if rt.busy is not None or now < rt.not_before:
                continue
            if row["spec_hash"] != rt.hash and row["spec_hash"] != row["failed_hash"]:
                rt.busy = self._spawn(self._rollout(rt, row))
            elif rt.hash == row["spec_hash"]:
                rt.spec = {**row["spec"], "_hash": rt.hash}
                if row["state"] in ("Creating", "Updating"):  # what serves is what is wanted: settle
                    self._spawn(asyncio.to_thread(self.serving.record_rollout, rt.endpoint, rt.name,
                                                  rt.hash, ok=True))
                want = int(row["spec"].get("instance_count", 1))
                if len(rt.replicas) != want:
                    rt.busy = self._spawn(self._scale(rt, want))
        self._publish(endpoints)
        if not any(rt.busy for rt in self.runtimes.values()):
            self.gateway.ready = True

    def _publish(self, endpoints: list[dict]) -> None:
        by_endpoint: dict[str, dict[str, DeploymentRoute]] = {}
        for (endpoint, name), rt in self.runtimes.items():
            if not rt.retired:
                by_endpoint.setdefault(endpoint, {})[name] = rt.route
        self.gateway.routes = {
            ep["name"]: EndpointRoute.build(ep["name"], ep["spec"].get("auth_mode", "key"),
                                            (ep["primary_key"], ep["secondary_key"]), ep["traffic"],
                                            ep["mirror_traffic"], by_endpoint.get(ep["name"], {}))
            for ep in endpoints}

    # -- replicas ----------------------------------------------------------------------------

    def _replica_spec(self, rt: DeploymentRuntime, spec: dict, model_type: str, model_dir: Path,
                      script: Path | None) -> ReplicaSpec:
        rt.serial += 1
        rid = f"{rt.name}-{(spec.get('_hash') or rt.hash or '')[:6]}-{rt.serial}"
        batching = spec.get("batching", {})
        return ReplicaSpec(endpoint=rt.endpoint, deployment=rt.name, replica_id=rid, model_type=model_type,
                           model_dir=model_dir, scoring_script=script,
                           env=spec.get("environment_variables", {}),
                           max_batch_size=batching.get("max_batch_size", 1),
                           max_batch_wait_ms=batching.get("max_batch_wait_ms", 0),
                           log_path=self.ws.logs_dir / rt.log_dir / f"{rid}.log")

    async def _resolve(self, spec: dict) -> tuple[str, Path, Path | None]:
        """Model type, model directory and scoring script; each snapshot is checked against its
        sha256 the first time this server uses it (a restart after a crash does not re-hash)."""
        model = await asyncio.to_thread(self.registry.get, spec["model"])
        verify = model.sha256 not in self._verified
        model_dir = await asyncio.to_thread(self.registry.path_of, model, verify)
        self._verified.add(model.sha256)
        script = None
        code = spec.get("code")
        if code:
            root = self.artifacts.snapshot_dir("code", code["sha256"]) / code["root"]
            if code["sha256"] not in self._verified:
                found, _ = await asyncio.to_thread(content_digest, root)
                if found != code["sha256"]:
                    raise IntegrityError(f"code snapshot {code['sha256'][:12]} does not match its sha256 "
                                         "(its files were changed after the deployment was created)")
                self._verified.add(code["sha256"])
            script = root / code["scoring_script"]
            if not script.is_file():
                raise DeploymentFailed(f"scoring script {code['scoring_script']} is missing from the code snapshot")
        return model.type, model_dir, script

    async def _start_group(self, rt: DeploymentRuntime, spec: dict, count: int) -> list[Replica]:
        """Start `count` replicas and wait until all are ready; on any failure stop them all."""
        mtype, model_dir, script = await self._resolve(spec)
        probe = spec.get("readiness_probe", {})
        timeout = probe.get("initial_delay", 0) + probe.get("period", 1) * probe.get("failure_threshold", 60)
        started: list[Replica] = []
        try:
            for _ in range(count):
                started.append(await self.backend.start(self._replica_spec(rt, spec, mtype, model_dir, script)))
            await asyncio.wait_for(asyncio.gather(*(self._await_ready(r) for r in started)), timeout)
        except BaseException as e:
            await asyncio.gather(*(self.backend.stop(r, 1.0) for r in started), return_exceptions=True)
            if isinstance(e, asyncio.TimeoutError):
                raise DeploymentFailed(f"replicas of {rt.endpoint}/{rt.name} were not ready within {timeout}s",
                                       detail=self._tail(started)) from None
            raise
        for r in started:
            r.state = "ready"
        return started

    async def _await_ready(self, r: Replica) -> None:
        try:
            kind, payload = await r.conn.ready
        except InitFailed:
            await asyncio.sleep(0.1)  # let its last words reach the log
            raise DeploymentFailed(f"replica {r.id} exited before it became ready "
                                   f"(exit code {self.backend.exit_code(r)})", detail=self._tail([r])) from None
        if kind == p.INIT_FAILED:
            tb = payload.decode("utf-8", "replace").strip()
            last = tb.splitlines()[-1] if tb else "init failed"
            raise DeploymentFailed(f"replica {r.id} failed to start: {last}", detail=tb)
        r.pid = r.pid or orjson.loads(payload).get("pid")

    @staticmethod
    def _tail(replicas: list[Replica], lines: int = 20) -> str:
        return "\n".join(line for r in replicas for line in tail_lines(r.spec.log_path, lines))

    def _serve(self, rt: DeploymentRuntime, new: list[Replica]) -> None:
        """Route to `rt.replicas` (one assignment) and start watching the `new` ones."""
        rt.route.replicas = [r for r in rt.replicas if r.state == "ready"]
        rt.route.wake()
        for r in new:
            self._spawn(self._watch(rt, r))

    async def _drain_and_stop(self, rt: DeploymentRuntime, replicas: list[Replica]) -> None:
        for r in replicas:
            r.state = "draining"
        deadline = time.monotonic() + rt.route.timeout_s + 1.0
        while any(r.inflight for r in replicas) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await asyncio.gather(*(self.backend.stop(r) for r in replicas), return_exceptions=True)
        for r in replicas:
            r.state = "stopped"

    async def _watch(self, rt: DeploymentRuntime, r: Replica) -> None:
        """Liveness and memory: ping on the probe's period, check RSS against the memory limit;
        a dead, hung or over-limit replica is dropped and restarted with backoff."""
        misses = 0
        next_ping = time.monotonic()
        while r.state == "ready":
            spec = rt.spec or {}
            probe = spec.get("liveness_probe", {})
            limit = _memory_limit(spec)
            done, _ = await asyncio.wait([r.conn.closed], timeout=0.5 if limit else probe.get("period", 2))
            if done or r.state != "ready":
                break
            if limit and r.pid:
                rss = _rss_bytes(r.pid)
                if rss > limit:
                    self._note(r, f"replica exceeded its memory limit ({rss // 2**20} MiB > "
                                  f"{limit // 2**20} MiB); killing it")
                    await self.backend.stop(r, 0.0)
                    break
            if time.monotonic() < next_ping:
                continue
            next_ping = time.monotonic() + probe.get("period", 2)
            fut = None
            try:
                fut = r.conn.send(p.PING)
                await asyncio.wait_for(asyncio.shield(fut), probe.get("timeout", 2))
                misses = 0
            except ReplicaGone:
                break
            except asyncio.TimeoutError:
                r.conn.forget(fut)
                misses += 1
                if misses >= probe.get("failure_threshold", 30):
                    self._note(r, f"replica missed {misses} liveness probes; killing it")
                    await self.backend.stop(r, 0.5)
                    break
        await r.conn.closed
        if r.state != "ready":
            return  # stopped on purpose
        r.state = "failed"
        rt.replicas = [x for x in rt.replicas if x is not r]
        rt.route.replicas = [x for x in rt.route.replicas if x is not r]
        code = None
        for _ in range(50):  # the exit code arrives a moment after the socket closes
            code = self.backend.exit_code(r)
            if code is not None:
                break
            await asyncio.sleep(0.02)
        self._note(r, f"replica (pid {r.pid}) of {rt.endpoint}/{rt.name} exited with code {code}; restarting")
        if time.time() - r.started_at > 60:
            rt.failures = 0  # a minute of good health forgives earlier crashes
        self._backoff(rt)  # then the reconcile scales the group back to instance_count

    @staticmethod
    def _note(r: Replica, message: str) -> None:
        """A supervisor event, written into the replica's own log so get-logs shows why."""
        log.warning("%s: %s", r.id, message)
        with contextlib.suppress(OSError), open(r.spec.log_path, "a") as f:
            f.write(f"\n[modelfleet] {message}\n")

    async def _scale(self, rt: DeploymentRuntime, want: int) -> None:
        try:
            have = len(rt.replicas)
            if have < want:
                try:
                    new = await self._start_group(rt, rt.spec, want - have)
                except FleetError as e:
                    log.warning("could not restart replicas of %s/%s: %s", rt.endpoint, rt.name, e.message)
                    self._backoff(rt)
                    return
                if rt.retired:
                    await self._drain_and_stop(rt, new)
                    return
                rt.replicas = rt.replicas + new
                self._serve(rt, new)
            elif have > want:
                extra = rt.replicas[want:]
                rt.replicas = rt.replicas[:want]
                self._serve(rt, [])
                await self._drain_and_stop(rt, extra)
        finally:
            rt.busy = None
            self.poke()

    async def _rollout(self, rt: DeploymentRuntime, row: dict) -> None:
        spec, h = {**row["spec"], "_hash": row["spec_hash"]}, row["spec_hash"]
        try:
            try:
                new = await self._start_group(rt, spec, int(spec.get("instance_count", 1)))
            except Exception as e:
                err = e if isinstance(e, FleetError) else FleetError(f"{type(e).__name__}: {e}")
                text = err.message + (f"\n{err.detail}" if err.detail else "")
                log.warning("rollout of %s/%s failed: %s", rt.endpoint, rt.name, text)
                if h == row["active_hash"]:
                    self._backoff(rt)  # restoring what served before: try again later
                await asyncio.to_thread(self.serving.record_rollout, rt.endpoint, rt.name, h, ok=False, error=text)
                return
            if rt.retired:
                await self._drain_and_stop(rt, new)
                return
            old = rt.replicas
            rt.replicas, rt.hash, rt.spec, rt.failures = new, h, spec, 0
            self._serve(rt, new)                 # the switch: new requests go to the new group
            await self._drain_and_stop(rt, old)  # in-flight requests on the old group finish
            await asyncio.to_thread(self.serving.record_rollout, rt.endpoint, rt.name, h, ok=True)
            log.info("%s/%s now serves %s", rt.endpoint, rt.name, spec.get("model"))
        finally:
            rt.busy = None
            self.poke()

    async def _retire(self, rt: DeploymentRuntime) -> None:
        if rt.busy is not None:
            with contextlib.suppress(BaseException):
                await rt.busy
        replicas, rt.replicas = rt.replicas, []
        rt.route.replicas = []
        await self._drain_and_stop(rt, replicas)
        if self.runtimes.get((rt.endpoint, rt.name)) is rt:
            del self.runtimes[(rt.endpoint, rt.name)]
        self.poke()

    # -- queries and shutdown ----------------------------------------------------------------

    def replicas_of(self, endpoint: str, name: str) -> list[dict]:
        rt = self.runtimes.get((endpoint, name))
        return [r.to_dict() for r in rt.replicas] if rt else []

    def is_busy(self, endpoint: str, name: str) -> bool:
        rt = self.runtimes.get((endpoint, name))
        return bool(rt and rt.busy)

    async def stop(self) -> None:
        self._stopping = True
        if self._task:
            self._task.cancel()
        for t in list(self._tasks):
            t.cancel()
        everyone = [r for rt in self.runtimes.values() for r in rt.replicas]
        for r in everyone:
            r.state = "stopped"
        await asyncio.gather(*(self.backend.stop(r, 2.0) for r in everyone), return_exceptions=True)
        self.backend.shutdown()
