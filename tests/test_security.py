"""Security: keys, the admin token, where the server listens, file modes, secrets kept out of logs
and output, and model files that try to reach outside the store.

The threat model these tests hold the code to is in docs/security.md.
"""

from __future__ import annotations

import base64
import hashlib
import inspect
import io
import json
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import httpx
import orjson
import psutil
import pytest
from click.testing import CliRunner

from modelfleet.cli.main import cli
from modelfleet.domain.errors import InvalidInput

from .conftest import IRIS_ROWS

FLEET = str(Path(sys.executable).with_name("fleet"))

HIT_PY = '''
import json, os
def init():
    # A model sees its environment: nothing in it may be a key or the admin token.
    print("environment:", json.dumps(dict(os.environ)), flush=True)
def run(raw_data):
    with open(os.environ["HIT_LOG"], "a") as f:
        f.write(raw_data if isinstance(raw_data, str) else raw_data.decode("utf-8", "replace"))
        f.write("\\n")
    print("scored a request", flush=True)
    return {"ok": True}
'''


def _cli(*args: str) -> str:
    r = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert r.exit_code == 0, (args, r.output, r.stderr)
    return r.stdout


def _server_file(fleet) -> dict:
    return orjson.loads(fleet.workspace.server_file.read_bytes())


@pytest.fixture
def guarded(fleet, models_dir, tmp_path):
    """`guarded-ep` (auth key) whose score.py records every request it is given in a file."""
    code = tmp_path / "hit"
    code.mkdir()
    (code / "score.py").write_text(HIT_PY)
    hits = tmp_path / "hits.log"
    fleet.models.register("iris", models_dir / "iris", "1")
    fleet.online_endpoints.create("guarded-ep")
    fleet.online_deployments.create("blue", "guarded-ep", "iris:1", environment_variables={"HIT_LOG": str(hits)},
                                    code_configuration={"code": str(code), "scoring_script": "score.py"})
    return fleet, hits


# -- endpoint keys -------------------------------------------------------------------------------

@pytest.mark.slow
def test_keys_are_32_random_bytes_distinct_and_regenerable(fleet, models_dir):
    from modelfleet.store import serving
    assert "secrets.token_urlsafe(32)" in inspect.getsource(serving.new_key)  # a CSPRNG, 256 bits
    fleet.models.register("iris", models_dir / "iris", "1")
    names = ["key-one", "key-two", "key-three"]
    for n in names:
        fleet.online_endpoints.create(n)
    keys = [k for n in names for k in fleet.online_endpoints.get_keys(n).values()]
    assert len(set(keys)) == 6
    for k in keys:
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", k) and len(base64.urlsafe_b64decode(k + "=")) == 32

    # Regenerating the secondary key (the primary one: test_serving.py) retires it at once.
    fleet.online_deployments.create("blue", "key-one", "iris:1")
    url = fleet.online_endpoints.get("key-one")["scoring_uri"]
    old = fleet.online_endpoints.get_keys("key-one")
    new = fleet.online_endpoints.regenerate_keys("key-one", "secondary")
    assert new["primaryKey"] == old["primaryKey"] and new["secondaryKey"] not in keys
    body = json.dumps({"data": IRIS_ROWS})
    post = lambda key: httpx.post(url, content=body, headers={"authorization": f"Bearer {key}"}, timeout=30)
    assert post(old["secondaryKey"]).status_code == 401
    assert post(new["secondaryKey"]).status_code == 200 and post(old["primaryKey"]).status_code == 200


def test_keys_and_admin_token_are_compared_in_constant_time():
    from modelfleet.server.http import auth as api_auth
    from modelfleet.server.dataplane import gateway
    auth = inspect.getsource(gateway.Gateway._authorized)
    assert "hmac.compare_digest" in auth and "==" not in auth
    # the launcher's token in constant time; API tokens by their SHA-256 (a lookup by hash, no compare)
    assert "hmac.compare_digest" in inspect.getsource(api_auth.Authorizer.authenticate)


