"""Several servers of one workspace behind nginx: what each server added costs or gives, and how
long a failover takes.

One PostgreSQL (tests/postgres.py), one owned Ray compute on 127.0.0.1, the iris model behind one
endpoint with two replica actors, Debian's nginx in front (tests/nginx.py). Measured in one run:

  1. requests/s and p50/p99 through nginx with one, two and three servers (nginx balancing over
     them, every gateway reaching both actors), in rounds of (1, 2, 3) so that each count shares
     whatever else the machine does; and straight to one server, without nginx, for the hop;
  2. failover: under load through nginx (8 connections, per-request records), kill -9 the leading
     server of two: time until the other leads, failed requests, the slowest request across the
     kill; repeated, the killed server started again as a follower each time.

    .venv/bin/python bench/high_availability.py               # ~6-10 minutes
    .venv/bin/python bench/high_availability.py --rounds 2 --duration 4 --failovers 2

Writes bench/results/high_availability.json and .md. All traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT.parent))
import common as c  # noqa: E402
import serving  # noqa: E402

from tests.nginx import Nginx  # noqa: E402
from tests.postgres import PostgresServer  # noqa: E402

TOKEN = "bench-ha-admin-token-0123456789"
LEASE_S = 3.0
PATH = "/endpoints/ha-ep/score"


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=5.0, help="seconds of measured load per run")
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--rounds", type=int, default=3, help="rounds of (1, 2, 3 servers); medians reported")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--failovers", type=int, default=3, help="kill -9 of the leader, each under load")
    ap.add_argument("--failover-connections", type=int, default=8)
    ap.add_argument("--only", choices=["throughput", "failover"], default=None, help="one part only")
    return ap.parse_args(argv)


class Servers:
    """The workspace's servers: the first through `fleet server start`, the others joined to it."""

    def __init__(self, fleet):
        self.fleet = fleet
        self.urls: list[str] = []
        self.pids: list[int] = []
        self.http = httpx.Client(headers={"authorization": f"Bearer {TOKEN}"}, timeout=10)

    def start_first(self) -> None:
        info = self.fleet.server.start()[0]
        self.urls.insert(0, info["url"])
        self.pids.insert(0, info["pid"])

    def join(self) -> None:
        info = self.fleet.server.join()
        self.urls.append(info["url"])
        self.pids.append(info["pid"])

    def roles(self, url: str) -> dict[int, str]:
        try:
            return {s["pid"]: s["role"] for s in self.http.get(f"{url}/api/servers").json()}
        except (httpx.HTTPError, ValueError, TypeError):
            return {}

    def leader(self) -> int | None:
        for url in self.urls:
            found = [pid for pid, role in self.roles(url).items() if role == "leader" and pid in self.pids]
            if found:
                return found[0]
        return None

    def upstreams(self, n: int) -> list[str]:
        return [u.removeprefix("http://") for u in self.urls[:n]]


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise RuntimeError(f"{what}: not within {timeout:.0f} s")


def throughput(args, servers: Servers, nginx: Nginx, key: str) -> dict:
    headers = {**serving.JSON_HEADERS, "Authorization": f"Bearer {key}"}
    targets = [(PATH, serving.BODY, headers)]
    pids = [p.pid for pid in servers.pids for p in c.tree(pid)] + [nginx.proc.pid]
    rounds = []
    for r in range(args.rounds):
        row = {}
        print(f"  round {r + 1}/{args.rounds}", flush=True)
        print("    one server, straight (no nginx)", flush=True)
        row["direct"] = c.measure(servers.urls[0], targets, args.connections, args.duration, args.warmup, pids,
                                  attempts=1, quiet_wait_s=5.0)
        for n in (1, 2, 3):
            nginx.reload(servers.upstreams(n))
            time.sleep(0.5)   # nginx's new workers take over from the old ones
            print(f"    {n} server(s) behind nginx", flush=True)
            row[n] = c.measure(nginx.url, targets, args.connections, args.duration, args.warmup, pids,
                               attempts=1, quiet_wait_s=5.0)
        rounds.append(row)
    med = lambda xs: round(c.median_of(xs), 3)  # noqa: E731
    out = {}
    for k in ("direct", 1, 2, 3):
        mine = [r[k] for r in rounds]
        out[str(k)] = {"rounds": mine, "errors": sum(m["errors"] for m in mine),
                       **{f: med([m[f] for m in mine]) for f in ("rps", "p50_ms", "p99_ms")}}
    out["rps_ratio_vs_one"] = {str(n): med([r[n]["rps"] / r[1]["rps"] for r in rounds if r[1]["rps"]]) for n in (2, 3)}
    out["p99_ratio_vs_one"] = {str(n): med([r[n]["p99_ms"] / r[1]["p99_ms"] for r in rounds if r[1]["p99_ms"]])
                               for n in (2, 3)}
    out["nginx_rps_ratio"] = med([r[1]["rps"] / r["direct"]["rps"] for r in rounds if r["direct"]["rps"]])
    return out


