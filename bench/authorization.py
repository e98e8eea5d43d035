"""Authorization benchmark: what checking every control API request costs.

One real server on 127.0.0.1 (SQLite) in a throw-away FLEET_HOME, one keep-alive client, the
same route asked for in rounds, each case once per round so that a busy moment touches all:

  - `launcher`: GET /api/endpoints/E with the launcher's token (run/server.json): compared in
    constant time, then the caller's roles read;
  - `api token`: the same with a user's `mft_` token (an Owner): a lookup by SHA-256, then roles;
  - `refused 403`: a Reader asking for the endpoint's keys;
  - `bad token 401`: an unknown token (the failed-attempt limit raised so it never 429s);
  - `write`: PATCH a model version's description with the API token: a write, plus its line in
    the activity log before the answer.

    .venv/bin/python bench/authorization.py [--rounds 5] [--requests 300]

Writes bench/results/authorization.json and authorization.md; ratios are to `launcher`.
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

ENDPOINT = "bench-auth"


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--requests", type=int, default=300, help="requests per case per round")
    return ap.parse_args(argv)


def _time(client: httpx.Client, method: str, path: str, token: str, n: int, expect: int, body=None) -> list[float]:
    headers = {"authorization": f"Bearer {token}"}
    out = []
    for i in range(n):
        json = {"description": f"d{i}"} if body else None
        t = time.perf_counter()
        r = client.request(method, path, headers=headers, json=json)
        out.append(time.perf_counter() - t)
        if r.status_code != expect:
            raise SystemExit(f"{method} {path}: {r.status_code} {r.text[:200]} (expected {expect})")
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="fleet-bench-auth-"))
    os.environ["FLEET_HOME"] = str(home)
    for k in ("FLEET_SERVER", "FLEET_TOKEN", "FLEET_DATABASE_URL"):
        os.environ.pop(k, None)
    from modelfleet import Fleet
    fleet = Fleet()
    try:
        info, _ = fleet.server.start(failed_token_attempts_per_minute=1_000_000)
        launcher = fleet.server.status(show_token=True)["token"]
        model = home / "m"
        model.mkdir()
        (model / "model.joblib").write_bytes(b"weights")
        fleet.models.register("m", model, "1")
        fleet.online_endpoints.create(ENDPOINT)
        owner = fleet.users.create("olivia")["token"]
        fleet.role_assignments.create("olivia", "Owner")
        reader = fleet.users.create("rita")["token"]
        fleet.role_assignments.create("rita", "Reader")
        cases = {
            "launcher": ("GET", f"/api/endpoints/{ENDPOINT}", launcher, 200, False),
            "api token": ("GET", f"/api/endpoints/{ENDPOINT}", owner, 200, False),
            "refused 403": ("GET", f"/api/endpoints/{ENDPOINT}/keys", reader, 403, False),
            "bad token 401": ("GET", f"/api/endpoints/{ENDPOINT}", "mft_" + "x" * 43, 401, False),
            "write": ("PATCH", "/api/models/m/versions/1", owner, 200, True),
        }
        samples: dict[str, list[float]] = {k: [] for k in cases}
        with httpx.Client(base_url=info["url"], timeout=30) as client:
            for name, (method, path, token, expect, body) in cases.items():   # warm-up
                _time(client, method, path, token, 20, expect, body)
            for _ in range(args.rounds):
                c.wait_quiet()
                for name, (method, path, token, expect, body) in cases.items():
                    samples[name] += _time(client, method, path, token, args.requests, expect, body)
        logged = len(fleet.activity_log.list(since="1h", limit=10_000))
    finally:
        c.stop_fleet(fleet)
    base = c.latency_summary(sorted(samples["launcher"]))
    rows = []
    for name, s in samples.items():
        summary = c.latency_summary(sorted(s))
        rows.append({"case": name, "requests": len(s), "req_per_s": len(s) / sum(s), **summary,
                     "p50_ratio": summary["p50_ms"] / base["p50_ms"]})
    data = {"machine": c.machine(), "rounds": args.rounds, "requests_per_round": args.requests, "cases": rows,
            "activity_log_entries": logged}
    markdown = "## Authorization\n\n" + c.table(rows, [
        ("case", "case"), ("requests", "requests"), ("req_per_s", "req/s (1 client)"), ("p50_ms", "p50 ms"),
        ("p99_ms", "p99 ms"), ("p50_ratio", "p50 / launcher")]) + \
        f"\n\nactivity log entries written by the run: {logged:,}\n"
    c.publish("authorization", data, markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
