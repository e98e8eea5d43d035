"""Compute targets on real Ray clusters on 127.0.0.1: create, show, attach, detach, delete.

Every cluster a test starts is stopped by pid at teardown, pass or fail (`stop_local`), and never
with `ray stop`, which would stop every Ray cluster of the machine.
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import psutil
import pytest
from click.testing import CliRunner

from modelfleet.cli.main import cli
from modelfleet.backends.ray import cluster as ray_cluster
from modelfleet.domain.errors import Conflict, NotFound
from modelfleet.store import Database
from modelfleet.store.computes import ComputeStore

from .helpers import RAY_GROUP

pytestmark = [pytest.mark.slow, RAY_GROUP]


@pytest.fixture(autouse=True)
def no_ray_token_from_outside(monkeypatch):
    for var in ("RAY_AUTH_TOKEN", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A second cluster on this machine, started directly (the attach tests' target)."""
    started = ray_cluster.start_local("outside", tmp_path_factory.mktemp("ray-logs"), num_cpus=1)
    yield started
    ray_cluster.stop_local(started["temp_dir"])


@pytest.fixture
def owned(fleet):
    """Stops, at teardown, every cluster the test's workspace still owns (a failed test's too)."""
    yield fleet
    for row in ComputeStore(Database(fleet.workspace.db_url)).list():   # the workspace's rows, read by the test
        if row["owned"] and row["temp_dir"]:
            ray_cluster.stop_local(row["temp_dir"])


def _loopback(ip: str) -> bool:
    addr = ipaddress.ip_address(ip)
    return (getattr(addr, "ipv4_mapped", None) or addr).is_loopback


def _sockets(temp_dir: str) -> list[tuple[str, str, str]]:
    """(process, local address, remote address) of every inet socket of the cluster's processes."""
    out = []
    for p in ray_cluster.cluster_processes(temp_dir):
        try:
            for c in p.net_connections(kind="inet"):
                out.append((f"{p.pid} {p.name()}", c.laddr.ip, c.raddr.ip if c.raddr else ""))
        except psutil.NoSuchProcess:
            continue
    return out


def _core(temp_dir: str) -> list[int]:
    """The GCS and raylet pids of a cluster (its workers come and go on their own)."""
    return [p.pid for p in ray_cluster.cluster_processes(temp_dir) if p.name() in ("gcs_server", "raylet")]


def _alive(pids: list[int]) -> list[int]:
    def running(pid):
        try:
            return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False
    return [p for p in pids if running(p)]


