"""az's shared surface on every command: output formats and their rules,
--query, --set/--add/--remove, defaults, the accepted Azure flags, option prefixes, ids."""

from __future__ import annotations

import json
from collections import OrderedDict

import pytest
import yaml
from click.testing import CliRunner

from modelfleet.cli import output, properties
from modelfleet.cli.main import cli
from modelfleet.domain.errors import InvalidInput


def run(*args, code: int = 0, env: dict | None = None):
    r = CliRunner().invoke(cli, list(args), env=env)
    assert r.exit_code == code, (args, r.exit_code, r.output, r.stderr)
    return r


# -- az's output rules (pure) -------------------------------------------------------------------

def test_tsv_follows_az():
    # one line per item; dict values by sorted key; nested lists as their length, nested dicts empty
    assert output.tsv({"b": 2, "a": "x", "l": [1, 2, 3], "d": {"k": 1}, "n": None, "t": True}) == "x\t2\t\t3\tNone\tTrue\n"
    assert output.tsv([{"name": "a"}, {"name": "b"}]) == "a\nb\n"
    assert output.tsv(["a", "b"]) == "a\nb\n"
    assert output.tsv(True) == "true\n" and output.tsv("Succeeded") == "Succeeded\n" and output.tsv(3) == "3\n"
    # objects a --query builds keep the order written
    assert output.tsv(output.query({"b": 1, "a": 2}, "{b: b, a: a}")) == "1\t2\n"
    assert output.tsv(output.query({"b": 1, "a": 2}, "[b, a]")) == "1\n2\n"


def test_query_is_jmespath():
    eps = [{"name": "a", "traffic": {"blue": 100}}, {"name": "b", "traffic": {}}]
    assert output.query(eps, "[?traffic.blue == `100`].name") == ["a"]
    assert output.query({"x": 1}, "missing") is None
    with pytest.raises(InvalidInput, match="not a valid JMESPath expression"):
        output.query(eps, "[?")


def test_set_add_remove_by_property_path():
    doc = {"instance_count": 1, "tags": {"a": "1"}, "request_settings": {"request_timeout_ms": 5000},
           "items": [{"k": "x", "v": 1}, {"k": "y", "v": 2}]}
    out = properties.apply(doc, [
        ("set", ["instanceCount=2", "tags.b=two words", "request_settings.max_queue_size=8", "items[k=y].v=9",
                 "new.deep=true"]),
        ("add", ["items", "k=z", "v=3"]), ("add", ["labels", "champion"]), ("remove", ["tags.a"]),
        ("remove", ["items", "0"])])
    assert out == {"instance_count": 2, "tags": {"b": "two words"},
                   "request_settings": {"request_timeout_ms": 5000, "max_queue_size": 8},
                   "items": [{"k": "y", "v": 9}, {"k": "z", "v": "3"}], "new": {"deep": True}, "labels": ["champion"]}
    assert doc["instance_count"] == 1  # the original is untouched
    assert properties.apply({}, [("set", ["version=2"])], force_string=True) == {"version": "2"}
    for ops, reason in (([("set", ["noequals"])], "use KEY=VALUE"), ([("remove", ["tags.zz"])], "does not exist"),
                        ([("set", ["items[5].v=1"])], "index 5 does not exist"),
                        ([("add", ["tags", "x"])], "not a list"), ([("set", ["a..b=1"])], "not a property path")):
        with pytest.raises(InvalidInput, match=reason):
            properties.apply(doc, ops)


# -- the CLI ------------------------------------------------------------------

@pytest.fixture
def model_dir(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "model.pkl").write_bytes(b"x")
    return tmp_path / "m"


