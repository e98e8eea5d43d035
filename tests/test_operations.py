"""Running the server in production: a kept address, TLS, a stop that cuts no request, and
reads that start a stopped server. Real server and replica processes on 127.0.0.1."""

from __future__ import annotations

import datetime
import http.client
import ipaddress
import json
import os
import signal
import ssl
import subprocess
import sys
import threading

import httpx
import orjson
import pytest
from click.testing import CliRunner

from modelfleet import ports
from modelfleet.cli.main import cli
from modelfleet.domain.errors import InvalidInput

from .conftest import IRIS_ROWS
from .helpers import scoring_code, wait_until

pytestmark = pytest.mark.slow  # every test here starts a server and replicas

FLEET = [sys.executable, "-m", "modelfleet"]

SLOW_PY = '''
import json, time
def init():
    pass
def run(raw_data):
    data = json.loads(raw_data)
    time.sleep(data.get("sleep", 0))
    return {"n": data.get("n")}
'''


def _cli(*args: str) -> str:
    r = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r.output


@pytest.fixture
def served(fleet, models_dir):
    fleet.models.register("iris", models_dir / "iris", "1")
    fleet.online_endpoints.create("kept-ep")
    fleet.online_deployments.create("blue", "kept-ep", "iris:1")
    return fleet


def _server_pid(fleet) -> int:
    return orjson.loads(fleet.workspace.server_file.read_bytes())["pid"]


def test_the_address_survives_a_restart_a_crash_and_an_auto_start(served):
    f = served
    uri = f.online_endpoints.get("kept-ep")["scoring_uri"]
    key = f.online_endpoints.get_keys("kept-ep")["primaryKey"]
    auth = {"authorization": f"Bearer {key}"}
    assert httpx.post(uri, json={"data": IRIS_ROWS}, headers=auth, timeout=30).json() == [0, 2]
    # the first start's port lies below the range the OS hands out: no program is given it by chance
    # while the server is down
    assert httpx.URL(uri).port < ports.handed_out_range().start

    f.server.stop()
    f.server.start()
    assert f.online_endpoints.get("kept-ep")["scoring_uri"] == uri
    wait_until(lambda: httpx.post(uri, json={"data": IRIS_ROWS}, headers=auth, timeout=30).status_code == 200)

    # kill -9: no clean exit, a stale run/server.json; the next command that needs the server
    # starts it again on the same port, and the restarted server restores the deployment (a
    # request waits for its replica only up to request_timeout_ms, which a busy machine can outlast)
    pid = _server_pid(f)
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: f.server.status()["status"] == "stopped")
    assert f.online_deployments.wait("kept-ep", "blue", timeout=60)["model"] == "iris:1"
    assert f.online_endpoints.invoke("kept-ep", {"data": IRIS_ROWS}) == [0, 2]
    assert _server_pid(f) != pid
    assert f.online_endpoints.get("kept-ep")["scoring_uri"] == uri
    assert httpx.post(uri, json={"data": IRIS_ROWS}, headers=auth, timeout=30).json() == [0, 2]


def test_reads_while_stopped_start_the_server_and_show_the_same_state(served):
    """The client reads nothing of the workspace itself: a read starts the server, as a write does."""
    f = served
    uri = f.online_endpoints.get("kept-ep")["scoring_uri"]
    keys = f.online_endpoints.get_keys("kept-ep")
    f.server.stop()
    assert f.server.status()["status"] == "stopped"
    shown = json.loads(_cli("online-endpoint", "show", "--name", "kept-ep", "--only-show-errors", "-o", "json"))
    assert f.server.status()["status"] == "running"
    assert shown["scoring_uri"] == uri and shown["traffic"] == {"blue": 100}
    assert json.loads(_cli("online-endpoint", "get-credentials", "--name", "kept-ep", "-o", "json")) == keys
    dep = f.online_deployments.wait("kept-ep", "blue", timeout=60)   # restored from the store
    assert dep["model"] == "iris:1"
    assert "ready in" in json.loads(_cli("online-deployment", "get-logs", "--name", "blue", "--endpoint",
                                         "kept-ep", "-o", "json"))["logs"]


def test_a_chosen_port_is_saved_and_bad_settings_change_nothing(fleet, tmp_path):
    with socket_on_free_port() as port:
        pass
    info, _ = fleet.server.start(port=port)
    assert info["port"] == port and fleet.server.configure()["port"] == port
    fleet.server.stop()
    assert fleet.server.start()[0]["port"] == port
    fleet.server.stop()
    for bad, message in (({"port": 70000}, "port"), ({"ssl_certfile": str(tmp_path / "nope.pem")}, "ssl_certfile"),
                         ({"ssl_certfile": __file__}, "both"), ({"host": "a b"}, "host")):
        with pytest.raises(InvalidInput, match=message):
            fleet.server.start(**bad)
        assert fleet.server.status()["status"] == "stopped"
    cfg = fleet.server.configure()
    assert (cfg["port"], cfg["host"], cfg["ssl_certfile"]) == (port, "127.0.0.1", None)


