"""Small things users hit, on a real server: errors in score.py point at the user's own file and
line; SDK errors carry the HTTP status; SDK list methods return objects used the same way;
`fleet export` keeps labels and leaves failed deployments out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from modelfleet.domain.errors import DeploymentFailed, FleetError, NotFound

from .conftest import IRIS_ROWS

pytestmark = pytest.mark.slow  # every test here starts a server and replicas

FAILING_RUN = '''import helpers

def init():
    pass

def run(raw):
    return helpers.ratio(len(raw))
'''
HELPERS = '''def ratio(n):
    return n / 0
'''
FAILING_INIT = '''def init():
    raise ValueError("the model file is missing")

def run(raw):
    return raw
'''


def _code(folder: Path, score: str, **more: str) -> dict:
    folder.mkdir(parents=True)
    (folder / "score.py").write_text(score)
    for name, text in more.items():
        (folder / f"{name}.py").write_text(text)
    return {"code": str(folder), "scoring_script": "score.py"}


def test_score_py_errors_point_at_the_users_file_and_line(fleet, models_dir, tmp_path):
    fleet.models.register("iris", models_dir / "iris", "1")
    fleet.online_endpoints.create("err-ep")
    fleet.online_deployments.create("blue", "err-ep", "iris:1",
                                    code_configuration=_code(tmp_path / "onlinescoring", FAILING_RUN, helpers=HELPERS))
    with pytest.raises(FleetError) as e:
        fleet.online_endpoints.invoke("err-ep", {"data": IRIS_ROWS})
    assert e.value.http_status == 424
    assert "ZeroDivisionError: division by zero (at onlinescoring/helpers.py:2 in ratio)" in e.value.message
    logs = fleet.online_deployments.get_logs("blue", "err-ep")
    assert 'File "onlinescoring/score.py", line 7, in run' in logs
    assert 'File "onlinescoring/helpers.py", line 2, in ratio' in logs
    assert "artifacts" not in logs.split("ZeroDivisionError")[0].split("Traceback")[-1]
    assert "modelfleet" not in logs.split("Traceback")[-1]  # its own frames are left out

    with pytest.raises(DeploymentFailed) as e:
        fleet.online_deployments.create("green", "err-ep", "iris:1",
                                        code_configuration=_code(tmp_path / "broken", FAILING_INIT))
    assert "ValueError: the model file is missing" in e.value.message
    assert 'File "broken/score.py", line 2, in init' in e.value.detail
    assert "runtime" not in e.value.detail and "/code/" not in e.value.detail


def test_sdk_errors_carry_the_http_status_and_lists_return_objects(fleet, models_dir):
    fleet.models.register("iris", models_dir / "iris", "1")
    with pytest.raises(NotFound) as e:
        fleet.online_endpoints.get("no-such-ep")
    assert e.value.http_status == 404
    fleet.online_endpoints.create("obj-ep")
    with pytest.raises(FleetError) as e:
        fleet.online_endpoints.create("obj-ep")
    assert e.value.http_status == 409
    dep = fleet.online_deployments.create("blue", "obj-ep", "iris:1")
    assert dep.name == "blue" and dep["model"] == "iris:1"
    ep, = fleet.online_endpoints.list()
    deployment, = fleet.online_deployments.list("obj-ep")
    model, = fleet.models.list()
    for item in (ep, deployment, model):  # every list gives objects with attributes and to_dict()
        assert item.name and item.to_dict()["name"] == item.name
    assert ep.scoring_uri.endswith("/endpoints/obj-ep/score") and deployment.provisioning_state == "Succeeded"
    with pytest.raises(AttributeError):
        ep.no_such_field


def test_export_keeps_labels_and_leaves_failed_deployments_out(fleet, models_dir, tmp_path):
    fleet.models.register("iris", models_dir / "iris", "1")
    fleet.models.label("iris", "1", "champion")
    fleet.online_endpoints.create("exp-ep")
    fleet.online_deployments.create("blue", "exp-ep", "iris:1")
    with pytest.raises(DeploymentFailed):
        fleet.online_deployments.create("broken", "exp-ep", "iris:1",
                                        code_configuration=_code(tmp_path / "broken", FAILING_INIT))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}

    def cli(*args):
        p = subprocess.run(["fleet", *args], env=env, capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, (args, p.stdout, p.stderr)
        return p
    out = tmp_path / "fleet.yaml"
    p = cli("export", "-f", str(out))
    assert "exp-ep/broken failed and serves nothing; left out" in p.stderr
    doc = yaml.safe_load(out.read_text())
    assert [m["labels"] for m in doc["models"]] == [["champion"]]
    assert [(d["endpoint_name"], d["name"]) for d in doc["deployments"]] == [("exp-ep", "blue")]
    assert json.loads(cli("export", "-o", "json").stdout)["models"][0]["labels"] == ["champion"]
    assert cli("plan", "-f", str(out)).stdout.strip() == "no changes"
    cli("workspace", "create", "-w", "copy")
    cli("apply", "-f", str(out), "-w", "copy")
    assert json.loads(cli("model", "show", "-n", "iris", "-l", "champion", "-w", "copy", "-o", "json").stdout)[
        "version"] == "1"
    cli("server", "stop", "-w", "copy")