def failover(args, servers: Servers, nginx: Nginx, key: str) -> list[dict]:
    headers = {**serving.JSON_HEADERS, "Authorization": f"Bearer {key}"}
    nginx.reload(servers.upstreams(2))
    runs = []
    for i in range(args.failovers):
        leader = wait_for(servers.leader, 30, "a leader")
        other = next(u for u, p in zip(servers.urls, servers.pids) if p != leader)
        rec = c.Recorder(nginx.url, [(PATH, serving.BODY, headers)])
        loader = threading.Thread(target=rec.run, args=(args.failover_connections, 3600.0), daemon=True)
        loader.start()
        time.sleep(2.0)   # load on before the kill
        killed_at = time.perf_counter()
        os.kill(leader, signal.SIGKILL)
        new = wait_for(lambda: [p for p, r in servers.roles(other).items() if r == "leader" and p != leader],
                       30, "a new leader")
        led_at = time.perf_counter()
        time.sleep(3.0)   # load on after the takeover
        rec.stop_clock = time.perf_counter()
        loader.join(60)
        t_kill = killed_at - rec.start_clock
        around = rec.stats(t_kill - 1.0, t_kill + 3.0)
        failures = [(round(start - t_kill, 3), st) for start, _, st in rec.records if not 200 <= st < 300]
        run = {"failover_s": round(led_at - killed_at, 2), "new_leader": new[0],
               "requests": len(rec.records), "failed": len(failures),
               "failures": failures,   # (seconds after the kill, status; 0: the connection failed)
               "slowest_across_kill_ms": round(around["max_ms"], 1), "p99_across_kill_ms": round(around["p99_ms"], 2),
               "p99_before_ms": round(rec.stats(0, t_kill)["p99_ms"], 2)}
        print(f"  failover {i + 1}: new leader in {run['failover_s']} s, {run['failed']} failed of "
              f"{run['requests']}, slowest across the kill {run['slowest_across_kill_ms']} ms", flush=True)
        runs.append(run)
        # the killed server again, as a follower (on its kept port when it was the first)
        idx = servers.pids.index(leader)
        servers.urls.pop(idx)
        servers.pids.pop(idx)
        if idx == 0:
            servers.start_first()
        else:
            servers.join()
        nginx.reload(servers.upstreams(2) if len(servers.urls) >= 2 else servers.upstreams(1))
        wait_for(lambda: servers.roles(servers.urls[0]).get(servers.pids[0]) in ("follower", "leader"), 30,
                 "the restarted server")
    return runs


def markdown(result: dict) -> str:
    out = []
    if "throughput" in result:
        out += throughput_lines(result)
    if "failover" in result:
        out += ["Failover (kill -9 of the leader of two, under load through nginx):", "",
                c.table(result["failover"], [
                    ("failover_s", "new leader after (s)"), ("requests", "requests"), ("failed", "failed"),
                    ("p99_before_ms", "p99 before ms"), ("p99_across_kill_ms", "p99 across kill ms"),
                    ("slowest_across_kill_ms", "slowest across kill ms")])]
    return "\n".join(out) + "\n"