@pytest.mark.slow
def test_a_model_never_sees_a_request_without_a_valid_key(guarded):
    fleet, hits = guarded
    fleet.online_endpoints.create("other-ep")
    other_key = fleet.online_endpoints.get_keys("other-ep")["primaryKey"]
    key = fleet.online_endpoints.get_keys("guarded-ep")["primaryKey"]
    base = fleet.online_endpoints.get("guarded-ep")["scoring_uri"].rsplit("/endpoints/", 1)[0]
    routes = ["/endpoints/guarded-ep/score", "/v2/models/guarded-ep/infer", "/v2/models/guarded-ep/versions/blue/infer"]
    attempts = [{}, {"authorization": ""}, {"authorization": "Bearer"}, {"authorization": "Bearer x"},
                {"authorization": f"Bearer {key[:-1]}"}, {"authorization": f"Bearer {key}x"},
                {"authorization": f"Bearer {key.upper()}"}, {"authorization": f"Basic {key}"},
                {"authorization": key}, {"authorization": f"Bearer {other_key}"},  # another endpoint's key
                {"authorization": f"Token {key}"}, {"api-key": key}, {"x-api-key": key},
                {"authorization": "Bearer " + "A" * 43}, {"azureml-model-deployment": "blue"}]
    v2_body = {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP64", "data": IRIS_ROWS}]}
    with httpx.Client(timeout=30) as c:
        for route in routes:
            body = json.dumps(v2_body if "/v2/" in route else {"data": IRIS_ROWS})
            for headers in attempts:
                r = c.post(base + route, content=body, headers={"content-type": "application/json", **headers})
                assert r.status_code == 401, (route, headers, r.status_code, r.text)
                r = c.post(base + route + f"?key={key}", content=body, headers=headers)  # not a place for keys
                assert r.status_code == 401
        for meta in ("/v2/models/guarded-ep", "/v2/models/guarded-ep/ready", "/v2/models/guarded-ep/versions/blue"):
            assert c.get(base + meta).status_code == 401  # V2 model metadata too
    assert not hits.exists() or hits.read_text() == ""
    # The same requests with the key do reach the model: the file above would have shown them.
    with httpx.Client(timeout=30, headers={"authorization": f"Bearer {key}"}) as c:
        for route in routes:
            body = json.dumps(v2_body if "/v2/" in route else {"data": IRIS_ROWS})
            assert c.post(base + route, content=body).status_code == 200
    assert len(hits.read_text().splitlines()) == len(routes)


# -- the admin token -----------------------------------------------------------------------------

@pytest.mark.slow
def test_every_control_api_route_requires_the_admin_token(fleet):
    fleet.server.start(failed_token_attempts_per_minute=1_000_000)   # every bad attempt here is a 401
    fleet.online_endpoints.create("admin-ep")
    info = _server_file(fleet)
    url, token = info["url"], info["token"]
    endpoint_key = fleet.online_endpoints.get_keys("admin-ep")["primaryKey"]
    spec = httpx.get(f"{url}/openapi.json", timeout=30).json()
    routes = [(m.upper(), p) for p, ops in spec["paths"].items() for m, op in ops.items()
              if op.get("security") == [{"token": []}]]
    api_routes = [(m.upper(), p) for p, ops in spec["paths"].items() if p.startswith("/api/") for m in ops]
    assert len(routes) >= 16 and sorted(routes) == sorted(api_routes)  # documented as needing it
    bad = [None, "", f"Bearer {token[:-1]}", f"Bearer {token}x", token, f"Basic {token}", f"bearer  {token}x",
           f"Bearer {endpoint_key}"]
    with httpx.Client(base_url=url, timeout=30) as c:
        for method, path in routes:
            concrete = re.sub(r"\{endpoint\}|\{name\}", "admin-ep", path)
            for auth in bad:
                headers = {} if auth is None else {"authorization": auth}
                r = c.request(method, concrete, headers=headers, json={"auth_mode": "none", "key_type": "primary"})
                assert r.status_code == 401, (method, concrete, auth, r.status_code, r.text)
                assert r.json()["error"]["code"] == "unauthorized"
        assert c.get("/api/endpoints/admin-ep", headers={"authorization": f"Bearer {token}"}).status_code == 200
    # nothing changed: the keys were not regenerated, the endpoint is still there with auth key
    assert fleet.online_endpoints.get_keys("admin-ep")["primaryKey"] == endpoint_key
    assert fleet.online_endpoints.get("admin-ep")["auth_mode"] == "key"


@pytest.mark.slow
def test_admin_token_is_new_on_every_server_start(fleet):
    fleet.server.start()
    first = _server_file(fleet)["token"]
    fleet.server.stop()
    fleet.server.start()
    second = _server_file(fleet)["token"]
    assert second != first and len(base64.urlsafe_b64decode(second + "=")) == 32


# -- where the server listens --------------------------------------------------------------------

def _listening(pid: int) -> set[str]:
    conns = psutil.Process(pid).net_connections(kind="inet")
    return {c.laddr.ip for c in conns if c.status == psutil.CONN_LISTEN}


@pytest.mark.slow
def test_server_listens_on_loopback_only_by_default(fleet):
    info, _ = fleet.server.start()
    assert info["host"] == "127.0.0.1"
    assert _listening(info["pid"]) == {"127.0.0.1"}


def _start(*flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([FLEET, "server", "start", "-o", "json", *flags], capture_output=True, text=True, timeout=90)


def _put_endpoint(fleet, name: str, auth_mode: str) -> httpx.Response:
    # Always to 127.0.0.1, whatever address the server listens on: nothing goes to other addresses.
    info = _server_file(fleet)
    return httpx.put(f"http://127.0.0.1:{info['port']}/api/endpoints/{name}", json={"auth_mode": auth_mode},
                     headers={"authorization": f"Bearer {info['token']}"}, timeout=30)


@pytest.mark.slow
def test_open_endpoints_need_a_flag_when_listening_beyond_loopback(fleet):
    r = _start("--host", "0.0.0.0", "--allow-plain-http")
    assert r.returncode == 0, r.stderr
    refused = _put_endpoint(fleet, "open-ep", "none")
    assert refused.status_code == 409 and "--allow-open-endpoints" in refused.json()["error"]["message"]
    assert _put_endpoint(fleet, "keyed-ep", "key").status_code == 200
    assert _put_endpoint(fleet, "keyed-ep", "none").status_code == 409  # not by an update either
    fleet.server.stop()

    assert _start("--allow-open-endpoints").returncode == 0  # the address is kept: still 0.0.0.0
    assert _listening(_server_file(fleet)["pid"]) == {"0.0.0.0"}
    assert _put_endpoint(fleet, "open-ep", "none").status_code == 200
    fleet.server.stop()

    # An open endpoint made while forced (or on loopback) keeps a plain start off the network.
    r = _start("--no-allow-open-endpoints")
    assert r.returncode == 1
    assert "open-ep has auth_mode none" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert fleet.server.status()["status"] == "stopped"
    assert _start("--host", "127.0.0.1").returncode == 0  # loopback is fine
    assert _listening(_server_file(fleet)["pid"]) == {"127.0.0.1"}


@pytest.mark.slow
def test_plain_http_beyond_loopback_is_refused_and_nothing_is_saved(fleet):
    r = _start("--host", "0.0.0.0")
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1
    assert "without TLS" in r.stderr and "--ssl-certfile" in r.stderr
    assert fleet.server.status()["status"] == "stopped"
    assert fleet.server.configure()["host"] == "127.0.0.1"


# -- files holding secrets -----------------------------------------------------------------------

@pytest.mark.slow
def test_files_holding_secrets_are_0600(fleet, tmp_path):
    (tmp_path / "m.pkl").write_bytes(b"x")
    fleet.models.register("m", tmp_path / "m.pkl")  # the registry creates the database first
    fleet.online_endpoints.create("secret-ep")       # then the server writes keys into it
    ws = fleet.workspace.path
    files = [ws / "workspace.db", ws / "workspace.db-wal", ws / "workspace.db-shm", fleet.workspace.server_file,
             fleet.workspace.config_file]
    key = fleet.online_endpoints.get_keys("secret-ep")["primaryKey"].encode()
    assert any(key in f.read_bytes() for f in files[:2])  # the keys are in there, so this matters
    for f in files:
        assert f.exists() and f.stat().st_mode & 0o777 == 0o600, (f, oct(f.stat().st_mode))


# -- secrets out of logs and output --------------------------------------------------------------

@pytest.mark.slow
def test_secrets_appear_only_in_get_credentials(guarded):
    fleet, _ = guarded
    old_secondary = fleet.online_endpoints.get_keys("guarded-ep")["secondaryKey"]
    regenerated = _cli("online-endpoint", "regenerate-keys", "--name", "guarded-ep", "--key-type", "secondary")
    keys = fleet.online_endpoints.get_keys("guarded-ep")
    token = _server_file(fleet)["token"]
    secrets_ = [keys["primaryKey"], keys["secondaryKey"], old_secondary, token]
    url = fleet.online_endpoints.get("guarded-ep")["scoring_uri"]
    for auth in (keys["primaryKey"], keys["primaryKey"] + "x", token):  # good and bad keys are never logged
        httpx.post(url, content=b'{"data": 1}', headers={"authorization": f"Bearer {auth}"}, timeout=30)

    shown = [regenerated, _cli("export")] + [_cli(*args, "-o", fmt) for fmt in ("json", "yaml", "table") for args in [
        ("online-endpoint", "show", "--name", "guarded-ep"), ("online-endpoint", "list"),
        ("online-deployment", "show", "--name", "blue", "--endpoint", "guarded-ep"),
        ("online-deployment", "list"), ("online-deployment", "get-logs", "--name", "blue", "--endpoint", "guarded-ep"),
        ("model", "show", "--name", "iris", "--version", "1"), ("model", "list"),
        ("server", "status"), ("server", "start"), ("workspace", "show"), ("workspace", "list"),
    ]]
    logs = [p.read_text(errors="replace") for p in fleet.workspace.logs_dir.rglob("*.log")]
    assert any("scored a request" in t for t in logs) and any("environment:" in t for t in logs)
    for text in shown + logs:
        for s in secrets_:
            assert s not in text

    creds = json.loads(_cli("online-endpoint", "get-credentials", "--name", "guarded-ep", "-o", "json"))
    assert creds == {"primaryKey": keys["primaryKey"], "secondaryKey": keys["secondaryKey"]}


# -- model files reaching outside the store ------------------------------------------------------

def _tar_with_escapes(path: Path, outside: Path) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name in ("model.pkl", "../escaped.txt", f"../../{outside.parent.name}/{outside.name}", str(outside)):
            data = b"payload of " + name.encode()
            member = tarfile.TarInfo(name)
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
        link = tarfile.TarInfo("passwd-link")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)


@pytest.mark.slow
def test_archive_is_stored_as_one_opaque_file_and_never_extracted(fleet, tmp_path):
    """modelfleet does not unpack archives (Azure ML does not either): a tarball with `..`,
    absolute and link entries is stored byte for byte, and nothing lands outside the store."""
    src = tmp_path / "src"
    src.mkdir()
    outside = tmp_path / "outside" / "absolute.txt"
    archive = src / "model.tar.gz"
    _tar_with_escapes(archive, outside)
    m = json.loads(_cli("model", "register", "--name", "packed", "--path", str(archive), "-o", "json"))
    assert [f["path"] for f in m["files"]] == ["model.tar.gz"]
    stored = fleet.workspace.artifacts / "models" / m["sha256"] / "model.tar.gz"
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == hashlib.sha256(archive.read_bytes()).hexdigest()
    out = tmp_path / "download"
    _cli("model", "download", "--name", "packed", "--version", "1", "--download-path", str(out))
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == ["packed", "packed/model.tar.gz"]
    for root in (tmp_path, fleet.workspace.path):
        assert not [p for p in root.rglob("*") if p.name in ("escaped.txt", "absolute.txt", "passwd-link")]
    assert not outside.exists()


def test_links_out_of_a_model_directory_are_refused(api_fleet, inprocess, tmp_path):
    fleet = api_fleet
    (tmp_path / "secret.txt").write_text("not for the store")
    for kind in ("file", "dir"):
        model = tmp_path / f"model-{kind}"
        model.mkdir()
        (model / "model.pkl").write_bytes(b"x")
        target = tmp_path / "secret.txt" if kind == "file" else tmp_path
        (model / "link").symlink_to(target)
        with pytest.raises(InvalidInput, match="symbolic link points outside"):
            fleet.models.register("linked", model)
    assert fleet.models.list() == []
    assert not (inprocess.ws.artifacts / "tmp").exists()   # refused by the client: nothing was sent
    assert not (inprocess.ws.artifacts / "models").exists() or not any((inprocess.ws.artifacts / "models").iterdir())
    # a link that stays inside the model directory is fine
    inside = tmp_path / "model-inside"
    inside.mkdir()
    (inside / "model.pkl").write_bytes(b"x")
    (inside / "alias.pkl").symlink_to(inside / "model.pkl")
    assert sorted(f["path"] for f in fleet.models.register("linked", inside).files) == \
        ["model-inside/alias.pkl", "model-inside/model.pkl"]