def test_an_owned_cluster_lives_on_loopback_with_token_auth_and_stops_by_pid(owned, cluster):
    fleet = owned
    created = fleet.computes.create("dev", num_cpus=1)
    assert created["owned"] and created["auth"] == "token" and created["address"].startswith("127.0.0.1:")
    assert "auth_token" not in created

    shown = fleet.computes.show("dev")
    assert shown["healthy"] and shown["error"] is None, shown
    assert [(n["alive"], n["cpus"], n["address"]) for n in shown["nodes"]] == [(True, 1, "127.0.0.1")]
    assert shown["cpus"] == 1 and shown["memory_bytes"] > 0
    # the module's cluster runs beside it: chosen ports never clash
    assert ray_cluster.status(cluster["address"], cluster["auth_token"])["healthy"]
    outside = _core(cluster["temp_dir"])

    temp_dir = shown["temp_dir"]
    sockets = _sockets(temp_dir)
    assert any(local for _, local, _ in sockets)
    assert [s for s in sockets if not _loopback(s[1]) or (s[2] and not _loopback(s[2]))] == []

    # Ray refuses a driver without the token, and one with a wrong token
    refused = ray_cluster.status(shown["address"], None)
    assert not refused["healthy"] and "refused the auth token" in refused["error"], refused
    assert "refused the auth token" in ray_cluster.status(shown["address"], "0" * 64)["error"]

    r = CliRunner().invoke(cli, ["compute", "show", "--name", "dev", "-o", "json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["nodes"][0]["alive"], r.output
    r = CliRunner().invoke(cli, ["compute", "list"])
    assert r.exit_code == 0 and "dev" in r.stdout and "127.0.0.1" in r.stdout

    with pytest.raises(Conflict, match="created by modelfleet"):
        fleet.computes.detach("dev")
    core = _core(temp_dir)
    assert len(core) == 2
    fleet.online_endpoints.create("on-dev", compute="dev")
    with pytest.raises(Conflict, match="used by endpoint on-dev; delete them first"):
        fleet.computes.delete("dev")
    assert _alive(core) == core  # refused before anything was stopped
    fleet.online_endpoints.delete("on-dev")

    pids = [p.pid for p in ray_cluster.cluster_processes(temp_dir)]
    r = CliRunner().invoke(cli, ["compute", "delete", "--name", "dev", "--yes", "-o", "json"])
    assert r.exit_code == 0, r.output
    assert set(core) <= set(json.loads(r.stdout)["stopped_pids"])
    assert _alive(pids) == [] and ray_cluster.cluster_processes(temp_dir) == []
    assert not Path(temp_dir).exists()
    assert fleet.computes.list() == []
    assert _alive(outside) == outside  # the other cluster was not touched


def test_attach_and_detach_an_address(fleet, cluster):
    fleet.computes.attach("shared", cluster["address"], auth_token=cluster["auth_token"])
    fleet.computes.attach("no-token", cluster["address"])
    assert [(c["name"], c["owned"], c["auth"]) for c in fleet.computes.list()] == [
        ("no-token", False, "none"), ("shared", False, "token")]
    shown = fleet.computes.show("shared")
    assert shown["healthy"] and shown["cpus"] == 1 and len(shown["nodes"]) == 1
    assert "refused the auth token" in fleet.computes.show("no-token")["error"]

    with pytest.raises(Conflict, match="attached, not created"):
        fleet.computes.delete("shared")
    core = _core(cluster["temp_dir"])
    r = CliRunner().invoke(cli, ["compute", "detach", "--name", "shared"])
    assert r.exit_code == 0, r.output
    fleet.computes.detach("no-token")
    assert fleet.computes.list() == []
    assert _alive(core) == core  # detach forgets the cluster; it keeps running
    with pytest.raises(NotFound, match="compute 'shared' not found"):
        fleet.computes.show("shared")


def test_an_unreachable_compute_is_unhealthy_not_an_error(fleet):
    fleet.computes.attach("gone", "127.0.0.1:9")
    shown = fleet.computes.show("gone")
    assert not shown["healthy"] and "cannot reach the Ray cluster at 127.0.0.1:9" in shown["error"]
    r = CliRunner().invoke(cli, ["compute", "show", "--name", "gone"])
    assert r.exit_code == 0 and "cannot reach" in r.stdout


def test_endpoints_name_their_compute(fleet, models_dir, tmp_path):
    """Registration is all the server checks here (no cluster needed): the Ray backend is elsewhere."""
    fleet.computes.attach("far", "127.0.0.1:9")
    with pytest.raises(NotFound, match="compute 'nope' not found"):
        fleet.online_endpoints.create("on-nope", compute="nope")
    r = CliRunner().invoke(cli, ["online-endpoint", "create", "--name", "on-nope", "--compute", "azureml:nope"])
    assert r.exit_code == 1 and r.stderr.strip().splitlines() == [
        "error: compute 'nope' not found; see `fleet compute list`, or create one with "
        "`fleet compute create --name nope --type ray`"]

    assert fleet.online_endpoints.create("on-far", compute="azureml:far")["compute"] == "far"
    r = CliRunner().invoke(cli, ["online-endpoint", "create", "--name", "on-far-2", "--compute", "far", "-o", "json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["compute"] == "far", r.output
    assert fleet.online_endpoints.create("on-local")["compute"] == "local"

    # an endpoint's YAML names it as Azure does
    yml = tmp_path / "endpoint-far.yml"
    yml.write_text("name: on-far-3\ncompute: azureml:far\n")
    r = CliRunner().invoke(cli, ["online-endpoint", "create", "-f", str(yml), "-o", "json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["compute"] == "far", r.output

    # moving an endpoint that has deployments to another compute is refused
    fleet.models.register("iris", models_dir / "iris", version="1")
    fleet.online_deployments.create("blue", "on-local", "iris:1")
    with pytest.raises(Conflict, match="has deployments on compute 'local'"):
        fleet.request("PUT", "/api/endpoints/on-local", json={"compute": "far"})
    assert fleet.online_endpoints.get("on-local")["compute"] == "local"

    # detaching a compute in use keeps its endpoints, which name it until it is attached again
    r = CliRunner().invoke(cli, ["compute", "detach", "--name", "far"])
    assert r.exit_code == 0 and "endpoints on-far, on-far-2, on-far-3 keep compute 'far'" in r.stderr, r.output
    assert fleet.computes.list() == [] and fleet.online_endpoints.get("on-far")["compute"] == "far"
    fleet.computes.attach("far", "127.0.0.1:9")
    assert fleet.computes.show("far", timeout=5)["endpoints"] == ["on-far", "on-far-2", "on-far-3"]
