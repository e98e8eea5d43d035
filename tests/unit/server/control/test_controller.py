"""The controller on a fake backend and a fake clock: every step of the desired-state machine,
in milliseconds, with a real SQLite store."""

from __future__ import annotations

import asyncio

import pytest

from modelfleet.assets.models import Registry
from modelfleet.server.control.controller import Controller
from modelfleet.server.control.stores import Stores
from modelfleet.server.control.replicas import ReplicaState
from modelfleet.server.dataplane.routing import Router
from modelfleet.schema.wire import DeploymentRecord
from modelfleet.store import ArtifactStore, Database
from modelfleet.store.serving import ServingStore
from modelfleet.schema.workspace import Workspace

from tests.fakes import FakeBackend, FakeClock, settle, until


class Harness:
    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.ws = Workspace("unit", tmp_path / "ws")
        self.db = Database(self.ws.db_url)
        model_dir = tmp_path / "model"
        model_dir.mkdir()
        (model_dir / "model.pkl").write_bytes(b"not really a model: the fake backend never loads it")
        self.model = Registry(self.db, ArtifactStore(self.ws.artifacts)).register("m", model_dir, "1")
        self.store = ServingStore(self.db)
        self.store.create_endpoint("ep", {"auth_mode": "key"})
        self.clock = FakeClock()
        self.backend = FakeBackend()
        self.router = Router()
        self.controller = self.new_controller()

    def new_controller(self) -> Controller:
        return Controller(self.ws, Stores.of_workspace(self.ws, self.db), self.backend, self.router, self.clock)

    def put(self, name: str = "blue", endpoint: str = "ep", **settings) -> None:
        spec = DeploymentRecord(model=self.model.ref, model_type=self.model.type,
                                model_sha256=self.model.sha256, **settings)
        self.store.put_deployment(endpoint, name, spec.model_dump(), create=None)

    def row(self, name: str = "blue") -> dict:
        return self.store.deployment("ep", name)

    def routed(self, name: str = "blue") -> tuple:
        ep = self.router.table.endpoints.get("ep")
        dep = ep.deployments.get(name) if ep else None
        return dep.replicas if dep else ()

    async def reconcile(self) -> None:
        await self.controller.reconcile()
        await settle()

    async def converge(self, name: str = "blue") -> None:
        """Reconcile until the deployment has no step under way and its row is settled, then once
        more, so that the routing table is published from the settled state."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while True:
            await self.reconcile()
            if not self.controller.queries.is_busy("ep", name) and self.row(name)["state"] in ("Succeeded", "Failed"):
                await self.reconcile()
                return
            assert loop.time() < deadline, "the deployment did not settle"
            await asyncio.sleep(0.005)


@pytest.fixture
def h(tmp_path):
    return Harness(tmp_path)


def run(coro):
    return asyncio.run(coro)


def test_rollout_starts_every_replica_then_routes_to_them(h):
    async def scenario():
        h.put(instance_count=2)
        await h.converge()
        live = h.backend.live("blue")
        assert len(live) == 2
        assert set(h.routed()) == set(live)
        assert h.row()["state"] == "Succeeded"
        assert h.router.table.ready
    run(scenario())


def test_rolling_update_switches_then_drains_the_old_group(h):
    async def scenario():
        h.put(instance_count=1, environment_variables={"V": "1"})
        await h.converge()
        old = h.backend.live("blue")[0]
        request = old.send("k", 1, b"{}")            # in flight on the old replica
        h.put(instance_count=1, environment_variables={"V": "2"})
        await h.reconcile()
        new = await until(lambda: [r for r in h.backend.live("blue") if r is not old])
        await until(lambda: h.routed() == (new[0],))  # new requests go to the new group at once
        await settle()
        assert not old.stopped                       # ... while the old one finishes its request
        old.answer_all()
        await h.clock.advance(0.01)                   # the drain looks again
        await until(lambda: old.stopped)
        assert request.result() == (0, b'"ok"')
        await h.converge()
        assert h.row()["state"] == "Succeeded" and h.row()["spec"]["environment_variables"] == {"V": "2"}
    run(scenario())


def test_a_new_version_that_fails_to_start_is_rolled_back(h):
    async def scenario():
        h.put(environment_variables={"V": "good"})
        await h.converge()
        good = h.backend.live("blue")
        h.put(environment_variables={"FAKE_INIT": "fail"})
        await h.converge()
        row = h.row()
        assert row["state"] == "Failed" and "boom" in row["error"]
        assert row["spec"]["environment_variables"] == {"V": "good"}   # the store tells the truth
        assert h.backend.live("blue") == good and h.routed() == tuple(good)
        started = len(h.backend.started)
        await h.clock.advance(60)
        await h.reconcile()
        assert len(h.backend.started) == started      # a failed spec is not retried until it changes
    run(scenario())


def test_a_replica_not_ready_within_the_readiness_probe_fails_the_rollout(h):
    async def scenario():
        h.put(environment_variables={"FAKE_INIT": "hang"},
              readiness_probe={"period": 1, "failure_threshold": 3})
        await h.reconcile()
        await until(lambda: h.backend.started)
        await h.clock.advance(3)
        await h.converge()
        assert h.row()["state"] == "Failed" and "not ready within 3s" in h.row()["error"]
        assert h.backend.live() == []
    run(scenario())


def test_scale_up_and_down(h):
    async def scenario():
        h.put(instance_count=1)
        await h.converge()
        first = h.backend.live("blue")
        h.put(instance_count=3)
        await h.converge()
        await until(lambda: len(h.routed()) == 3)
        assert first[0] in h.routed()                 # scaling keeps the replicas it has
        h.put(instance_count=1)
        await h.converge()
        await until(lambda: len(h.backend.live("blue")) == 1)
        assert h.routed() == tuple(h.backend.live("blue"))
    run(scenario())


def test_a_dead_replica_is_dropped_at_once_and_restarted_with_backoff(h):
    async def scenario():
        h.put(instance_count=2)
        await h.converge()
        victim, survivor = h.backend.live("blue")
        victim.die()
        await until(lambda: h.routed() == (survivor,))
        assert any("exited with code -9" in n for n in victim.notes)
        await h.reconcile()
        assert len(h.backend.live("blue")) == 1       # backing off: 100 ms
        await h.clock.advance(0.1)
        await h.reconcile()
        await until(lambda: len(h.routed()) == 2)
        # a second crash soon after doubles the wait
        replacement = [r for r in h.backend.live("blue") if r is not survivor][0]
        replacement.die()
        await until(lambda: h.routed() == (survivor,))
        await h.clock.advance(0.1)
        await h.reconcile()
        assert len(h.backend.live("blue")) == 1
        await h.clock.advance(0.1)
        await h.reconcile()
        await until(lambda: len(h.routed()) == 2)
    run(scenario())


def test_a_replica_that_stops_answering_probes_is_replaced(h):
    async def scenario():
        h.put(liveness_probe={"period": 1, "timeout": 1, "failure_threshold": 3})
        await h.converge()
        hung = h.backend.live("blue")[0]
        hung.answer_probes = False
        for _ in range(3):
            await h.clock.advance(1)
        await until(lambda: hung.closed)
        assert any("missed 3 liveness probes" in n for n in hung.notes)
        await h.clock.advance(0.1)
        await h.reconcile()
        await until(lambda: h.routed() and h.routed()[0] is not hung)
    run(scenario())


def test_a_replica_over_its_memory_limit_is_killed(h):
    async def scenario():
        h.put(resources={"limits": {"memory": "64Mi"}})
        await h.converge()
        fat = h.backend.live("blue")[0]
        fat.rss = 65 * 2**20
        await h.clock.advance(0.5)
        await until(lambda: fat.closed)
        assert any("exceeded its memory limit (65 MiB > 64 MiB)" in n for n in fat.notes)
    run(scenario())


def test_request_settings_apply_in_place_without_a_restart(h):
    async def scenario():
        h.put()
        await h.converge()
        replica = h.backend.live("blue")[0]
        h.put(request_settings={"request_timeout_ms": 9000})
        await h.converge()
        dep = h.router.table.endpoints["ep"].deployments["blue"]
        assert dep.settings.request_timeout_ms == 9000 and dep.replicas == (replica,)
        assert h.backend.live("blue") == [replica]
    run(scenario())


def test_a_deleted_deployment_is_drained_and_retired(h):
    async def scenario():
        h.put("blue")
        h.put("green")
        await h.converge("blue")
        await h.converge("green")
        green = h.backend.live("green")[0]
        h.store.delete_deployment("ep", "green")
        await h.reconcile()
        await until(lambda: green.stopped)
        assert "green" not in h.router.table.endpoints["ep"].deployments
        await until(lambda: ("ep", "green") not in h.controller.runtimes)
    run(scenario())


def test_after_a_server_restart_every_deployment_is_restored(h):
    async def scenario():
        h.put(instance_count=2, environment_variables={"V": "1"})
        await h.converge()
        await h.controller.stop()
        assert h.backend.live() == [] and h.backend.shut_down
        h.controller = h.new_controller()
        await h.converge()
        assert len(h.backend.live("blue")) == 2 and h.row()["state"] == "Succeeded"
    run(scenario())


def test_a_failed_restore_is_retried_with_backoff_until_it_serves(h):
    async def scenario():
        h.put()
        await h.converge()
        await h.controller.stop()
        h.backend.init = "fail"
        h.controller = h.new_controller()
        await h.converge()
        assert h.row()["state"] == "Failed"           # said, not hidden ...
        h.backend.init = None                         # ... and retried once the cause is gone
        await h.clock.advance(0.1)
        await h.converge()
        assert h.row()["state"] == "Succeeded" and len(h.routed()) == 1
    run(scenario())


def test_every_state_change_goes_through_the_transition_listeners(h):
    seen = []
    listener = lambda r, old, new, reason: seen.append((old, new))  # noqa: E731
    h.controller.listeners.append(listener)

    async def scenario():
        h.put(environment_variables={"V": "1"})
        await h.converge()
        h.put(environment_variables={"V": "2"})
        await h.converge()
    run(scenario())
    S = ReplicaState
    assert seen == [(None, S.STARTING), (S.STARTING, S.READY),        # created, then ready
                    (None, S.STARTING), (S.STARTING, S.READY), (S.READY, S.DRAINING), (S.DRAINING, S.STOPPED)]


def test_an_autoscaled_deployment_goes_to_zero_when_idle_and_a_request_brings_a_replica_back(h):
    async def scenario():
        h.put(scale_settings={"type": "target_utilization", "min_instances": 0, "max_instances": 2,
                              "idle_timeout": 30})
        await h.converge()
        first = h.backend.live("blue")
        assert len(first) == 1
        await h.clock.advance(31)                     # idle past the timeout
        await h.reconcile()
        await until(lambda: first[0].stopped)
        await h.converge()
        assert h.routed() == () and h.controller.queries.health_of("ep", "blue", 1)["health"] == "Idle"
        # a request at zero waits in the queue and asks for a replica at once
        adm = h.router.admission("ep", "blue")
        held = asyncio.ensure_future(adm.admit(asyncio.get_running_loop().time() + 10))
        await h.reconcile()
        await until(lambda: len(h.routed()) == 1)
        await held                                    # admitted by the new replica's capacity
        assert h.controller.queries.health_of("ep", "blue", 1)["last_cold_start_ms"] is not None
    run(scenario())


def test_a_request_at_zero_starts_a_replica_without_a_pass_over_the_fleet(h):
    async def scenario():
        h.put(scale_settings={"type": "target_utilization", "min_instances": 0, "max_instances": 1,
                              "idle_timeout": 5})
        await h.converge()
        await h.clock.advance(6)
        await h.reconcile()
        await until(lambda: h.backend.live("blue") == [])
        await h.converge()
        passes = 0
        reconcile = h.controller.reconcile

        async def counted():
            nonlocal passes
            passes += 1
            await reconcile()
        h.controller.reconcile = counted
        held = asyncio.ensure_future(h.router.admission("ep", "blue").admit(asyncio.get_running_loop().time() + 10))
        await held                                    # no reconcile was called: the request stepped it
        assert passes == 0 and len(h.routed()) == 1
    run(scenario())


def test_a_change_to_one_endpoint_keeps_the_others_snapshots(h):
    async def scenario():
        h.store.create_endpoint("other", {"auth_mode": "key"})
        h.put("green", endpoint="other")
        h.put(instance_count=1)
        await h.converge()
        await h.converge()
        other = h.router.table.endpoints["other"]
        assert len(other.deployments["green"].replicas) == 1
        h.put(instance_count=2)                      # a scale of ep: a new row, a full publish
        await h.reconcile()
        await until(lambda: len(h.routed()) == 2)
        victim = h.backend.live("blue")[0]            # a death on ep: ep's snapshot alone
        victim.die()
        await until(lambda: len(h.routed()) == 1)
        assert h.router.table.endpoints["other"] is other
        await h.reconcile()                           # nothing committed since: no publish at all
        assert h.router.table.endpoints["other"] is other
    run(scenario())


def test_an_autoscaled_deployment_grows_under_load_and_shrinks_after(h):
    async def scenario():
        h.put(scale_settings={"type": "target_utilization", "min_instances": 1, "max_instances": 3,
                              "target_utilization_percentage": 50},
              request_settings={"max_concurrent_requests_per_instance": 2})
        await h.converge()
        adm = h.router.admission("ep", "blue")
        loop = asyncio.get_running_loop()
        busy = [asyncio.ensure_future(adm.admit(loop.time() + 10)) for _ in range(3)]
        await settle()
        await h.clock.advance(1)
        await h.reconcile()
        await until(lambda: len(h.routed()) == 3)     # 3 busy at 1 of 2 slots each: 3 replicas
        for fut in busy:
            await fut
            adm.release()
        for _ in range(6):                            # quiet for longer than the scale-down window
            await h.clock.advance(1)
            await h.reconcile()
        await h.clock.advance(0.01)
        await until(lambda: len(h.backend.live("blue")) == 1)
        assert len(h.routed()) == 1
    run(scenario())


def test_a_row_the_server_cannot_read_does_not_stop_the_others(h):
    async def scenario():
        h.put("blue")
        h.store.put_deployment("ep", "green", {"model": "m:1", "instance_count": "many"}, create=None)
        await h.converge("blue")
        assert len(h.backend.live("blue")) == 1 and h.backend.live("green") == []
    run(scenario())


def test_every_view_counts_the_same_replicas_through_a_rollout_under_load_and_at_zero(h):
    def counts() -> dict:
        n = h.controller.queries.replica_counts("ep", "blue").to_dict()
        shown = h.controller.queries.health_of("ep", "blue", h.row()["spec"]["instance_count"])   # what show says
        assert {k: shown[f"{k}_replicas"] for k in n} == n
        return n

    async def scenario():
        h.put(instance_count=1, environment_variables={"V": "1"})
        await h.converge()
        old = h.backend.live("blue")[0]
        assert counts() == {"wanted": 1, "ready": 1, "busy": 0, "starting": 0, "draining": 0, "failed": 0}
        request = old.send("k", 1, b"{}")              # in flight: busy, and still ready
        assert counts() == {"wanted": 1, "ready": 1, "busy": 1, "starting": 0, "draining": 0, "failed": 0}
        h.put(instance_count=1, environment_variables={"V": "2", "FAKE_INIT": "hang"})
        await h.reconcile()
        await until(lambda: len(h.backend.live("blue")) == 2)   # the new version starts beside the old
        assert counts() == {"wanted": 1, "ready": 1, "busy": 1, "starting": 1, "draining": 0, "failed": 0}
        await h.clock.advance(60)                       # it never gets ready: rolled back
        await h.converge()
        old.answer_all()
        assert request.result() == (0, b'"ok"')
        assert counts() == {"wanted": 1, "ready": 1, "busy": 0, "starting": 0, "draining": 0, "failed": 0}
        h.put(environment_variables={"V": "1"}, scale_settings={
            "type": "target_utilization", "min_instances": 0, "max_instances": 1, "idle_timeout": 30})
        await h.converge()
        await h.clock.advance(31)                       # idle past the timeout: scaled to zero
        await h.reconcile()
        await until(lambda: old.stopped)
        await h.converge()
        assert counts() == {"wanted": 0, "ready": 0, "busy": 0, "starting": 0, "draining": 0, "failed": 0}
        assert h.controller.queries.health_of("ep", "blue", 1)["health"] == "Idle"
    run(scenario())


def test_the_same_deployment_in_two_endpoints_has_its_own_replicas_counted(h):
    async def scenario():
        h.store.create_endpoint("other", {"auth_mode": "key"})
        h.put("blue", endpoint="other")
        h.put()
        await h.converge()
        await until(lambda: len(h.backend.live("blue")) == 2)
        ids = {r.id for r in h.backend.live("blue")}
        assert len(ids) == 2    # ids differ by endpoint: a Ray actor's name is unique cluster-wide
        for endpoint in ("ep", "other"):
            assert h.controller.queries.replica_counts(endpoint, "blue").ready == 1
    run(scenario())
