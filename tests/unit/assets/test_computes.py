"""Compute targets without a cluster: the store's rows, the rules on names and addresses, Ray's
environment, the missing `ray` extra, and how endpoints and api_fleet files name a compute."""

from __future__ import annotations

import importlib.util
import textwrap

import pytest

from modelfleet.fleetfile import desired as fleetfile, planner
from modelfleet.backends.ray import cluster as ray_cluster
from modelfleet.assets.computes import resolve
from modelfleet.ports import free_ports
from modelfleet.domain.errors import AlreadyExists, Conflict, InvalidInput, NotFound, SpecError
from modelfleet.schema.documents import EndpointSpec
from modelfleet.schema.validation import validate
from modelfleet.store.computes import ComputeStore
from modelfleet.store.serving import ServingStore


@pytest.fixture
def no_ray(monkeypatch):
    """This environment as it would be without the `ray` extra."""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))


def test_rows_are_created_once_listed_and_removed_unless_an_endpoint_uses_them(db):
    store = ComputeStore(db)
    row = store.create("dev", type="ray", address="127.0.0.1:6379", owned=True, auth_token="t" * 64,
                       temp_dir="/tmp/mf-00000000", spec={"num_cpus": 2})
    assert (row["owned"], row["spec"], row["auth_token"]) == (True, {"num_cpus": 2}, "t" * 64)
    store.create("far", type="ray", address="10.0.0.5:6379", owned=False)
    assert [r["name"] for r in store.list()] == ["dev", "far"]
    with pytest.raises(AlreadyExists, match="compute 'dev' already exists"):
        store.create("dev", type="ray", address="127.0.0.1:1", owned=False)

    serving = ServingStore(db)
    serving.create_endpoint("ep-a", {"compute": "far"})
    serving.create_endpoint("ep-b", {"compute": "far"})
    serving.create_endpoint("ep-c", {"compute": "local"})
    assert store.users("far") == ["ep-a", "ep-b"] and store.users("dev") == []
    with pytest.raises(Conflict, match="used by endpoints ep-a, ep-b; delete them first"):
        store.delete("far")
    serving.delete_endpoint("ep-a")
    serving.delete_endpoint("ep-b")
    assert store.delete("far")["name"] == "far"
    with pytest.raises(NotFound, match="compute 'far' not found"):
        store.get("far")


def test_an_endpoint_resolves_its_compute(db, no_ray):
    store = ComputeStore(db)
    assert resolve(store, "local") is None  # local needs neither a row nor Ray
    with pytest.raises(NotFound, match="compute 'nope' not found"):
        resolve(store, "nope")
    store.create("far", type="ray", address="10.0.0.5:6379", owned=False)
    with pytest.raises(Conflict) as e:
        resolve(store, "far")
    assert str(e.value) == "compute 'far' needs Ray, which is not installed here: pip install 'modelfleet[ray]'"


def test_with_ray_installed_the_row_is_the_answer(db):
    store = ComputeStore(db)
    store.create("far", type="ray", address="10.0.0.5:6379", owned=False, auth_token="tok")
    assert resolve(store, "far")["auth_token"] == "tok"


def test_create_without_ray_starts_nothing(api_fleet, inprocess, no_ray):
    with pytest.raises(Conflict, match=r"pip install 'modelfleet\[ray\]'"):
        api_fleet.computes.create("dev")
    assert api_fleet.computes.list() == []


@pytest.mark.parametrize("call, message", [
    (lambda f: f.computes.create("local"), "compute name 'local' is reserved"),
    (lambda f: f.computes.create("bad/name"), "invalid compute name 'bad/name'"),
    (lambda f: f.computes.create("dev", type="k8s"), "compute type 'k8s': use ray"),
    (lambda f: f.computes.create("dev", num_cpus=0), "num_cpus 0"),
    (lambda f: f.computes.attach("far", "10.0.0.5"), "address '10.0.0.5': use HOST:PORT"),
    (lambda f: f.computes.attach("far", "ray://10.0.0.5:10001"), "use HOST:PORT"),
    (lambda f: f.computes.attach("far", "10.0.0.5:99999"), "use HOST:PORT"),
])
def test_bad_input_is_one_line_naming_the_value_and_changes_nothing(api_fleet, inprocess, call, message):
    with pytest.raises(InvalidInput, match=message):
        call(api_fleet)
    assert api_fleet.computes.list() == []


