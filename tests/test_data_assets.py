"""`fleet data create|list|show`: Azure's uri_file, uri_folder and mltable, versioned and
immutable (their files uploaded to the server as models are); collected data named by its
datastore path; bad input refused in one line. The real CLI and control API in process
(tests/inprocess.py), on SQLite and on PostgreSQL."""

from __future__ import annotations

import json

import pytest

from .helpers import run_cli, write

pytestmark = pytest.mark.databases

CSV = "a,b,c\n1,2.5,x\n2,3.5,y\n"


def _json(*args):
    return json.loads(run_cli(*args, "-o", "json").output)


def test_files_folders_and_mltables_are_versioned_data_assets(api_cli, tmp_path):
    write(tmp_path / "ref.csv", CSV)
    write(tmp_path / "folder/part1.csv", CSV)
    write(tmp_path / "folder/nested/part2.csv", CSV)
    write(tmp_path / "table/data.csv", CSV)
    write(tmp_path / "table/MLTable", """
        paths:
          - file: ./data.csv
        transformations:
          - read_delimited:
              delimiter: ','
    """)
    one = _json("data", "create", "--name", "ref", "--type", "uri_file", "--path", str(tmp_path / "ref.csv"))
    two = _json("data", "create", "--name", "ref", "--type", "uri_folder", "--path", str(tmp_path / "folder"))
    write(tmp_path / "table.yml", f"""
        $schema: https://azuremlschemas.azureedge.net/latest/data.schema.json
        name: credit
        version: 3
        type: mltable
        path: ./table
        description: reference
    """)
    table = _json("data", "create", "-f", str(tmp_path / "table.yml"))
    assert (one["version"], two["version"], table["version"]) == ("1", "2", "3")
    assert [(d["name"], d["version"]) for d in _json("data", "list")] == [("credit", "3"), ("ref", "1"), ("ref", "2")]
    assert _json("data", "show", "--name", "ref")["type"] == "uri_folder"      # the latest
    f = api_cli.fleet()
    assert f.data.read("azureml:ref:1") == {"a": [1, 2], "b": [2.5, 3.5], "c": ["x", "y"]}
    assert f.data.read("ref:2")["a"] == [1, 2, 1, 2]
    assert f.data.read("credit@latest")["c"] == ["x", "y"]
    # immutable: the source changing later changes nothing
    write(tmp_path / "ref.csv", "a\n9\n")
    assert f.data.read("ref:1")["a"] == [1, 2]


def test_collected_data_is_a_data_asset_by_reference(api_cli, tmp_path):
    path = "azureml://datastores/workspaceblobstore/paths/modelDataCollector/ep/blue/model_inputs"
    asset = _json("data", "create", "--name", "blue-inputs", "--path", path)
    assert asset["sha256"] is None and asset["path"] == path
    run = run_cli("data", "create", "--name", "x", "--path",
                  "azureml://datastores/workspaceblobstore/paths/../secrets", code=2)
    assert "only modelDataCollector/" in run.output


def test_bad_input_is_one_line_naming_what_is_wrong_and_changes_nothing(api_cli, tmp_path):
    write(tmp_path / "ref.csv", CSV)
    (tmp_path / "empty").mkdir()
    cases = [
        (("--name", "r", "--path", str(tmp_path / "missing.csv")), "does not exist"),
        (("--name", "r", "--type", "uri_file", "--path", str(tmp_path / "empty")), "one .csv or .parquet file"),
        (("--name", "r", "--type", "mltable", "--path", str(tmp_path / "empty")), "holds an MLTable file"),
        (("--name", "bad name!", "--path", str(tmp_path / "ref.csv")), "name"),
        (("--path", str(tmp_path / "ref.csv")), "--name is required"),
    ]
    for args, message in cases:
        out = run_cli("data", "create", *args, code=2).output
        assert message in out and out.strip().count("\n") == 0, out
    run_cli("data", "create", "--name", "r", "--version", "1", "--type", "uri_file", "--path", str(tmp_path / "ref.csv"))
    out = run_cli("data", "create", "--name", "r", "--version", "1", "--type", "uri_file",
                  "--path", str(tmp_path / "ref.csv"), code=1).output
    assert "already exists" in out
    assert [d["version"] for d in _json("data", "list")] == ["1"]
    assert "not found" in run_cli("data", "show", "--name", "nope", code=1).output
