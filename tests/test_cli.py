"""The CLI through click's runner, and the seed's scripts through the installed `fleet` command."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml
from click.testing import CliRunner

from modelfleet.cli.main import cli

from .helpers import run_seed_scripts



def run(*args, code: int = 0, input: str | None = None):
    result = CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)
    assert result.exit_code == code, (args, result.exit_code, result.output)
    return result


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_errors_are_one_line_with_exit_codes(fleet_home, tmp_path):
    run("server", "start")   # else the first read says that it started the server
    r = run("model", "show", "--name", "nope", code=1)
    assert r.stderr.strip() == "error: model nope@latest not found"
    r = run("model", "register", "--name", "bad name!", "--path", str(tmp_path), code=2)
    assert "letters, digits" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    run("model", "register", "--name", "x", code=2)  # missing --path
    run("model", "list", "--bogus-flag", code=2)      # usage error
    (tmp_path / "bad.yml").write_text("name: x\npath: y: z\n")
    r = run("model", "register", "-f", str(tmp_path / "bad.yml"), code=2)
    assert "bad.yml:2:8: invalid YAML" in r.stderr


@pytest.mark.slow
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
    run("workspace", "delete", "--name", "elsewhere", "--yes", code=1)   # its server runs: refused
    run("server", "stop", "-w", "elsewhere")
    run("workspace", "delete", "--name", "elsewhere", "--yes")
    assert not (tmp_path / "ws").exists()
    assert json.loads(run("workspace", "show", "-o", "json").stdout)["name"] == "default"


@pytest.mark.slow
@pytest.mark.databases
def test_seed_scripts_with_the_installed_command(fleet_home, tmp_path, database):
    """register.sh, deploy.sh and update.sh run as they are, with the `fleet` on PATH, the
    workspace's metadata in its SQLite file or in PostgreSQL."""
    run_seed_scripts(fleet_home, tmp_path)
    assert (fleet_home / "workspaces" / "default" / "workspace.db").exists() == (database == "sqlite")


@pytest.mark.slow
def test_python_dash_m_and_version(fleet_home):
    p = subprocess.run([sys.executable, "-m", "modelfleet", "--version"], capture_output=True, text=True)
    assert p.returncode == 0 and "modelfleet" in p.stdout
