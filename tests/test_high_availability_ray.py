"""No single point of failure (docs/production.md): two servers on one PostgreSQL and one Azurite
datastore (the workspace's default: models are uploaded there and the Ray replicas read it into
their node's cache), a Ray compute, Debian's nginx in front, every process real and on 127.0.0.1.

kill -9 of the leading server under load costs no request through nginx; the other server leads
within 10 s and adopts the replica actors (none restarted); a rolling update started before the
kill completes after it; the killed server, started again, follows. A leader cut off from
PostgreSQL (a TCP proxy between them, cut; the process alive) stops acting within its lease and
the other takes over, and no deployment is touched twice.
"""

from __future__ import annotations

import json
import os
import re
import signal
import uuid

import pytest
from azure.storage.blob import ContainerClient

from modelfleet.backends.ray import cluster as ray_cluster

from .azurite import ACCOUNT, KEY, running
from .conftest import IRIS_ROWS
from .helpers import RAY_GROUP, Load, alive, wait_until
from .nginx import Nginx
from .tcp_proxy import TcpProxy
from .test_high_availability import Server

pytestmark = [pytest.mark.slow, RAY_GROUP]
LEASE_S = 3.0
IRIS_BODY = json.dumps({"data": IRIS_ROWS}).encode()


def _host_port(url: str) -> str:
    return url.removeprefix("http://")


class Cluster:
    """The workspace: servers a and b, the Ray compute, nginx, an endpoint with two replicas, the
    Azurite datastore `ha_store` (the default) and the Ray node's cache."""

    def __init__(self, fleet, a: Server, b: Server, token: str, compute: dict, nginx: Nginx, key: str):
        self.fleet, self.a, self.b, self.token, self.compute, self.nginx, self.key = \
            fleet, a, b, token, compute, nginx, key

    def serving(self, server: Server) -> dict[str, int]:
        """The replicas `server` routes blue to: id -> the actor's pid."""
        view = server.get("/api/endpoints/ha-ep/deployments/blue")
        return {r["id"]: r["pid"] for r in view["replicas"] if r["state"] == "ready"}

    def read_from_store(self, version: int) -> bool:
        """Every file of iris:`version` is a blob of the store and in the Ray node's cache."""
        return all(f"blobs/{f['sha256']}" in self.stored and (self.cache / "blobs" / f["sha256"]).is_file()
                   for f in self.models[version - 1].files)

    def load(self, threads: int = 4) -> Load:
        return Load(f"{self.nginx.url}/endpoints/ha-ep/score", self.key, IRIS_BODY, threads=threads)


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    """One Azurite for the module (each test has a container of its own): a start costs seconds."""
    with running(tmp_path_factory.mktemp("azurite")) as store:
        yield store


@pytest.fixture
def ray_ha(fleet, postgres_server, emulator, models_dir, tmp_path, monkeypatch):
    token_file = tmp_path / "admin-token"
    token_file.write_text("ha-ray-admin-token-0123456789")
    token_file.chmod(0o600)
    token = token_file.read_text()
    proxy = TcpProxy("127.0.0.1", postgres_server.port).start()   # server a reaches PostgreSQL through it
    database = postgres_server.create_database()
    monkeypatch.setenv("FLEET_DATABASE_URL", database.replace(f":{postgres_server.port}/", f":{proxy.port}/"))
    monkeypatch.setenv("FLEET_NODE_CACHE", str(tmp_path / "node-cache"))   # the Ray head inherits it
    fleet.server.configure(admin_token_file=str(token_file), lease_duration_s=LEASE_S)
    first = fleet.server.start()[0]
    a = Server(first["url"], first["pid"], token)
    wait_until(lambda: a.role() == "leader", timeout=10)
    compute = None
    nginx = None
    try:
        fleet.computes.create("raydev", num_cpus=4)
        compute = fleet.computes.show("raydev")
        from .helpers import compute_row
        compute = compute_row(fleet, "raydev")
        # uploads go to the store before their rows; every replica reads its model from there
        container = f"ws-{uuid.uuid4().hex[:12]}"
        fleet.datastores.create(emulator.document("ha_store", container), default=True)
        models = [fleet.models.register("iris", models_dir / "iris", "1"),
                  fleet.models.register("iris", models_dir / "iris_v2", "2")]
        fleet.online_endpoints.create("ha-ep", compute="raydev")
        fleet.online_deployments.create("blue", "ha-ep", "iris:1", instance_count=2)
        key = fleet.online_endpoints.get_keys("ha-ep")["primaryKey"]
        monkeypatch.setenv("FLEET_DATABASE_URL", database)      # server b reaches PostgreSQL directly
        # server b joins from the same folder: the Ray namespace its agent finds, adopts and stops
        # the actors in is named after the folder's path (backends/ray/backend.py namespace_for)
        joined = fleet.server.join()
        b = Server(joined["url"], joined["pid"], token)
        wait_until(lambda: b.role() == "follower", timeout=10)
        nginx = Nginx([_host_port(a.url), _host_port(b.url)]).start()
        c = Cluster(fleet, a, b, token, compute, nginx, key)
        wait_until(lambda: len(c.serving(b)) == 2, timeout=30)   # the follower reaches both actors
        c.proxy, c.models, c.cache = proxy, models, tmp_path / "node-cache"
        c.stored = {blob.name for blob in ContainerClient(emulator.url, container, credential={
            "account_name": ACCOUNT, "account_key": KEY}).list_blobs()}
        yield c
    finally:
        if nginx is not None:
            nginx.stop()
        proxy.stop()   # first: a server cut off from PostgreSQL stops at once, not after the SIGTERM wait
        from .conftest import _stop_servers
        _stop_servers(fleet.workspace.path)
        if compute is not None:
            ray_cluster.stop_local(compute["temp_dir"])


