"""The CLI through click's runner, and the seed's scripts through the installed `fleet` command."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from modelfleet.cli.main import cli
from modelfleet.quickstart import train

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "multi-model"


def run(*args, code: int = 0, input: str | None = None):
    result = CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)
    assert result.exit_code == code, (args, result.exit_code, result.output)
    return result


def test_model_commands_and_output_formats(fleet_home, tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "model.pkl").write_bytes(b"x")
    out = run("model", "register", "--name", "m", "--path", str(tmp_path / "m"), "--tag", "team=risk",
              "--description", "first", "-o", "json").stdout
    doc = json.loads(out)
    assert doc["version"] == "1" and doc["tags"] == {"team": "risk"} and doc["type"] == "sklearn"
    assert yaml.safe_load(run("model", "show", "--name", "m", "--version", "1", "-o", "yaml").stdout)["sha256"]
    table = run("model", "list").stdout
    assert "m" in table and "first" in table
    run("model", "label", "--name", "m", "--version", "1", "--label", "champion")
    assert json.loads(run("model", "show", "--name", "m", "--label", "champion", "-o", "json").stdout)["version"] == "1"
    run("model", "archive", "--name", "m", "--version", "1")
    assert json.loads(run("model", "list", "-o", "json").stdout) == []
    assert len(json.loads(run("model", "list", "--include-archived", "-o", "json").stdout)) == 1
    run("model", "restore", "--name", "m", "--version", "1")
    run("model", "update", "--name", "m", "--version", "1", "--description", "second")
    run("model", "download", "--name", "m", "--version", "1", "--download-path", str(tmp_path / "dl"))
    assert (tmp_path / "dl" / "m" / "m" / "model.pkl").read_bytes() == b"x"
    run("model", "delete", "--name", "m", "--version", "1", "--yes")
    assert json.loads(run("model", "list", "-o", "json").stdout) == []


def test_model_yaml_file_azure_format(fleet_home, tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "sklearn_regression_model.pkl").write_bytes(b"pickled")
    (tmp_path / "model.yml").write_text(
        "$schema: https://azuremlschemas.azureedge.net/latest/model.schema.json\n"
        "name: local-file-example\nversion: 3\npath: ./model\ntype: custom_model\n"
        "description: Model created from local file.\nproperties: {a: b}\n")
    r = run("model", "create", "-f", str(tmp_path / "model.yml"), "-o", "json")
    doc = json.loads(r.stdout)
    assert doc["name"] == "local-file-example" and doc["version"] == "3" and doc["type"] == "sklearn"
    assert "properties" in r.stderr and "ignored" in r.stderr


def test_errors_are_one_line_with_exit_codes(fleet_home, tmp_path):
    r = run("model", "show", "--name", "nope", code=1)
    assert r.stderr.strip() == "error: model nope@latest not found"
    r = run("model", "register", "--name", "bad name!", "--path", str(tmp_path), code=2)
    assert "letters, digits" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    run("model", "register", "--name", "x", code=2)  # missing --path
    run("model", "list", "--bogus-flag", code=2)      # usage error
    (tmp_path / "bad.yml").write_text("name: x\npath: y: z\n")
    r = run("model", "register", "-f", str(tmp_path / "bad.yml"), code=2)
    assert "bad.yml:2:8: invalid YAML" in r.stderr


def test_workspaces(fleet_home, tmp_path):
    run("workspace", "create", "--name", "team-a")
    run("workspace", "create", "--name", "elsewhere", "--path", str(tmp_path / "ws"))
    run("workspace", "create", "--name", "team-a", code=1)
    names = {w["name"] for w in json.loads(run("workspace", "list", "-o", "json").stdout)}
    assert {"team-a", "elsewhere"} <= names
    (tmp_path / "m.pkl").write_bytes(b"1")
    run("model", "register", "--name", "m", "--path", str(tmp_path / "m.pkl"), "-w", "elsewhere")
    assert (tmp_path / "ws" / "workspace.db").exists()
    assert json.loads(run("model", "list", "-o", "json", "-w", "team-a").stdout) == []
    run("workspace", "set", "-w", "elsewhere")
    assert json.loads(run("workspace", "show", "-o", "json").stdout)["name"] == "elsewhere"
    assert len(json.loads(run("model", "list", "-o", "json").stdout)) == 1
    run("model", "list", "-w", "missing", code=1)
    run("workspace", "delete", "--name", "elsewhere", "--yes")
    assert not (tmp_path / "ws").exists()
    assert json.loads(run("workspace", "show", "-o", "json").stdout)["name"] == "default"


@pytest.mark.slow
def test_seed_scripts_with_the_installed_command(fleet_home, tmp_path):
    """register.sh, deploy.sh and update.sh run as they are, with the `fleet` on PATH."""
    work = tmp_path / "multi-model"
    shutil.copytree(EXAMPLES, work, ignore=shutil.ignore_patterns("models"))
    train("iris", work / "models" / "model_a")
    train("wine", work / "models" / "model_b")
    train("breast_cancer", work / "models" / "model_c")
    train("wine", work / "models" / "model_b_v2", variant=2)
    env = {**os.environ, "FLEET_HOME": str(fleet_home),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    assert shutil.which("fleet", path=env["PATH"])

    def sh(script):
        p = subprocess.run(["bash", str(work / script)], env=env, capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, (script, p.stdout, p.stderr)
        return p

    sh("register.sh")
    listed = subprocess.run(["fleet", "model", "list", "-o", "json"], env=env, capture_output=True, text=True)
    got = {(m["name"], m["version"], m["description"]) for m in json.loads(listed.stdout)}
    assert got == {("model_a", "v1", "Model A for user segment 1"), ("model_b", "v1", "Model B for user segment 2"),
                   ("model_c", "v2", "Model C for user segment 3")}
    sh("deploy.sh")
    eps = json.loads(subprocess.run(["fleet", "online-endpoint", "list", "-o", "json"], env=env,
                                    capture_output=True, text=True).stdout)
    assert {e["name"]: e["traffic"] for e in eps} == {
        "aci-model-a": {"default": 100}, "aci-model-b": {"default": 100}, "aci-model-c": {"default": 100}}
    pids_a = _pids(env, "aci-model-a")
    sh("update.sh")
    dep = json.loads(subprocess.run(["fleet", "online-deployment", "show", "--name", "default", "--endpoint",
                                     "aci-model-b", "-o", "json"], env=env, capture_output=True, text=True).stdout)
    assert dep["model"] == "model_b:v2" and dep["provisioning_state"] == "Succeeded"
    assert _pids(env, "aci-model-a") == pids_a  # the neighbours were not restarted
    (tmp_path / "req.json").write_text(json.dumps({"data": [[13.2, 1.78, 2.14, 11.2, 100, 2.65, 2.76, 0.26, 1.28,
                                                             4.38, 1.05, 3.4, 1050]]}))
    r = subprocess.run(["fleet", "online-endpoint", "invoke", "--name", "aci-model-b", "--request-file",
                        str(tmp_path / "req.json")], env=env, capture_output=True, text=True)
    assert r.returncode == 0 and json.loads(r.stdout) in ([0], [1], [2])


def _pids(env, endpoint):
    dep = json.loads(subprocess.run(["fleet", "online-deployment", "show", "--name", "default", "--endpoint",
                                     endpoint, "-o", "json"], env=env, capture_output=True, text=True).stdout)
    return sorted(r["pid"] for r in dep["replicas"])


@pytest.mark.slow
def test_python_dash_m_and_version(fleet_home):
    p = subprocess.run([sys.executable, "-m", "modelfleet", "--version"], capture_output=True, text=True)
    assert p.returncode == 0 and "modelfleet" in p.stdout
