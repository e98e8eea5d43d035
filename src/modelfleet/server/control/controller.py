"""The reconcile loop: make the running replicas match the desired state in the store.

Each pass reads endpoints and deployments, asks the pure `reconciler.step` what to do, and runs
each action as its own task, so one slow or failing deployment never holds up another. A rollout
starts the new replicas, waits until every one is ready, switches routing in one publish, drains
the old replicas, then stops them; if the new ones fail, they are stopped and the old ones never
stop serving. A replica that dies is dropped from routing at once and restarted with backoff.
Any error while starting replicas (an init that fails, the OS refusing a socket or a process)
is one log line and a backoff, never a tight loop.

The controller is the loop; each job is an object of its own: `DesiredState` reads the store,
`Executor` carries out each deployment's steps, `RoutePublisher` tells the gateway (routing
snapshots), `Queries` answers the control API. The stores are handed in (`Stores`). Replicas are
known only through the backend's `ReplicaHandle`s (backends/base.py) and move through the state
machine in replicas.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from typing import Callable

from ...backends.base import Backend
from ...domain.errors import FleetError, LeaseLost
from ...store.leases import Fence
from ...schema.workspace import Workspace
from ..dataplane.routing import NO_COLLECTION, Router, free
from . import autoscaler, reconciler, spares
from .clock import Clock
from .deployment_state import DeploymentRuntime
from .desired_state import DesiredState
from .executor import Executor
from .publisher import RoutePublisher
from .queries import Queries
from .reconciler import Desired, Key, Retire, Rollout, Scale, Settle
from .replica_rows import ReplicaRows, reachable
from .replicas import Listener, ReplicaState as S, Roster, transition
from .stores import Stores

log = logging.getLogger("modelfleet.controller")

ERROR_REPEAT_S = 60.0      # the same reconcile error is logged again at most this often
PASS_EVERY_S = 1.0         # a leader's pass when nothing pokes it
FOLLOW_POLL_S = 0.25       # a follower's: it learns of the leader's changes (its replicas) this soon
# Settings that never change what a replica runs: they apply to the serving group at once, even
# while a rollout of a new spec is under way.
SETTINGS_IN_PLACE = ("request_settings", "liveness_probe", "readiness_probe", "resources", "instance_count",
                     "description", "tags")


class Controller:
    def __init__(self, ws: Workspace, stores: Stores, backend: Backend, router: Router,
                 clock: Clock | None = None, after_pass: Callable[[bool], None] | None = None):
        self.ws = ws
        self.stores = stores
        self.backend = backend
        self.router = router
        self.clock = clock or Clock()
        self._after_pass = after_pass         # told after each pass whether it read the rows (heap.py)
        self.runtimes: dict[Key, DeploymentRuntime] = {}
        self.listeners: list[Listener] = []   # told of every replica's state changes (telemetry)
        self.collection = NO_COLLECTION       # collection.hub.CollectionHub once monitoring is installed
        self.roster = Roster()   # every replica until it stops, as every view counts them
        self.state = DesiredState(stores)
        self.publisher = RoutePublisher(router, self.state, self.runtimes, lambda: self.collection)
        self.executor = Executor(ws, stores, backend, self.clock, self.state, self.publisher, self._spawn,
                                 self.poke, self._step_one, self.runtimes, self.listeners, self.roster,
                                 lambda: self.collection, lambda: self.fence if self.leading else False,
                                 self.share)
        self.replica_rows = ReplicaRows(stores.replicas, backend, self.clock, ws.logs_dir, self.listeners, self.roster,
                                        self.runtimes, self.publisher.publish, self.state.compute_of)
        self._sharing = asyncio.Lock()   # one write of the serving replicas at a time
        self.queries = Queries(ws, self.runtimes, self.state, backend, self.roster)
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()
        self._reconciling = asyncio.Lock()  # one pass at a time: the last reads are the ones published
        self._stopping = False
        self._last_error: tuple[str, float] | None = None   # the reconcile error logged last, and when
        # Whether this server runs the controller (leadership.py): a follower only reads the rows
        # and publishes routing from them. `fence` is the lease every write carries (None: the
        # only server, as in tests that build a Controller alone).
        self.leading = True
        self.fence: Fence | None = None

    # -- loop --------------------------------------------------------------------------------

    def poke(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        await self.reconcile()
        self._task = asyncio.create_task(self._loop())

    async def _loop(self) -> None:
        while not self._stopping:
            await self.clock.wait(asyncio.ensure_future(self._wake.wait()),
                                  PASS_EVERY_S if self.leading else FOLLOW_POLL_S)
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

    # -- leading and following -------------------------------------------------------------

    async def lead(self, fence: Fence) -> None:
        """This server took the lease: act from the next pass on. The replicas of other servers it
        reaches (it followed their rows) are adopted: supervised, kept, never restarted; the rest
        is restored."""
        async with self._reconciling:
            self.fence, self.leading = fence, True
            await self.backend.adopt(self.replica_rows.adopted())
            for rt in self.runtimes.values():
                for r in reachable(rt):
                    if r not in self.executor.watching:
                        self.executor.watch(rt, r)
        self.poke()

    async def share(self) -> None:
        """Write the serving replicas other servers reach, where they changed (a leader's)."""
        async with self._sharing:
            await self.replica_rows.write(self.executor.fence())

    async def follow(self, why: str = "") -> None:
        """This server no longer holds the lease: stop acting at once. Steps in progress are
        cancelled (a rollout's new replicas are stopped, the serving ones are left as they are);
        routing goes on from the rows."""
        if not self.leading:
            return
        self.leading, self.fence = False, None
        await self.backend.adopt(None)   # its agents remove nothing from now on
        steps = [rt.busy for rt in self.runtimes.values() if rt.busy is not None]
        # replicas others reach are the next leader's to supervise (and stop); local ones stay ours
        steps += [task for r, task in self.executor.watching.items() if r.handle.address() is not None]
        for task in steps:
            task.cancel()
        await asyncio.gather(*steps, return_exceptions=True)
        self.poke()

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            e = task.exception()
            if isinstance(e, LeaseLost):   # the store refused a write: another server leads now
                self._spawn(self.follow(e.message))
            log.warning("controller step failed: %s", e.message if isinstance(e, FleetError) else
                        f"{type(e).__name__}: {e}")

    async def reconcile(self) -> None:
        async with self._reconciling:
            if self._stopping:
                return
            fresh = await self.state.read()
            self._step(fresh)
            if not self.leading:
                await self.replica_rows.follow(self.state.replica_rows)
            else:
                try:
                    await self.share()
                except LeaseLost as e:   # the store refused: another server leads now
                    await self.follow(e.message)
            if self._after_pass is not None:
                self._after_pass(fresh)

    def _step(self, fresh: bool) -> None:
        """One pass over every deployment. Between commits to the store (`fresh` false) the rows
        are those read last, and routing changes only through the actions' own publishes."""
        desired, unreadable = self.state.desired()
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
            if self.leading:
                desired[key] = self._with_spares(rt, self._autoscale(rt, want, now), now)
        if not self.leading:
            self._follow_rows(desired, fresh)
            return
        actual = {key: rt.actual() for key, rt in self.runtimes.items() if key not in unreadable}
        for action in reconciler.step(desired, actual, now):
            self._execute(action)
        restored = self.publisher.restored or not any(rt.busy for rt in self.runtimes.values())
        if fresh or restored != self.publisher.restored:
            self.publisher.restored = restored
            self.publisher.publish()

    def _follow_rows(self, desired: dict[Key, Desired], fresh: bool) -> None:
        """A follower's pass: the rows' settings and keys in routing, no step taken. Deployments
        whose rows are gone leave routing (replicas still running here stop when it leads again)."""
        for key, rt in list(self.runtimes.items()):
            if key not in desired and not rt.group and rt.busy is None:
                del self.runtimes[key]
                self.state.forget(key)
        if fresh or not self.publisher.restored:
            self.publisher.restored = True
            self.publisher.publish()

    def _step_one(self, rt: DeploymentRuntime) -> None:
        """Step `rt` alone, from its row as last read: what a request at zero or the end of a
        scale needs at once, without the cost of a pass over the whole fleet."""
        if not self.leading:
            return
        if rt.desired is None or rt.busy is not None or rt.retired:
            self.poke()
            return
        now = self.clock.now()
        want = self._with_spares(rt, self._autoscale(rt, rt.desired, now), now)
        for action in reconciler.step({rt.key: want}, {rt.key: rt.actual()}, now):
            self._execute(action)

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

    def _with_spares(self, rt: DeploymentRuntime, want: Desired, now: float) -> Desired:
        """`want` plus the spares started while every replica was stuck (spares.py)."""
        snapshot = rt.snapshot
        if snapshot is not None and snapshot.admission.on_stall is None:
            snapshot.admission.on_stall = lambda: self._stall(rt)
        spare = rt.spare
        if not spare.count:
            return want
        spares.look(spare, any(not free(r.handle, now) for r in rt.group), now)
        return dataclasses.replace(want, replicas=want.replicas + spare.count) if spare.count else want

    def _stall(self, rt: DeploymentRuntime) -> None:
        """The gateway holds a request of `rt` because no replica is free: a spare, if allowed."""
        if not self.leading or rt.desired is None or rt.spec is None or rt.retired:
            return
        wanted = rt.scale.want if rt.scale is not None else rt.desired.replicas
        if spares.on_stall(rt.spare, spares.limit(rt.spec.scale_settings, wanted), rt.busy is not None):
            log.warning("every replica of %s/%s is in a model call far older than usual while requests wait; "
                        "starting a spare", rt.endpoint, rt.name)
            self._step_one(rt)

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
            rt.busy = self._spawn(self.executor.rollout(rt, action.desired))
        elif isinstance(action, Scale):
            rt.busy = self._spawn(self.executor.scale(rt, action.want))
        elif isinstance(action, Settle):
            self._spawn(asyncio.to_thread(self.stores.serving.record_rollout, rt.endpoint, rt.name,
                                          action.spec_hash, ok=True, fence=self.fence))
        elif isinstance(action, Retire):
            rt.retired = True
            self._spawn(self.executor.retire(rt))

    # -- shutdown ----------------------------------------------------------------------------

    async def stop(self, hand_over: bool = False) -> None:
        """Stop the loop and this server's replicas. With `hand_over` (another server of the
        workspace goes on), replicas the others reach are let go, not stopped: the next leader
        adopts them. A follower never stops them: they are the leader's."""
        self._stopping = True
        if self._task:
            self._task.cancel()
        for t in list(self._tasks):
            t.cancel()
        if hand_over or not self.leading:
            for rt in self.runtimes.values():
                for r in reachable(rt):
                    rt.group = [x for x in rt.group if x is not r]
                    transition(r, S.DRAINING, "handed over to the next leader")
                    r.handle.disconnect()
                    transition(r, S.STOPPED, "handed over to the next leader")
        everyone = [r for rt in self.runtimes.values() for r in rt.group]
        for r in everyone:
            if r.state is S.READY:
                transition(r, S.DRAINING, "server stopping")
        await self.executor.stop(everyone, 2.0)
        if self.leading and not hand_over:   # the last server: no row may name a replica stopped here
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.share(), 5.0)
        await self.backend.shutdown()
        self.state.close()
