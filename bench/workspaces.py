"""Workspaces benchmark: what a hosted workspace's /workspaces/NAME prefix costs, and how long
making and deleting a workspace takes.

One real server on 127.0.0.1 (SQLite) in a throw-away FLEET_HOME hosts its primary workspace and
one made over the API; the same iris model is deployed in each. One keep-alive client asks, in
rounds (each case once per round, so a busy moment touches all):

  - `score, primary`: POST /endpoints/E/score (the peer);
  - `score, hosted`: POST /workspaces/bench-b/endpoints/E/score, through the dispatcher;
  - `API, primary`: GET /api/endpoints/E with the launcher's token (the peer of the next);
  - `API, hosted`: GET /workspaces/bench-b/api/endpoints/E.

Then it makes and deletes a workspace (no deployment in it) `--cycles` times.

    .venv/bin/python bench/workspaces.py [--rounds 5] [--requests 300] [--cycles 5]

Writes bench/results/workspaces.json and workspaces.md; ratios are hosted / primary.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as c  # noqa: E402

ENDPOINT, HOSTED = "bench-ws", "bench-b"
ROWS = {"data": [[5.1, 3.5, 1.4, 0.2]]}


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--requests", type=int, default=300, help="requests per case per round")
    ap.add_argument("--cycles", type=int, default=5, help="workspaces made and deleted")
    return ap.parse_args(argv)


def _time(client: httpx.Client, method: str, path: str, token: str, n: int) -> list[float]:
    headers = {"authorization": f"Bearer {token}"}
    out = []
    for _ in range(n):
        t = time.perf_counter()
        r = client.request(method, path, headers=headers, json=ROWS if method == "POST" else None)
        out.append(time.perf_counter() - t)
        if r.status_code != 200:
            raise SystemExit(f"{method} {path}: {r.status_code} {r.text[:200]}")
    return out


def _deploy(fleet, model: Path) -> str:
    fleet.models.register("iris", model, "1")
    fleet.online_endpoints.create(ENDPOINT)
    fleet.online_deployments.create("blue", ENDPOINT, "iris:1")
    return fleet.online_endpoints.get_keys(ENDPOINT)["primaryKey"]


def main(argv=None) -> int:
    args = parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="fleet-bench-ws-"))
    os.environ["FLEET_HOME"] = str(home)
    for k in ("FLEET_SERVER", "FLEET_TOKEN", "FLEET_DATABASE_URL", "FLEET_WORKSPACE"):
        os.environ.pop(k, None)
    from modelfleet import Fleet
    fleet = Fleet()
    cycles: dict[str, list[float]] = {"create": [], "delete": []}
    try:
        info, _ = fleet.server.start()
        token = fleet.server.status(show_token=True)["token"]
        model = home / "iris"
        c.train_iris(model)
        fleet.workspaces.create(HOSTED)
        key = _deploy(fleet, model)
        with Fleet(server=info["url"], token=token, workspace=HOSTED) as hosted:
            hosted_key = _deploy(hosted, model)
        prefix = f"/workspaces/{HOSTED}"
        cases = {
            "score, primary": ("POST", f"/endpoints/{ENDPOINT}/score", key),
            "score, hosted": ("POST", f"{prefix}/endpoints/{ENDPOINT}/score", hosted_key),
            "API, primary": ("GET", f"/api/endpoints/{ENDPOINT}", token),
            "API, hosted": ("GET", f"{prefix}/api/endpoints/{ENDPOINT}", token),
        }
        samples: dict[str, list[float]] = {k: [] for k in cases}
        with httpx.Client(base_url=info["url"], timeout=30) as client:
            for method, path, secret in cases.values():   # warm-up
                _time(client, method, path, secret, 20)
            for _ in range(args.rounds):
                c.wait_quiet()
                for name, (method, path, secret) in cases.items():
                    samples[name] += _time(client, method, path, secret, args.requests)
        for i in range(args.cycles):
            t = time.perf_counter()
            fleet.workspaces.create(f"cycle-{i}")
            cycles["create"].append(time.perf_counter() - t)
            t = time.perf_counter()
            fleet.workspaces.delete(f"cycle-{i}")
            cycles["delete"].append(time.perf_counter() - t)
    finally:
        c.stop_fleet(fleet)
    rows = []
    for name, s in samples.items():
        summary = c.latency_summary(sorted(s))
        peer = c.latency_summary(sorted(samples[name.split(",")[0] + ", primary"]))
        rows.append({"case": name, "requests": len(s), "req_per_s": len(s) / sum(s), **summary,
                     "p50_ratio": summary["p50_ms"] / peer["p50_ms"]})
    made = [{"step": f"workspace {step} (empty)", "times": len(s), "median_ms": c.median_of(s) * 1000,
             "max_ms": max(s) * 1000} for step, s in cycles.items()]
    data = {"machine": c.machine(), "rounds": args.rounds, "requests_per_round": args.requests, "cases": rows,
            "cycles": made}
    markdown = "## Workspaces\n\n" + c.table(rows, [
        ("case", "case"), ("requests", "requests"), ("req_per_s", "req/s (1 client)"), ("p50_ms", "p50 ms"),
        ("p99_ms", "p99 ms"), ("p50_ratio", "p50 / primary")]) + "\n\n" + c.table(made, [
            ("step", "step"), ("times", "times"), ("median_ms", "median ms"), ("max_ms", "max ms")]) + "\n"
    c.publish("workspaces", data, markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
