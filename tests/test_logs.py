"""Replica logs: stamped lines with request ids, merged across replicas, --since, --follow,
rotation and rate-limited tracebacks. Real server and replicas, plus the pure parts alone."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time

import httpx
import pytest

from modelfleet.files.logfmt import iso_time, line_time
from modelfleet.runtime.replica_log import TRACEBACKS_PER_PERIOD, TracebackLimiter
from modelfleet.server.http import logs as replica_logs

from .helpers import scoring_code, wait_until

NOISY_PY = '''
import json, logging
log = logging.getLogger("noisy")
def init():
    logging.basicConfig(level=logging.INFO)
def run(raw_data):
    data = json.loads(raw_data)
    if data.get("raise"):
        raise ValueError("bad input on purpose")
    print("printed", data["marker"])
    log.info("logged %s", data["marker"])
    return {"ok": data["marker"]}
'''


@pytest.fixture
def noisy(fleet, models_dir, tmp_path):
    fleet.models.register("iris", models_dir / "iris", "1")
    fleet.online_endpoints.create("noisy-ep")
    fleet.online_deployments.create("main", "noisy-ep", "iris:1", instance_count=2,
                                    code_configuration=scoring_code(tmp_path / "code", NOISY_PY))
    key = fleet.online_endpoints.get_keys("noisy-ep")["primaryKey"]
    uri = fleet.online_endpoints.get("noisy-ep")["scoring_uri"]

    def post(body: dict) -> httpx.Response:
        return httpx.post(uri, json=body, headers={"authorization": f"Bearer {key}"}, timeout=30)
    return fleet, post


def _logs(fleet, **kw) -> str:
    return fleet.online_deployments.get_logs("main", "noisy-ep", **kw)


@pytest.mark.slow
def test_lines_carry_time_replica_and_request_id(noisy):
    fleet, post = noisy
    rids = {}
    for i in range(6):
        r = post({"marker": f"m{i}"})
        assert r.status_code == 200
        rids[f"m{i}"] = r.headers["x-request-id"]
    text = wait_until(lambda: (t := _logs(fleet)) and all(f"logged m{i}" in t for i in range(6)) and t)
    replicas = {r["id"] for r in fleet.online_deployments.get("main", "noisy-ep")["replicas"]}
    for marker, rid in rids.items():
        printed = next(line for line in text.splitlines() if line.endswith(f"printed {marker}"))
        replica, stamp, request = printed.split()[:3]
        assert replica in replicas and line_time(stamp) and request == f"[{rid}]"
        assert any(line.endswith(f"INFO:noisy:logged {marker}") and f"[{rid}]" in line for line in text.splitlines())
    stamps = [line.split()[1] for line in text.splitlines()]
    assert stamps == sorted(stamps)  # merged in time order across both replicas
    assert {line.split()[0] for line in text.splitlines()} == replicas


@pytest.mark.slow
def test_since_and_follow(noisy):
    fleet, post = noisy
    assert post({"marker": "before"}).status_code == 200
    wait_until(lambda: "printed before" in _logs(fleet))
    middle = iso_time(time.time())
    wait_until(lambda: iso_time(time.time()) > middle)
    assert post({"marker": "after"}).status_code == 200
    wait_until(lambda: "printed after" in _logs(fleet))
    later = _logs(fleet, since=middle)
    assert "printed after" in later and "printed before" not in later
    assert "printed before" in _logs(fleet, since="10m")

    chunks: list[str] = []
    follower = threading.Thread(target=lambda: chunks.extend(
        fleet.online_deployments.follow_logs("main", "noisy-ep", lines=1)), daemon=True)
    follower.start()
    wait_until(lambda: chunks)  # the tail came first
    for i in range(3):
        assert post({"marker": f"live{i}"}).status_code == 200
    wait_until(lambda: all(f"printed live{i}" in "".join(chunks) for i in range(3)))
    fleet.server.stop()  # a follow ends when the server stops
    follower.join(timeout=60)
    assert not follower.is_alive()


@pytest.mark.slow
def test_a_flood_of_bad_requests_writes_a_bounded_log(noisy):
    fleet, post = noisy
    folder = fleet.workspace.logs_dir / "noisy-ep" / "main"
    before = sum(f.stat().st_size for f in folder.iterdir())
    with httpx.Client(timeout=30) as client:
        key = fleet.online_endpoints.get_keys("noisy-ep")["primaryKey"]
        uri = fleet.online_endpoints.get("noisy-ep")["scoring_uri"]
        statuses = {client.post(uri, json={"raise": True}, headers={"authorization": f"Bearer {key}"}).status_code
                    for _ in range(2000)}
    assert statuses == {424}
    text = _logs(fleet, lines=100_000)
    assert 1 <= text.count("Traceback (most recent call last)") <= 2 * TRACEBACKS_PER_PERIOD
    assert sum(f.stat().st_size for f in folder.iterdir()) - before < 30_000  # 2000 tracebacks: ~2.6 MB


# -- the pure parts ---------------------------------------------------------------------------------

def test_rotation_keeps_the_newest_lines_and_moves_native_output_too(tmp_path):
    log = tmp_path / "r-1.log"
    script = textwrap.dedent(f"""
        import os, sys
        fd = os.open({str(log)!r}, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        os.dup2(fd, 1); os.dup2(fd, 2)
        from pathlib import Path
        from modelfleet.runtime import replica_log
        replica_log.install(Path({str(log)!r}), max_bytes=4000, backups=2)
        for i in range(400):
            print("line", i)
        os.write(1, b"native after rotation\\n")
        replica_log.finish()
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["r-1.log", "r-1.log.1", "r-1.log.2"]
    assert all(p.stat().st_size <= 4000 for p in tmp_path.iterdir())
    live = log.read_text().splitlines()
    assert live[-1] == "native after rotation" and live[-2].endswith("[-] line 399")
    merged = replica_logs.read(tmp_path, 100_000, {"r-1"})
    numbers = [int(line.rsplit(" ", 1)[1]) for line in merged.splitlines() if " line " in line]
    assert numbers == list(range(numbers[0], 400)) and numbers[0] > 0  # the oldest rotated away


def test_tracebacks_are_limited_per_error_and_period(capsys):
    now = [0.0]
    limiter = TracebackLimiter(clock=lambda: now[0])

    def boom(kind=ValueError):
        try:
            raise kind("x")
        except Exception as e:
            return e
    for _ in range(50):
        limiter.report(boom())
    limiter.report(boom(KeyError))
    err = capsys.readouterr().err
    assert err.count("Traceback") == 2 and "KeyError" in err
    now[0] = 61.0
    limiter.report(boom())
    err = capsys.readouterr().err
    assert err.count("Traceback") == 1 and "(49 more ValueError errors like the one below were not printed)" in err


def test_logs_merge_by_time_with_since_and_follow_across_rotation(tmp_path):
    a, b = tmp_path / "a-1.log", tmp_path / "b-1.log"
    a.write_text("2026-01-01T00:00:01.000Z [r1] a first\n  continued\n2026-01-01T00:00:03.000Z [r3] a third\n")
    b.write_text("2026-01-01T00:00:02.000Z [r2] b second\n")
    assert replica_logs.read(tmp_path, 10, {"a-1", "b-1"}).splitlines() == [
        "a-1  2026-01-01T00:00:01.000Z [r1] a first", "a-1    continued",
        "b-1  2026-01-01T00:00:02.000Z [r2] b second", "a-1  2026-01-01T00:00:03.000Z [r3] a third"]
    assert replica_logs.read(tmp_path, 10, {"a-1", "b-1"}, since="2026-01-01T00:00:02.000Z").splitlines() == [
        "b-1  2026-01-01T00:00:02.000Z [r2] b second", "a-1  2026-01-01T00:00:03.000Z [r3] a third"]
    new = replica_logs.follow(tmp_path, set())
    assert next(new) == []
    with open(a, "a") as f:
        f.write("2026-01-01T00:00:04.000Z [r4] a fourth\n")
    a.rename(tmp_path / "a-1.log.1")  # rotated right after that write
    a.write_text("2026-01-01T00:00:05.000Z [r5] a fifth\n")
    (tmp_path / "c-1.log").write_text("2026-01-01T00:00:06.000Z [r6] c new replica\n")
    assert next(new) == ["a-1  2026-01-01T00:00:04.000Z [r4] a fourth", "a-1  2026-01-01T00:00:05.000Z [r5] a fifth",
                         "c-1  2026-01-01T00:00:06.000Z [r6] c new replica"]
    replica_logs.prune(tmp_path, keep=1, live={"c-1"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-1.log", "a-1.log.1", "c-1.log"]