def test_detach_and_delete_each_refuse_the_other_kind(api_fleet, inprocess):
    ComputeStore(inprocess.db).create("dev", type="ray", address="127.0.0.1:9", owned=True, temp_dir="/tmp/mf-x")
    api_fleet.computes.attach("far", "[::1]:6379")
    with pytest.raises(Conflict, match="compute 'dev' was created by modelfleet"):
        api_fleet.computes.detach("dev")
    with pytest.raises(Conflict, match="compute 'far' is attached"):
        api_fleet.computes.delete("far")
    assert [c["name"] for c in api_fleet.computes.list()] == ["dev", "far"]


def test_ray_environment():
    assert ray_cluster.ray_environment("tok") == {
        "RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "tok"}
    assert ray_cluster.ray_environment(None, "127.0.0.1:6379") == {
        "RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    # a driver of a cluster on other machines must be reachable from them: no loopback pin
    assert ray_cluster.ray_environment("tok", "10.0.0.5:6379") == {
        "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "tok"}
    assert ray_cluster.on_loopback("[::1]:6379") and ray_cluster.on_loopback("localhost:6379")


def test_status_of_an_address_nothing_listens_on_is_an_answer():
    (port,) = free_ports(1)
    answer = ray_cluster.status(f"127.0.0.1:{port}", None)
    assert answer["healthy"] is False and answer["nodes"] == []
    assert answer["error"].startswith(f"cannot reach the Ray cluster at 127.0.0.1:{port}")


def test_stopping_a_directory_no_process_uses_stops_nothing(tmp_path):
    assert ray_cluster.stop_local(tmp_path / "mf-none") == []


def test_endpoint_documents_name_a_compute_as_azure_does():
    assert validate(EndpointSpec, {"name": "ep-one", "compute": "azureml:gpu-ray"}).compute == "gpu-ray"
    assert validate(EndpointSpec, {"name": "ep-one", "compute": "gpu-ray"}).compute == "gpu-ray"
    assert validate(EndpointSpec, {"name": "ep-one"}).compute == "local"


def test_a_fleet_file_names_only_known_computes_and_moves_no_endpoint_with_deployments(tmp_path):
    (tmp_path / "api_fleet.yaml").write_text(textwrap.dedent("""\
        endpoints:
          - {name: ep-one, compute: azureml:ray-dev}
    """))
    desired = fleetfile.load(tmp_path / "api_fleet.yaml")
    with pytest.raises(SpecError, match=r"endpoints\[0\]\.compute: compute 'ray-dev' not found"):
        planner.make_plan(desired, planner.Current([], [], [], computes=[]))
    assert [c.line() for c in planner.make_plan(desired, planner.Current([], [], [], computes=["ray-dev"])).changes
            ] == ["+ endpoint ep-one"]
    ep = {"name": "ep-one", "auth_mode": "key", "compute": "local", "description": "", "tags": {},
          "traffic": {}, "mirror_traffic": {}, "deployments": ["blue"]}
    with pytest.raises(SpecError, match="endpoint 'ep-one' has deployments on compute 'local'"):
        planner.make_plan(desired, planner.Current([], [ep], [], computes=["ray-dev"]))
    plan = planner.make_plan(desired, planner.Current([], [{**ep, "deployments": []}], [], computes=["ray-dev"]))
    assert [c.line() for c in plan.changes] == ["~ endpoint ep-one: compute local -> ray-dev"]


def test_detach_while_endpoints_use_it_keeps_them_and_says_so(api_fleet, inprocess):
    notices = []
    api_fleet.notice = notices.append
    api_fleet.computes.attach("far", "127.0.0.1:9")
    ServingStore(inprocess.db).create_endpoint("ep-far", {"compute": "far"})
    assert api_fleet.computes.detach("far")["endpoints"] == ["ep-far"]
    assert notices == ["endpoint ep-far keeps compute 'far' and cannot serve until a compute named 'far' "
                       "is attached again"]
    assert ServingStore(inprocess.db).endpoint("ep-far")["spec"]["compute"] == "far"