def throughput_lines(result: dict) -> list[str]:
    t = result["throughput"]
    rows = [{"setup": "one server, no nginx", **{k: t["direct"][k] for k in ("rps", "p50_ms", "p99_ms", "errors")}}]
    for n in ("1", "2", "3"):
        rows.append({"setup": f"{n} server(s) behind nginx", **{k: t[n][k] for k in ("rps", "p50_ms", "p99_ms", "errors")}})
    out = [f"Through nginx, {result['args']['connections']} connections, median of {result['args']['rounds']} rounds:",
           "", c.table(rows, [("setup", "setup"), ("rps", "req/s"), ("p50_ms", "p50 ms"), ("p99_ms", "p99 ms"),
                              ("errors", "errors")]),
           "", f"req/s vs one server behind nginx: two x{t['rps_ratio_vs_one']['2']}, three "
               f"x{t['rps_ratio_vs_one']['3']}; p99: two x{t['p99_ratio_vs_one']['2']}, three "
               f"x{t['p99_ratio_vs_one']['3']}; nginx's hop: x{t['nginx_rps_ratio']} of the direct req/s.", ""]
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="modelfleet-bench-ha-"))
    os.environ["FLEET_HOME"] = str(work / "home")
    token_file = work / "admin-token"
    token_file.write_text(TOKEN)
    token_file.chmod(0o600)
    pg = PostgresServer().start()
    os.environ["FLEET_DATABASE_URL"] = pg.create_database()
    from modelfleet import Fleet
    from modelfleet.backends.ray import cluster as ray_cluster
    fleet = Fleet()
    servers, nginx, temp_dir = Servers(fleet), None, None
    result: dict = {"machine": c.machine(), "args": vars(args)}
    try:
        fleet.server.configure(admin_token_file=str(token_file), lease_duration_s=LEASE_S)
        servers.start_first()
        temp_dir = fleet.computes.create("raybench", num_cpus=4)["temp_dir"]
        model = c.train_iris(work / "iris")
        fleet.models.register("iris", model, "1")
        fleet.online_endpoints.create("ha-ep", compute="raybench")
        fleet.online_deployments.create("blue", "ha-ep", "iris:1", instance_count=2)
        key = fleet.online_endpoints.get_keys("ha-ep")["primaryKey"]
        servers.join()
        servers.join()
        nginx = Nginx(servers.upstreams(1)).start()
        for url in servers.urls:   # every gateway reaches both actors before any load
            wait_for(lambda: servers.http.post(f"{url}{PATH}", content=serving.BODY, headers={
                **serving.JSON_HEADERS, "Authorization": f"Bearer {key}"}).status_code == 200, 60, url)
        result["listening_off_loopback"] = c.listening_off_loopback(
            [p.pid for pid in servers.pids for p in c.tree(pid)] + ray_cluster_pids(temp_dir))
        if args.only != "failover":
            print("throughput through nginx", flush=True)
            result["throughput"] = throughput(args, servers, nginx, key)
        for pid in servers.pids[2:]:   # failover runs with two servers
            os.kill(pid, signal.SIGTERM)
        del servers.urls[2:], servers.pids[2:]
        if args.only != "throughput":
            print("failover", flush=True)
            result["failover"] = failover(args, servers, nginx, key)
            result["nginx_errors"] = (nginx.root / "error.log").read_text().splitlines()[-40:]
        c.publish("high_availability", result, markdown(result))
    finally:
        if nginx is not None:
            nginx.stop()
        for pid in servers.pids:
            c.stop_pids([p.pid for p in c.tree(pid)])
        fleet.close()
        if temp_dir:
            ray_cluster.stop_local(temp_dir)
        pg.stop()
    return 0


def ray_cluster_pids(temp_dir: str) -> list[int]:
    from modelfleet.backends.ray import cluster as ray_cluster
    return [p.pid for p in ray_cluster.cluster_processes(temp_dir)]


if __name__ == "__main__":
    sys.exit(main())