class socket_on_free_port:
    """A port that was free a moment ago (bound, then released)."""

    def __enter__(self) -> int:
        import socket
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return self.sock.getsockname()[1]

    def __exit__(self, *exc):
        self.sock.close()


# -- TLS -----------------------------------------------------------------------------------------

def _self_signed(folder) -> tuple[str, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fleet.example.test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("fleet.example.test"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


def test_tls_serves_scoring_and_the_control_api(served, tmp_path):
    f = served
    cert, key = _self_signed(tmp_path)
    f.server.stop()
    r = subprocess.run([*FLEET, "server", "start", "-o", "json", "--ssl-certfile", cert, "--ssl-keyfile", key],
                       capture_output=True, text=True, timeout=90)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["url"].startswith("https://127.0.0.1:")
    uri = f.online_endpoints.get("kept-ep")["scoring_uri"]
    assert uri.startswith("https://")
    keys = f.online_endpoints.get_keys("kept-ep")
    r = httpx.post(uri, json={"data": IRIS_ROWS}, headers={"authorization": f"Bearer {keys['primaryKey']}"},
                   verify=ssl.create_default_context(cafile=cert), timeout=30)
    assert r.status_code == 200 and r.json() == [0, 2]
    with pytest.raises(httpx.ConnectError):  # an unknown certificate is refused by a verifying client
        httpx.post(uri, json={"data": IRIS_ROWS}, timeout=30)
    with pytest.raises(httpx.HTTPError):     # and nothing is served in clear on that port
        httpx.post(uri.replace("https://", "http://"), json={"data": IRIS_ROWS}, timeout=30)
    assert f.online_endpoints.invoke("kept-ep", {"data": IRIS_ROWS}) == [0, 2]  # the SDK trusts its server
    assert json.loads(_cli("server", "status", "-o", "json"))["healthy"] is True


def test_a_certificate_that_does_not_load_is_one_line_and_nothing_starts(fleet, tmp_path):
    _, key = _self_signed(tmp_path)
    (tmp_path / "other").mkdir()
    other_cert, _ = _self_signed(tmp_path / "other")  # a certificate that is not for this key
    r = subprocess.run([*FLEET, "server", "start", "--ssl-certfile", other_cert, "--ssl-keyfile", key],
                       capture_output=True, text=True, timeout=90)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and "ssl_certfile" in r.stderr
    assert fleet.server.status()["status"] == "stopped"
    assert fleet.server.configure()["ssl_certfile"] is None


# -- a stop that cuts no request -----------------------------------------------------------------

def test_sigterm_answers_every_request_it_received(fleet, models_dir, tmp_path):
    fleet.models.register("iris", models_dir / "iris", "1")
    fleet.online_endpoints.create("drain-ep")
    fleet.online_deployments.create("fast", "drain-ep", "iris:1")
    fleet.online_deployments.create("slow", "drain-ep", "iris:1", instance_count=2,
                                    code_configuration=scoring_code(tmp_path / "code", SLOW_PY),
                                    request_settings={"request_timeout_ms": 20000})
    uri = fleet.online_endpoints.get("drain-ep")["scoring_uri"]
    key = fleet.online_endpoints.get_keys("drain-ep")["primaryKey"]
    outcomes: list[tuple[str, object]] = []
    lock = threading.Lock()

    def client(body: dict, deployment: str) -> None:
        # One keep-alive connection per thread, reused until the server says `connection: close`.
        # http.client sends on a kept connection without first checking that it is still open, as
        # load generators do: a server closing an idle connection under it cuts that request.
        host, port = uri.split("//")[1].split("/")[0].split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        headers = {"authorization": f"Bearer {key}", "azureml-model-deployment": deployment,
                   "content-type": "application/json"}
        payload = json.dumps(body)
        while True:
            try:
                conn.request("POST", "/endpoints/drain-ep/score", payload, headers)
                r = conn.getresponse()
                r.read()
                outcome = ("status", r.status)
            except ConnectionRefusedError:
                outcome = ("refused", None)    # never reached the server: nothing was cut
            except (OSError, http.client.HTTPException) as e:
                outcome = ("cut", repr(e))     # sent, and no answer came back
            with lock:
                outcomes.append(outcome)
            if outcome[0] != "status":
                conn.close()
                return

    # fast clients keep their connections busy and idle in turns; slow ones hold requests in flight
    threads = [threading.Thread(target=client, args=({"data": IRIS_ROWS}, "fast")) for _ in range(6)]
    threads += [threading.Thread(target=client, args=({"sleep": 1.5}, "slow")) for _ in range(2)]
    for t in threads:
        t.start()
    wait_until(lambda: sum(r["inflight"] for r in fleet.online_deployments.get("slow", "drain-ep")["replicas"]) >= 2
               and len(outcomes) > 50)
    os.kill(_server_pid(fleet), signal.SIGTERM)
    for t in threads:
        t.join(timeout=90)
    wait_until(lambda: fleet.server.status()["status"] == "stopped", timeout=60)
    cut = [o for o in outcomes if o[0] == "cut"]
    assert not cut, cut
    assert {o[1] for o in outcomes if o[0] == "status"} == {200}
    assert [o[0] for o in outcomes].count("refused") == len(threads)  # each client ends on a refused connect
