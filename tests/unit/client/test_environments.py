"""`fleet.environments` against the real control API in process: versions created from files the
client reads, inline and anonymous versions, list, archive, restore, and their errors (no build)."""

from __future__ import annotations

import pytest

from modelfleet.domain.errors import AlreadyExists, InvalidInput, NotFound, SpecError


def test_files_are_read_by_the_client_and_versions_kept_by_the_server(api_fleet, tmp_path):
    (tmp_path / "requirements.txt").write_text("tabulate==0.9.0\n")
    (tmp_path / "conda.yml").write_text("dependencies:\n  - python=3.11\n  - pip:\n    - tabulate==0.9.0\n")
    envs = api_fleet.environments
    a = envs.create("tab", requirements=str(tmp_path / "requirements.txt"))
    b = envs.create("tab", conda_file=str(tmp_path / "conda.yml"))
    assert (a.ref, a.source, a.content["requirements"]) == ("tab:1", {"requirements_file": "requirements.txt"},
                                                             ["tabulate==0.9.0"])
    assert (b.ref, b.source["file"], b.content["python"]) == ("tab:2", "conda.yml", "==3.11.*")
    assert envs.get("tab", "1").to_dict()["built"] is False
    assert [e.ref for e in envs.list()] == ["tab:1", "tab:2"]
    assert envs.archive("tab", "2").archived and envs.get("tab").version == "1"
    assert not envs.restore("tab", "2").archived
    with pytest.raises(AlreadyExists, match="tab:1 already exists"):
        envs.create("tab", version="1", requirements=["other"])
    with pytest.raises(NotFound, match="environment nope@latest not found"):
        envs.get("nope")
    with pytest.raises(InvalidInput, match="no labels"):
        envs.resolve("tab@prod")
    with pytest.raises(SpecError):
        envs.create("tab")   # neither a conda file nor requirements
    with pytest.raises(InvalidInput, match="name: must be 1-64 letters"):
        envs.create("bad name", requirements=["tabulate"])


def test_inline_blocks_become_anonymous_versions_by_content(api_fleet):
    from modelfleet.schema.documents import InlineEnvironment
    from modelfleet.schema.validation import validate
    envs = api_fleet.environments
    spec = validate(InlineEnvironment, {"requirements": ["tabulate==0.9.0"]})
    one = envs.inline(spec, base_dir=".")
    assert one.name == "CliV2AnonymousEnvironment" and envs.inline(spec, base_dir=".").ref == one.ref
    named = validate(InlineEnvironment, {"name": "inl", "requirements": ["tabulate==0.9.0"]})
    assert envs.inline(named, base_dir=".").ref == "inl:1" == envs.inline(named, base_dir=".").ref


def test_a_content_the_server_cannot_read_is_refused(api_fleet):
    with pytest.raises(InvalidInput, match="name: an environment needs a name"):
        api_fleet.request("POST", "/api/environments", json={"content": {}, "source": {}})
    with pytest.raises(InvalidInput, match="content"):
        api_fleet.request("POST", "/api/environments", json={"name": "x-y", "content": {"requirements": 3},
                                                                "source": {}})
