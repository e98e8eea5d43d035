"""Bad input: fuzzed requests against a real running server, and a corpus of broken YAML.

The gateway and the control API must answer every request with a status below 500 (a 4xx for
anything malformed; 424 is a model refusing its input), never crash, never kill a replica. The
server set up here has every deployment ready and taking traffic, so no 5xx is legitimate: a 503
"no ready replica" would itself be a fault.

Requests are written on a raw socket: an HTTP client would normalize `..` and refuse odd bytes,
which are exactly what these tests send.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import orjson
import psutil
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings, strategies as st

from modelfleet import Fleet
from modelfleet.cli.main import cli

from .conftest import IRIS_ROWS, fleet_in

MAX_BODY = 64 * 1024
FUZZ = settings(max_examples=300, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

ECHO_PY = '''
import json
def init():
    pass
def run(raw_data):
    return {"type": type(json.loads(raw_data)).__name__}
'''


@dataclass
class Target:
    fleet: Fleet
    port: int
    key: str
    server_pid: int
    replica_pids: list[int]
    log: Path


def raw_request(port: int, method: bytes, target: bytes, headers: list[tuple[bytes, bytes]] = (),
                body: bytes = b"", length: int | None = None, chunked: bool = False) -> tuple[int, bytes]:
    """Send one HTTP/1.1 request as given (no normalization) and return (status, body).

    `length` declares a Content-Length other than the body's; `chunked` sends the body in two
    chunks with no length at all, so the server learns its size only by reading it.
    """
    head = [method + b" " + target + b" HTTP/1.1", b"host: 127.0.0.1", b"connection: close"]
    if chunked:
        half = len(body) // 2
        head.append(b"transfer-encoding: chunked")
        body = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in (body[:half], body[half:]) if c) + b"0\r\n\r\n"
    else:
        head.append(b"content-length: %d" % (len(body) if length is None else length))
    head += [k + b": " + v for k, v in headers]
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        s.sendall(b"\r\n".join(head) + b"\r\n\r\n" + body)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    status_line, _, rest = data.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 "), data[:200]
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


@pytest.fixture(scope="module")
def target(tmp_path_factory, models_dir):
    """One server: `fuzz-key` (key auth; a no-code sklearn and a score.py deployment, 50/50) and
    `fuzz-open` (auth none), each deployment refusing bodies over 64 KiB."""
    home = tmp_path_factory.mktemp("fuzz") / "home"
    code = tmp_path_factory.mktemp("echo")
    (code / "score.py").write_text(ECHO_PY)
    with fleet_in(home) as f:
        f.models.register("iris", models_dir / "iris", "1")
        limits = {"max_body_bytes": MAX_BODY}
        f.online_endpoints.create("fuzz-key")
        f.online_deployments.create("blue", "fuzz-key", "iris:1", request_settings=limits)
        f.online_deployments.create("green", "fuzz-key", "iris:1", request_settings=limits,
                                    code_configuration={"code": str(code), "scoring_script": "score.py"})
        f.online_endpoints.update("fuzz-key", traffic={"blue": 50, "green": 50})
        f.online_endpoints.create("fuzz-open", auth_mode="none")
        f.online_deployments.create("blue", "fuzz-open", "iris:1", request_settings=limits)
        status = f.server.status()
        pids = [r["pid"] for d in f.online_deployments.list() for r in d["replicas"]]
        yield Target(f, status["port"], f.online_endpoints.get_keys("fuzz-key")["primaryKey"],
                     status["pid"], pids, f.workspace.logs_dir / "server.log")


def _assert_unharmed(t: Target) -> None:
    """The server and every replica are the same processes, and a good request still works."""
    assert psutil.pid_exists(t.server_pid)
    assert sorted(r["pid"] for d in t.fleet.online_deployments.list() for r in d["replicas"]) == sorted(t.replica_pids)
    status, body = raw_request(t.port, b"POST", b"/endpoints/fuzz-key/score",
                               [(b"authorization", b"Bearer " + t.key.encode())], orjson.dumps({"data": IRIS_ROWS}))
    assert status == 200, body
    assert b"Traceback" not in t.log.read_bytes()


# -- strategies ----------------------------------------------------------------------------------

TRICKY_NAMES = ["..", ".", "%2e%2e", "%2E%2E%2F", "..%2f..%2f", "%00", "fuzz-key%00", "a%2fb", "%ff%fe",
                "\u043c\u043e\u0434\u0435\u043b\u044c", "%D0%BC%D0%BE", "\U0001F600", "%F0%9F%98%80", "\u202efuzz-key",
                "fuzz-key/../fuzz-open", "FUZZ-KEY", "fuzz-key ", "x" * 3000, "", "score", "v2", "%", "%%",
                "?", "#", ";", "fuzz-key;x=1", "\\..\\"]

# Names in a request target: raw tricks (sent as the bytes they are), or any text percent-encoded
# the way a client would.
name = st.one_of(st.sampled_from(TRICKY_NAMES), st.text(max_size=40).map(lambda s: quote(s, safe="")))
endpoint_name = st.one_of(st.sampled_from(["fuzz-key", "fuzz-open"]), name)
deployment_name = st.one_of(st.sampled_from(["blue", "green"]), name)


def _segment(s: str) -> bytes:
    # Only CR, LF and space, which would end the request line, are escaped.
    return s.encode().replace(b" ", b"%20").replace(b"\r", b"%0D").replace(b"\n", b"%0A")


SCORING_PATHS = ["/endpoints/{e}/score", "/v2/models/{e}/infer", "/v2/models/{e}/versions/{d}/infer"]
OTHER_PATHS = ["/endpoints/{e}", "/endpoints/{e}/score/{d}", "/endpoints//score", "/v2/models/{e}",
               "/v2/models/{e}/ready", "/v2/models/{e}/versions/{d}", "/v2/models/{e}/versions/{d}/ready",
               "/v2", "/v2/", "/v2/health/ready", "/v2/health/live", "/v2/{e}", "/endpoints/{e}/score?{d}",
               "/endpoints/{e}/../{d}/score", "/v2/models/{e}/versions/../infer"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=10), inner, max_size=6),
    max_leaves=40)


def _dumps(v) -> bytes:
    return json.dumps(v, allow_nan=True).encode()  # NaN and Infinity: not JSON, sent anyway


bodies = st.one_of(
    st.binary(max_size=2048),
    json_values.map(_dumps),
    json_values.map(lambda v: _dumps({"data": v})),
    json_values.map(lambda v: _dumps({"inputs": v})),
    st.lists(st.lists(st.floats() | st.integers() | st.text(max_size=3), max_size=6), max_size=6)
    .map(lambda rows: _dumps({"data": rows})),
    st.builds(lambda shape, data, dt: _dumps({"inputs": [{"name": "x", "shape": shape, "datatype": dt, "data": data}]}),
              st.lists(st.integers(-2, 10**12), max_size=4), json_values,
              st.sampled_from(["FP32", "FP64", "INT64", "BYTES", "BOOL", "nope", ""])),
    st.integers(1, 3000).map(lambda n: b"[" * n + b"]" * n),
    st.text(max_size=200).map(str.encode),
)

content_types = st.sampled_from([None, b"application/json", b"text/plain", b"application/octet-stream",
                                 b"multipart/form-data; boundary=x", b"application/json; charset=utf-16",
                                 b"", b"\xff\xfe", b"application/x-www-form-urlencoded"])


@st.composite
def auth_headers(draw, key: str):
    choice = draw(st.sampled_from(["none", "valid", "lower", "wrong", "empty", "basic", "prefix", "suffix", "junk"]))
    value = {"valid": b"Bearer " + key.encode(), "lower": b"bearer " + key.encode(),
             "wrong": b"Bearer " + b"x" * len(key), "empty": b"Bearer ", "basic": b"Basic " + key.encode(),
             "prefix": b"Bearer " + key[:-1].encode(), "suffix": b"Bearer " + key.encode() + b"x",
             "junk": draw(st.binary(min_size=1, max_size=60)).replace(b"\r", b"").replace(b"\n", b"")}.get(choice)
    return [] if value is None else [(b"authorization", value)]


EXTRA_HEADERS = st.sampled_from([None, None, (b"azureml-model-deployment", b"green"),
                                 (b"azureml-model-deployment", b"../blue"), (b"azureml-model-deployment", b"\xff"),
                                 (b"inference-header-content-length", b"5"),
                                 (b"inference-header-content-length", b"999999999"),
                                 (b"inference-header-content-length", b"-1")])


@st.composite
def requests(draw, key: str):
    """Anything at any route: names with tricks, any method, any key, any body."""
    template = draw(st.sampled_from(SCORING_PATHS) | st.sampled_from(OTHER_PATHS))
    path = template.encode().replace(b"{e}", _segment(draw(endpoint_name))) \
        .replace(b"{d}", _segment(draw(deployment_name)))
    method = draw(st.sampled_from([b"POST"] * 6 + [b"GET", b"PUT", b"DELETE", b"HEAD", b"OPTIONS", b"PATCH"]))
    headers = draw(st.just([(b"authorization", b"Bearer " + key.encode())]) | auth_headers(key))
    return method, path, headers + draw(content_and_extra), draw(bodies)


@st.composite
def scoring_requests(draw, key: str):
    """Well-aimed requests (a real scoring route, the valid key) whose content is wrong, so every
    one reaches a deployment and its replica."""
    path = draw(st.sampled_from([b"/endpoints/fuzz-key/score", b"/endpoints/fuzz-open/score",
                                 b"/v2/models/fuzz-key/infer", b"/v2/models/fuzz-open/infer",
                                 b"/v2/models/fuzz-key/versions/blue/infer",
                                 b"/v2/models/fuzz-key/versions/green/infer"]))
    return path, [(b"authorization", b"Bearer " + key.encode())] + draw(content_and_extra), draw(bodies)


@st.composite
def _content_and_extra(draw):
    headers = []
    ctype = draw(content_types)
    if ctype is not None:
        headers.append((b"content-type", ctype))
    extra = draw(EXTRA_HEADERS)
    if extra:
        headers.append(extra)
    return headers


content_and_extra = _content_and_extra()


def _is_valid_key(headers: list, key: str) -> bool:
    """What the gateway accepts: "Bearer <key>", any case, surrounding spaces ignored."""
    return bool(headers) and headers[0][1][:7].lower() == b"bearer " and headers[0][1][7:].strip() == key.encode()


# -- the gateway ---------------------------------------------------------------------------------

@pytest.mark.slow
def test_gateway_answers_fuzzed_requests_without_5xx(target):
    @FUZZ
    @given(requests(target.key))
    def check(req):
        method, path, headers, body = req
        status, answer = raw_request(target.port, method, path, headers, body if method != b"HEAD" else b"")
        assert status < 500, (req, status, answer[:300])
    check()
    _assert_unharmed(target)


@pytest.mark.slow
def test_scoring_routes_answer_fuzzed_bodies_without_5xx(target):
    @FUZZ
    @given(scoring_requests(target.key))
    def check(req):
        path, headers, body = req
        status, answer = raw_request(target.port, b"POST", path, headers, body)
        assert status < 500, (req, status, answer[:300])
    check()
    _assert_unharmed(target)


@pytest.mark.parametrize("path", [b"/endpoints/fuzz-key/score", b"/v2/models/fuzz-key/infer",
                                  b"/v2/models/fuzz-key/versions/green/infer", b"/endpoints/fuzz-open/score"])
@pytest.mark.slow
def test_deep_nesting_and_huge_bodies_are_4xx(target, path):
    auth = [(b"authorization", b"Bearer " + target.key.encode())]
    deep = b"[" * 10_000 + b"]" * 10_000
    for deployment in (b"blue", b"green"):
        headers = auth + [(b"azureml-model-deployment", deployment)] if b"fuzz-key/score" in path else auth
        status, answer = raw_request(target.port, b"POST", path, headers, deep)
        assert 400 <= status < 500, (status, answer[:300])
        nested = json.dumps({"data": [[[[[[1.0] * 4]]]]] * 2}).encode()
        status, answer = raw_request(target.port, b"POST", path, headers, nested)
        assert status < 500, (status, answer[:300])  # the echo script takes it: 200
    # over max_body_bytes: refused from the declared length alone, before the body is read
    status, answer = raw_request(target.port, b"POST", path, auth, b"", length=50 * 1024 * 1024)
    assert status == 413 and b"larger than" in answer
    # and with no declared length, once the body read so far passes the limit
    status, answer = raw_request(target.port, b"POST", path, auth, b"[" + b"1" * MAX_BODY + b"]", chunked=True)
    assert status == 413 and b"larger than" in answer
    _assert_unharmed(target)


@pytest.mark.slow
def test_requests_without_a_valid_key_are_401_on_every_route(target):
    @FUZZ
    @given(st.sampled_from([b"/endpoints/fuzz-key/score", b"/v2/models/fuzz-key/infer",
                            b"/v2/models/fuzz-key/versions/blue/infer", b"/v2/models/fuzz-key",
                            b"/v2/models/fuzz-key/ready"]),
           auth_headers(target.key).filter(lambda h: not _is_valid_key(h, target.key)),
           bodies)
    def check(path, headers, body):
        method = b"POST" if path.endswith(b"infer") or path.endswith(b"score") else b"GET"
        status, answer = raw_request(target.port, method, path, headers, body if method == b"POST" else b"")
        # 400 only from the HTTP parser itself, for header bytes HTTP forbids (NUL, DEL, ...)
        assert status == 401 or (status, answer) == (400, b"Invalid HTTP request received."), \
            (path, headers, status, answer[:200])
    check()


# -- the control API -----------------------------------------------------------------------------

def _openapi_routes(t: Target) -> list[tuple[str, str]]:
    _, body = raw_request(t.port, b"GET", b"/openapi.json")
    spec = json.loads(body)
    return sorted((path, method.upper()) for path, ops in spec["paths"].items() for method in ops)


@pytest.mark.slow
def test_control_api_answers_fuzzed_requests_without_5xx(target):
    token = json.loads((target.fleet.workspace.server_file).read_bytes())["token"].encode()
    routes = _openapi_routes(target)
    real = {"fuzz-key", "fuzz-open", "blue", "green"}  # never touched: the other tests use them
    safe_name = name.filter(lambda s: s.strip() not in real and "fuzz" not in s.lower() and "/" not in s
                            and s not in ("..", "."))

    @FUZZ
    @given(st.sampled_from(routes), safe_name, safe_name, safe_name,
           st.one_of(json_values.map(_dumps), st.binary(max_size=300),
                     st.fixed_dictionaries({}, optional={
                         "auth_mode": st.sampled_from(["key", "none", "aml_token", ""]) | st.text(max_size=5),
                         "model": name, "traffic": st.dictionaries(name, st.integers()) | json_values,
                         "key_type": st.sampled_from(["primary", "secondary", "tertiary"]),
                         "instance_count": st.integers(-5, 100),
                         "code": st.fixed_dictionaries({"sha256": st.sampled_from(["../../..", "a" * 64, "%2e%2e"]),
                                                        "root": name, "scoring_script": name}),
                         "request_settings": json_values}).map(_dumps)),
           st.sampled_from([b"", b"?wait=nan", b"?wait=inf", b"?wait=-1", b"?lines=-99999999999999999999",
                            b"?create=maybe", b"?all_traffic=1&create=true", b"?lines=abc"]))
    def check(route, a, b, c, body, query):   # up to three path parameters (a model's file)
        path_t, method = route
        params = iter([a, b, c])
        path = b"/".join(_segment(next(params)) if part.startswith("{") else part.encode()
                         for part in path_t.split("/"))
        headers = [(b"authorization", b"Bearer " + token), (b"content-type", b"application/json")]
        status, answer = raw_request(target.port, method.encode(), path + query, headers, body)
        assert status < 500, (method, path + query, body[:200], status, answer[:300])
    check()
    _assert_unharmed(target)


@pytest.mark.slow
def test_garbage_http_does_not_hurt_the_server(target):
    for raw in (b"\x00\x01\x02\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b"POST /endpoints/fuzz-key/score HTTP/1.1\r\n"
                b"content-length: -5\r\n\r\n", b"POST /v2 HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
                b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\n\r\n", b"\xff" * 1000):
        with socket.create_connection(("127.0.0.1", target.port), timeout=30) as s:
            s.sendall(raw)
            s.shutdown(socket.SHUT_WR)
            data = b""
            try:
                while chunk := s.recv(65536):
                    data += chunk
            except ConnectionResetError:
                pass
        assert not data or not data.startswith(b"HTTP/1.1 5"), data[:200]
    _assert_unharmed(target)


# -- a corpus of broken YAML ---------------------------------------------------------------------

def _bomb(levels: int = 10, width: int = 10, indent: str = "") -> str:
    lines = [f"{indent}l0: &l0 [" + ", ".join(["lol"] * width) + "]"]
    lines += [f"{indent}l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


MODEL_CORPUS = {
    "syntax_unclosed_flow": ("name: m\npath: [unclosed\n", r"model\.yml:\d+:\d+: invalid YAML"),
    "syntax_bad_indent": ("name: m\n  path: x\n - y\n", r"model\.yml:\d+:\d+: invalid YAML"),
    "syntax_tab": ("name: m\n\tpath: x\n", r"model\.yml:\d+:\d+: invalid YAML"),
    "wrong_type_version": ("name: m\npath: ./m\nversion: [1]\n", "version:"),
    "wrong_type_name": ("name: {a: b}\npath: ./m\n", "name"),
    "wrong_type_type": ("name: m\npath: ./m\ntype: pickle\n", "type:"),
    "wrong_type_tags": ("name: m\npath: ./m\ntags: [1, 2]\n", "tags"),
    "missing_path": ("name: m\n", "path"),
    "missing_name": ("path: ./m\n", "name"),
    "unknown_field": ("name: m\npath: ./m\npth: ./x\n", "unknown field 'pth'"),
    "not_a_mapping": ("- a\n- b\n", "expected a mapping"),
    "two_documents": ("name: a\npath: ./m\n---\nname: b\npath: ./m\n", "expected one document, found 2"),
    "empty": ("", "expected one document, found 0"),
    "python_object": ("name: m\npath: ./m\ndescription: !!python/object/apply:os.system ['true']\n",
                      "could not determine a constructor"),
    "alias_bomb_top": ("name: m\npath: ./m\n" + _bomb(), "alias"),
    "alias_bomb_in_tags": ("name: m\npath: ./m\ntags:\n" + _bomb(indent="  "), "alias"),
    "too_many_aliases": ("name: m\npath: ./m\nx: &x 1\ny: [" + ", ".join(["*x"] * 150) + "]\n", "150 YAML aliases"),
    "nul_character": ("name: m\npath: ./m\n\x00\n", "unacceptable character #x0000"),
    "deep_nesting": ("name: m\npath: ./m\nx: " + "[" * 10_000 + "]" * 10_000 + "\n", "nesting depth"),
}

ENDPOINT_CORPUS = {
    "syntax": ("name: ep-one\nauth_mode: key\n  traffic: {\n", r"endpoint\.yml:\d+:\d+: invalid YAML"),
    "wrong_auth_mode": ("name: ep-one\nauth_mode: maybe\n", "auth_mode"),
    "path_trick_name": ("name: ../../etc\n", "name: must be"),
    "nul_in_name": ('name: "ep\\0one"\n', "name: must be"),
    "unicode_name": ("name: \u043c\u043e\u0434\u0435\u043b\u044c\n", "name: must be"),
    "wrong_traffic": ("name: ep-one\ntraffic: {blue: many}\n", "traffic.blue"),
    "wrong_tags": ("name: ep-one\ntags: [a]\n", "tags"),
    "wrong_compute": ("name: ep-one\ncompute: azureml:k8s/cluster\n", "invalid compute name 'k8s/cluster'"),
    "missing_name": ("auth_mode: key\n", "--name is required"),
    "alias_bomb": ("name: ep-one\ntags:\n" + _bomb(indent="  "), "alias"),
}

DEPLOYMENT_CORPUS = {
    "syntax": ("name: blue\nmodel: m:1\nrequest_settings: {max_body_bytes: 1\n", r"deployment\.yml:\d+:\d+: invalid YAML"),
    "wrong_env": ("name: blue\nendpoint_name: ep-one\nmodel: m:1\nenvironment_variables: [A]\n",
                  "environment_variables"),
    "wrong_memory": ("name: blue\nendpoint_name: ep-one\nmodel: m:1\nresources: {limits: {memory: lots}}\n",
                     "resources.limits.memory"),
    "zero_instances": ("name: blue\nendpoint_name: ep-one\nmodel: m:1\ninstance_count: 0\n", "instance_count"),
    "path_trick_model": ("name: blue\nendpoint_name: ep-one\nmodel: ../../m:1\n", "model"),
    "path_trick_endpoint": ("name: blue\nendpoint_name: ../ep\nmodel: m:1\n", "endpoint_name"),
    "missing_model": ("name: blue\nendpoint_name: ep-one\n", "model"),
    "alias_bomb": ("name: blue\nendpoint_name: ep-one\nmodel: m:1\nenvironment_variables:\n" + _bomb(indent="  "),
                   "alias"),
}

@pytest.mark.parametrize("case", list(MODEL_CORPUS))
def test_broken_model_yaml_is_refused_with_its_reason(fleet_home, tmp_path, case):
    text, reason = MODEL_CORPUS[case]
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "model.pkl").write_bytes(b"x")
    (tmp_path / "model.yml").write_text(text)
    _assert_refused(["model", "register", "-f", str(tmp_path / "model.yml")], reason)
    _assert_no_models(fleet_home)


@pytest.mark.parametrize("case", list(ENDPOINT_CORPUS))
def test_broken_endpoint_yaml_is_refused_with_its_reason(fleet_home, tmp_path, case):
    text, reason = ENDPOINT_CORPUS[case]
    (tmp_path / "endpoint.yml").write_text(text)
    _assert_refused(["online-endpoint", "create", "-f", str(tmp_path / "endpoint.yml")], reason)
    assert not list(fleet_home.glob("**/run/server.json"))  # refused before any server was asked


@pytest.mark.parametrize("case", list(DEPLOYMENT_CORPUS))
def test_broken_deployment_yaml_is_refused_with_its_reason(fleet_home, tmp_path, case):
    text, reason = DEPLOYMENT_CORPUS[case]
    (tmp_path / "deployment.yml").write_text(text)
    _assert_refused(["online-deployment", "create", "-f", str(tmp_path / "deployment.yml")], reason)
    assert not list(fleet_home.glob("**/run/server.json"))


def test_huge_and_binary_yaml_files_are_refused(fleet_home, tmp_path):
    huge = tmp_path / "huge.yml"
    huge.write_text("name: m\npath: ./m\ndescription: " + "x" * (20 * 1024 * 1024) + "\n")
    _assert_refused(["model", "register", "-f", str(huge)], "larger than 8 MiB")
    _assert_refused(["online-endpoint", "create", "-f", str(huge)], "larger than 8 MiB")
    binary = tmp_path / "binary.yml"
    binary.write_bytes(os.urandom(4096) + b"\xff\xfe")
    _assert_refused(["model", "register", "-f", str(binary)], "not UTF-8")
    _assert_refused(["model", "register", "-f", str(tmp_path)], "is a directory")
    _assert_refused(["model", "register", "-f", str(tmp_path / "missing.yml")], "not found")
    _assert_no_models(fleet_home)


def _assert_no_models(home: Path) -> None:
    if (home / "workspaces").exists():
        with Fleet() as f:
            assert f.models.list(include_archived=True) == []


def _assert_refused(args: list[str], reason: str) -> None:
    import re
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 2, (r.exit_code, r.output, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert re.search(reason, lines[0]), lines[0]


# -- malformed V2 tensors ------------------------------------------------------------------------

V2_MALFORMED = {
    "parameters_not_an_object": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3, 4],
                                  "parameters": []}],
    "scalar_shape": [{"name": "x", "shape": [], "datatype": "FP64", "data": 1}],
    "inputs_with_different_batch_sizes": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3, 4]},
                                          {"name": "y", "shape": [2, 1], "datatype": "FP64", "data": [1, 2]}],
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(V2_MALFORMED))
def test_malformed_v2_tensors_are_client_errors(target, case):
    status, answer = raw_request(target.port, b"POST", b"/v2/models/fuzz-open/infer",
                                 [(b"content-type", b"application/json")], orjson.dumps({"inputs": V2_MALFORMED[case]}))
    assert status == 400, (status, answer[:300])