@pytest.mark.slow
def test_every_format_and_query_on_show_and_list(fleet_home, model_dir):
    run("model", "create", "--name", "m", "--path", str(model_dir), "--set", "version=3", "description=first one",
        "--tags", "team=risk", "owner=me", "-o", "none")
    show = ("model", "show", "-n", "m", "-v", "3")
    doc = json.loads(run(*show, "-o", "json").stdout)
    assert doc["id"] == ("/subscriptions/local/resourceGroups/local/providers/Microsoft.MachineLearningServices"
                         "/workspaces/default/models/m/versions/3")
    assert doc["description"] == "first one" and doc["tags"] == {"team": "risk", "owner": "me"}
    assert yaml.safe_load(run(*show, "-o", "yaml").stdout) == doc
    assert json.loads(run(*show, "-o", "jsonc").stdout) == doc  # no colour when piped
    assert yaml.safe_load(run(*show, "-o", "yamlc").stdout) == doc
    assert run(*show, "-o", "none").stdout == ""
    assert run(*show, "--query", "version", "-o", "tsv").stdout == "3\n"
    assert run(*show, "--query", "{d: description, v: version}", "-o", "tsv").stdout == "first one\t3\n"
    assert run(*show, "--query", "tags", "-o", "tsv").stdout == "me\trisk\n"
    assert run(*show, "--query", "nothing", "-o", "tsv").stdout == ""
    assert "first one" in run(*show, "-o", "table").stdout
    listed = json.loads(run("model", "list").stdout)  # no -o, piped: az's JSON
    assert [m["id"].rsplit("/", 3)[1:] for m in listed] == [["m", "versions", "3"]]
    assert run("model", "list", "--query", "[].name", "-o", "tsv").stdout == "m\n"
    assert run("model", "list", "--query", "[0].files", "-o", "tsv").stdout.count("\t") == 2
    r = run(*show, "--query", "[?", code=2)
    assert r.stderr.count("\n") == 1 and "JMESPath" in r.stderr


@pytest.mark.slow
def test_default_output_is_settable_and_json_when_piped(fleet_home, model_dir):
    run("model", "create", "-n", "m", "-p", str(model_dir), "-o", "none")
    assert json.loads(run("model", "show", "-n", "m", "-v", "1").stdout)["name"] == "m"
    run("configure", "--defaults", "output=yaml", "group=rg", "location=westeurope")
    assert yaml.safe_load(run("model", "show", "-n", "m", "-v", "1").stdout)["name"] == "m"
    assert run("model", "show", "-n", "m", "-v", "1", "--query", "name", env={"FLEET_OUTPUT": "tsv"}).stdout == "m\n"
    listed = run("configure", "--list-defaults", "-o", "json").stdout
    assert {"name": "output", "value": "yaml"} in json.loads(listed)
    run("configure", "--defaults", "output=")
    assert json.loads(run("model", "show", "-n", "m", "-v", "1").stdout)["name"] == "m"
    r = run("model", "list", env={"FLEET_OUTPUT": "xml"}, code=2)
    assert "FLEET_OUTPUT" in r.stderr
    run("configure", "--defaults", "colour=blue", code=2)
    run("workspace", "create", "-w", "team")
    run("configure", "--defaults", "workspace=team")
    assert json.loads(run("workspace", "show", "-o", "json").stdout)["name"] == "team"


@pytest.mark.slow
def test_azure_global_flags_are_accepted(fleet_home, model_dir):
    common = ["-g", "rg", "--subscription", "00000000-0000-0000-0000-000000000000", "--only-show-errors"]
    r = run("model", "create", "-n", "m", "-p", str(model_dir), *common, "--local", "--verbose", "-o", "none")
    assert r.stderr == ""  # --only-show-errors: not even the --local notice
    r = run("model", "show", "-n", "m", "-v", "1", "--local", "--query", "name", "-o", "tsv")
    assert r.stdout == "m\n" and "--local" in r.stderr
    r = run("model", "list", "--local", "-o", "none")
    assert r.stderr == ""  # said once
    r = run("model", "show", "-n", "m", "-v", "9", "--debug", code=1)
    assert "error: model m:9 not found" in r.stderr and "Traceback" in r.stderr