def test_every_server_serves_a_ray_endpoint_and_kill_9_of_the_leader_fails_no_request_restarts_no_actor(
        ray_ha):
    c = ray_ha
    assert c.serving(c.a) == c.serving(c.b)              # the same two actors, reached from both
    assert c.b.score("ha-ep", c.key).status_code == 200  # the follower's gateway serves them
    # the model went to the store, and each replica took it from there through the node's cache
    assert c.read_from_store(1)
    logs = c.fleet.online_deployments.get_logs("blue", "ha-ep", lines=200)
    assert len(re.findall(r"model \w+: (read \d+ bytes from|in the node's cache, nothing read from) "
                          r"datastore 'ha_store'", logs)) == 2, logs
    with c.load(threads=2) as load:
        wait_until(lambda: load.result.ok >= 50, timeout=60)
    assert load.result.failed == []

    # the same set-up (a start costs seconds): kill -9 of the leader under load
    before = c.serving(c.b)
    with c.load() as load:
        wait_until(lambda: load.result.ok >= 20, timeout=60)
        os.kill(c.a.pid, signal.SIGKILL)
        wait_until(lambda: not alive(c.a.pid), timeout=10)
        wait_until(lambda: c.b.role() == "leader", timeout=10)
        served = load.result.ok
        wait_until(lambda: load.result.ok >= served + 50, timeout=60)   # still served, through b
        # the new leader's passes leave the adopted actors as they are
        wait_until(lambda: c.b.get("/api/servers") and c.serving(c.b) == before, timeout=10)
    assert load.result.failed == []
    assert c.serving(c.b) == before and all(alive(pid) for pid in before.values())

    restarted = c.fleet.server.start()[0]    # the killed server again, on its kept port
    again = Server(restarted["url"], restarted["pid"], c.token)
    wait_until(lambda: again.role() == "follower", timeout=10)
    wait_until(lambda: c.serving(again) == before, timeout=30)
    assert c.b.role() == "leader"
    again.http.close()


def test_a_rolling_update_started_before_the_kill_completes_after_it(ray_ha):
    c = ray_ha
    before = c.serving(c.b)
    with c.load() as load:
        wait_until(lambda: load.result.ok >= 20, timeout=60)
        c.fleet.online_deployments.update("blue", "ha-ep", model="iris:2", wait=False)
        os.kill(c.a.pid, signal.SIGKILL)
        wait_until(lambda: c.b.role() == "leader", timeout=10)

        def updated() -> bool:
            view = c.b.get("/api/endpoints/ha-ep/deployments/blue")
            ready = [r for r in view["replicas"] if r["state"] == "ready"]
            return view["provisioning_state"] == "Succeeded" and view["model"] == "iris:2" and len(ready) == 2 \
                and not set(before) & {r["id"] for r in ready}
        wait_until(updated, timeout=120)
        assert c.read_from_store(2)         # the new leader handed its replicas the store too
        served = load.result.ok
        wait_until(lambda: load.result.ok >= served + 20, timeout=60)
    assert load.result.failed == []
    wait_until(lambda: not any(alive(pid) for pid in before.values()), timeout=30)   # the old ones stopped


def test_a_leader_cut_off_from_postgresql_steps_down_and_nothing_is_touched_twice(ray_ha):
    c = ray_ha
    before = c.serving(c.b)
    c.proxy.cut()                                     # a alive, its database connections dead
    wait_until(lambda: c.b.role() == "leader", timeout=10)
    log = c.fleet.workspace.logs_dir / "server.log"
    wait_until(lambda: "stops running the controller" in log.read_text(), timeout=LEASE_S + 5)
    # the new leader adopted the actors and took no step on them; the old one wrote nothing since
    assert c.serving(c.b) == before
    view = c.b.get("/api/endpoints/ha-ep/deployments/blue")
    assert view["provisioning_state"] == "Succeeded"
    with c.load(threads=2) as load:
        wait_until(lambda: load.result.ok >= 50, timeout=60)
    assert load.result.failed == []
    assert all(alive(pid) for pid in before.values())
