"""Two controllers on one store and one backend whose replicas every server reaches (as a Ray
compute's): the follower routes to the leader's replicas from the rows, and adopts them when it
takes the lease; a leader whose lease ended cannot write. Fake backend and clock, real SQLite."""

from __future__ import annotations

import sqlalchemy as sa

from modelfleet.server.control.replicas import ReplicaState
from modelfleet.server.dataplane.routing import Router
from modelfleet.store.leases import Fence, LeaseStore
from modelfleet.store.schema import leases

from tests.fakes import settle
from .test_controller import Harness, run


class TwoServers(Harness):
    def __init__(self, tmp_path):
        super().__init__(tmp_path)
        self.store.update_endpoint("ep", spec={"auth_mode": "key", "compute": "ray-c"})
        self.backend.reachable = True
        self.leases = LeaseStore(self.db)
        self.a = self.controller
        self.a.fence = Fence(self.leases.claim("a", 60.0).epoch)
        self.b_router = Router()
        self.b = self.new_controller(self.b_router)
        self.b.leading = False

    def new_controller(self, router=None):
        from modelfleet.server.control.controller import Controller
        from modelfleet.server.control.stores import Stores
        return Controller(self.ws, Stores.of_workspace(self.ws, self.db), self.backend, router or self.router,
                          self.clock)

    def b_routed(self, name: str = "blue") -> tuple:
        ep = self.b_router.table.endpoints.get("ep")
        dep = ep.deployments.get(name) if ep else None
        return dep.replicas if dep else ()

    def stores_rows(self) -> list[dict]:
        with self.db.read() as conn:
            return [r._asdict() for r in conn.execute(sa.text("SELECT * FROM replicas"))]

    def hand_over(self) -> Fence:
        """a's lease lapses and b takes it."""
        with self.db.write() as conn:
            conn.execute(leases.update().values(expires_at=0.0))
        return Fence(self.leases.claim("b", 60.0).epoch)


def test_the_follower_routes_to_the_leaders_replicas_and_adopts_them_without_a_restart(tmp_path):
    h = TwoServers(tmp_path)

    async def scenario():
        h.put(instance_count=2)
        await h.converge()
        served = set(h.backend.live("blue"))
        assert len(served) == 2 and set(h.routed()) == served
        rows = h.stores_rows()
        assert {r["id"] for r in rows} == {r.id for r in served}

        await h.b.reconcile()
        await settle()
        assert set(h.b_routed()) == served          # the follower's gateway reaches them too
        started = len(h.backend.started)

        fence = h.hand_over()
        await h.a.follow("lost the lease")
        await h.b.lead(fence)
        for _ in range(5):
            await h.b.reconcile()
            await settle()
        assert len(h.backend.started) == started     # adopted, not restarted
        assert h.backend.adopted == {"ray-c": {r.id for r in served}}
        assert all(not r.stopped for r in served)
        assert h.b.runtimes[("ep", "blue")].hash == h.row()["active_hash"]
        assert all(r.state is ReplicaState.READY for r in h.b.runtimes[("ep", "blue")].group)

        # the new leader rolls out a change: new replicas, the adopted ones stopped, rows follow
        h.put(instance_count=2, environment_variables={"V": "2"})
        for _ in range(200):
            await h.b.reconcile()
            await h.clock.advance(0.5)
            if h.row()["state"] == "Succeeded" and all(r.stopped for r in served):
                break
        assert all(r.stopped for r in served)
        assert {r["id"] for r in h.stores_rows()} == {r.id for r in h.backend.live("blue")}
        assert all(r.id.split("-")[-2] == str(fence.epoch) for r in h.backend.live("blue"))
    run(scenario())


def test_a_leader_whose_lease_ended_cannot_write_and_steps_down(tmp_path):
    h = TwoServers(tmp_path)

    async def scenario():
        h.put(instance_count=1)
        await h.converge()
        h.hand_over()                                # a paused: b took the lease meanwhile
        before = h.row()
        h.put(instance_count=1, environment_variables={"V": "2"})
        for _ in range(100):
            await h.a.reconcile()
            await h.clock.advance(0.5)
            if not h.a.leading:
                break
        assert not h.a.leading                       # the store refused its write: it follows now
        row = h.row()
        assert row["active_hash"] == before["active_hash"] and row["state"] == "Updating"
    run(scenario())