@pytest.mark.slow
def test_option_prefixes_and_greedy_values(fleet_home, model_dir):
    run("model", "create", "--name", "m", "--pa", str(model_dir), "--descr", "short", "--tags", "a=1", "b=2", "-o", "none")
    m = json.loads(run("model", "show", "--na", "m", "--vers", "1", "-o", "json").stdout)
    assert m["description"] == "short" and m["tags"] == {"a": "1", "b": "2"}
    r = run("model", "show", "--n", "m", code=2)  # --name? --no-wait? ambiguous: refused
    assert "No such option" in r.output


@pytest.mark.slow
def test_model_update_and_list_options(fleet_home, model_dir):
    for _ in range(2):
        run("model", "create", "-n", "m", "-p", str(model_dir), "-o", "none")
    up = json.loads(run("model", "update", "-n", "m", "-v", "1", "--set", "description=new", "tags.k=v", "-o",
                        "json").stdout)
    assert up["description"] == "new" and up["tags"] == {"k": "v"}
    up = json.loads(run("model", "update", "-n", "m", "-v", "1", "--remove", "tags.k", "-o", "json").stdout)
    assert up["tags"] == {}
    run("model", "update", "-n", "m", "-v", "1", "--set", "path=elsewhere", code=2)
    assert len(json.loads(run("model", "list", "--max-results", "1").stdout)) == 1
    run("model", "archive", "-n", "m", "-v", "2", "-o", "none")
    assert [m["version"] for m in json.loads(run("model", "list", "--archived-only").stdout)] == ["2"]


def test_workspace_commands_take_w(fleet_home):
    ws = json.loads(run("workspace", "create", "-w", "team-a").stdout)
    assert ws["name"] == "team-a" and ws["id"].endswith("/workspaces/team-a")
    assert json.loads(run("workspace", "show", "-w", "team-a").stdout)["name"] == "team-a"
    run("workspace", "delete", "-w", "team-a", "--yes", "-o", "none")
    assert "team-a" not in [w["name"] for w in json.loads(run("workspace", "list").stdout)]
    r = run("workspace", "create", code=2)
    assert "-w NAME" in r.stderr


@pytest.mark.parametrize("kind,value,reason", [
    ("endpoint", "my_endpoint", "'my_endpoint' has '_' at position 3"),
    ("endpoint", "ab", "'ab' is 2 characters long"),
    ("endpoint", "9lives", "'9lives' starts with '9'"),
    ("endpoint", "trailing-", "'trailing-' ends with '-'"),
    ("model", "a b", "'a b' has ' ' at position 2"),
])
def test_name_errors_say_which_name_and_what_is_wrong(fleet_home, model_dir, kind, value, reason):
    args = (["online-endpoint", "create", "-n", value] if kind == "endpoint"
            else ["model", "create", "-n", value, "-p", str(model_dir)])
    r = run(*args, code=2)
    assert reason in r.stderr and r.stderr.count("\n") == 1


def test_ordered_dicts_from_query_print_in_order():
    assert output.tsv(OrderedDict([("z", 1), ("a", 2)])) == "1\t2\n"


@pytest.mark.parametrize("given,meant", [("custom_model", None), ("Triton_Model", None), ("mlflow_model", "mlflow"),
                                         ("MLFLOW", "mlflow"), ("sklearn", "sklearn"), ("onnx", "onnx"),
                                         ("custom", "custom")])
def test_inline_models_take_every_model_type_and_number_versions(given, meant):
    from modelfleet.schema import documents, validation
    dep = validation.validate(documents.DeploymentSpec, {"name": "blue", "model": {"path": "./m", "version": 2, "type": given}})
    assert (dep.model.version, dep.model.type) == ("2", meant)
    model = validation.validate(documents.ModelSpec, {"name": "m", "path": "./m", "version": 2.5, "type": given})
    assert (model.version, model.type) == ("2.5", meant)
    with pytest.raises(InvalidInput, match="model.type: 'pickle' is not a model type"):
        validation.validate(documents.DeploymentSpec, {"name": "blue", "model": {"path": "./m", "type": "pickle"}})
