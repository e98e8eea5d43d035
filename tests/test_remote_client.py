"""A client that has only the server's URL and admin token (FLEET_SERVER, FLEET_TOKEN) and a
FLEET_HOME of its own, empty and read-only: the seed workflow, `fleet apply`, an environment and a
compute all work through the control API. Real server, replica and Ray processes on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from .conftest import _stop_servers
from .helpers import RAY_GROUP, run_seed_scripts


def _fleet(env: dict, *args: str) -> subprocess.CompletedProcess:
    p = subprocess.run(["fleet", *args], env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, (args, p.stdout, p.stderr)
    return p


@pytest.fixture
def remote(tmp_path):
    """A server started under one FLEET_HOME; what its owner hands to a client elsewhere."""
    server_home = tmp_path / "server-home"
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    owner = {**os.environ, "FLEET_HOME": str(server_home), "PATH": path}
    for k in ("FLEET_SERVER", "FLEET_TOKEN", "FLEET_WORKSPACE"):
        owner.pop(k, None)
    try:
        _fleet(owner, "server", "start", "-o", "json")
        status = json.loads(_fleet(owner, "server", "status", "--show-token", "-o", "json").stdout)
        assert json.loads(_fleet(owner, "server", "status", "-o", "json").stdout).get("token") is None
        client_home = tmp_path / "client-home"
        client_home.mkdir()
        with _read_only(client_home):
            yield owner, {**owner, "FLEET_HOME": str(client_home), "FLEET_SERVER": status["url"],
                          "FLEET_TOKEN": status["token"]}, client_home
    finally:
        _stop_servers(server_home)


@contextlib.contextmanager
def _read_only(folder: Path):
    """Read-only even for root (an immutable folder), else by its mode."""
    folder.chmod(0o555)
    immutable = os.geteuid() == 0 and subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0
    try:
        yield
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        folder.chmod(0o755)


@pytest.mark.slow
@RAY_GROUP   # it creates a compute
def test_a_client_with_only_the_url_and_token_runs_the_whole_workflow(remote, tmp_path):
    owner, client, client_home = remote
    run_seed_scripts(client_home, tmp_path, {k: client[k] for k in ("FLEET_SERVER", "FLEET_TOKEN")})

    # a fleet file, planned and applied from the client's files
    models = tmp_path / "multi-model" / "models"
    (tmp_path / "fleet.yaml").write_text(textwrap.dedent(f"""
        models:
          - {{name: remote_iris, version: "1", path: {models / "model_a"}}}
        endpoints:
          - {{name: remote-ep, auth_mode: key}}
        deployments:
          - {{name: blue, endpoint_name: remote-ep, model: "remote_iris:1", instance_count: 1}}
    """))
    _fleet(client, "apply", "-f", str(tmp_path / "fleet.yaml"))
    assert _fleet(client, "plan", "-f", str(tmp_path / "fleet.yaml")).stdout.strip() == "no changes"
    (tmp_path / "req.json").write_text(json.dumps({"data": [[5.1, 3.5, 1.4, 0.2]]}))
    scored = _fleet(client, "online-endpoint", "invoke", "--name", "remote-ep", "--request-file", str(tmp_path / "req.json"))
    assert json.loads(scored.stdout) == [0]
    downloaded = _fleet(client, "model", "download", "--name", "remote_iris", "--version", "1",
                        "--download-path", str(tmp_path / "dl"))
    assert downloaded.returncode == 0 and (tmp_path / "dl" / "remote_iris" / "model_a" / "model.joblib").is_file()

    # an environment: its requirements file is read by the client, the version kept by the server
    (tmp_path / "requirements.txt").write_text("tabulate==0.9.0\n")
    env = json.loads(_fleet(client, "environment", "create", "--name", "tab", "--requirements",
                            str(tmp_path / "requirements.txt"), "-o", "json").stdout)
    assert (env["name"], env["version"], env["content"]["requirements"]) == ("tab", "1", ["tabulate==0.9.0"])
    assert [e["name"] for e in json.loads(_fleet(client, "environment", "list", "-o", "json").stdout)] == ["tab"]

    # a compute: the server starts the Ray cluster on its machine, and stops it
    made = json.loads(_fleet(client, "compute", "create", "--name", "remote-ray", "--num-cpus", "1", "-o", "json").stdout)
    assert made["owned"] and made["name"] == "remote-ray"
    assert json.loads(_fleet(client, "compute", "show", "--name", "remote-ray", "-o", "json").stdout)["healthy"]
    _fleet(client, "compute", "delete", "--name", "remote-ray", "--yes")

    # the owner sees all of it; the client's home is as empty as it was
    assert {m["name"] for m in json.loads(_fleet(owner, "model", "list", "-o", "json").stdout)} == {
        "model_a", "model_b", "model_c", "remote_iris"}
    assert list(client_home.iterdir()) == []
    stopped = subprocess.run(["fleet", "server", "stop"], env=client, capture_output=True, text=True)
    assert stopped.returncode != 0 and "runs elsewhere" in stopped.stderr


@pytest.mark.slow
def test_a_remote_client_registers_data_and_runs_monitors(remote, tmp_path):
    owner, client, client_home = remote
    (tmp_path / "ref.csv").write_text("a,b\n" + "".join(f"{i % 7},{i % 3}\n" for i in range(200)))
    made = json.loads(_fleet(client, "data", "create", "--name", "ref", "--type", "uri_file", "--path",
                             str(tmp_path / "ref.csv"), "-o", "json").stdout)
    assert (made["name"], made["version"], made["path"]) == ("ref", "1", "ref.csv")
    (tmp_path / "monitor.yml").write_text(textwrap.dedent("""
        name: remote-monitor
        trigger: {type: recurrence, frequency: day, interval: 1}
        create_monitor:
          monitoring_target: {endpoint_deployment_id: "azureml:ep:blue"}
          monitoring_signals:
            drift:
              type: data_drift
              reference_data: {input_data: {path: "azureml:ref:1"}}
              production_data: {input_data: {path: "azureml:ref:1"}}
    """))
    _fleet(client, "schedule", "create", "-f", str(tmp_path / "monitor.yml"))
    run = json.loads(_fleet(client, "schedule", "run", "--name", "remote-monitor", "-o", "json").stdout)
    assert run["latest_run"]["status"] == "passed"
    assert _fleet(client, "schedule", "disable", "--name", "remote-monitor")
    # the owner sees what the client made; the client's home is as empty as it was
    assert [d["name"] for d in json.loads(_fleet(owner, "data", "list", "-o", "json").stdout)] == ["ref"]
    shown = json.loads(_fleet(owner, "schedule", "show", "--name", "remote-monitor", "-o", "json").stdout)
    assert not shown["enabled"] and shown["latest_run"]["status"] == "passed"
    assert list(client_home.iterdir()) == []
