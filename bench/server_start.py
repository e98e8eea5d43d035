"""A workspace server's start, round after round, against its parts in the same run: a bare
interpreter (`python -c pass`) and the server's imports alone (`import modelfleet.server.process`);
then `python -m modelfleet.server` as the launcher runs it: start -> /api/health answers (what
`fleet` waits for), start -> two restored deployments answer, and on a new workspace the first
deployment's create -> first answer. Prints a table (medians) and writes
bench/results/server_start.json.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402

WAYS = {"server": ["-m", "modelfleet.server"]}
PARTS = {"interpreter": "pass", "imports": "import modelfleet.server.process"}


def run_part(code: str) -> float:
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.monotonic() - t0


def start(home: Path, way: str) -> tuple[subprocess.Popen, dict, float]:
    """The server of home's default workspace, started `way`; (process, server.json, seconds to healthy)."""
    import httpx
    ws = home / "workspaces" / "default"
    (ws / "logs").mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with open(ws / "logs" / "server.log", "ab") as log:
        proc = subprocess.Popen([sys.executable, *WAYS[way], "--workspace-name", "default", "--workspace-path", str(ws)],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "FLEET_HOME": str(home)})
    deadline = t0 + 120
    while time.monotonic() < deadline:   # the launcher's condition: server.json of this pid, and health
        try:
            info = json.loads((ws / "run" / "server.json").read_bytes())
            if info["pid"] == proc.pid and httpx.get(f"{info['url']}/api/health", timeout=5,
                                                     headers={"authorization": f"Bearer {info['token']}"}).is_success:
                return proc, info, time.monotonic() - t0
        except (OSError, ValueError, KeyError, httpx.HTTPError):
            pass
        if proc.poll() is not None:
            raise SystemExit(f"the server exited: see {ws / 'logs' / 'server.log'}")
        time.sleep(0.01)
    raise SystemExit("the server did not start in 120 s")


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def answered(fleet, endpoints: list[str], rows, t0: float) -> float:
    deadline = time.monotonic() + 120
    for ep in endpoints:
        while True:
            try:
                fleet.online_endpoints.invoke(ep, {"data": rows})
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
    return time.monotonic() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    from modelfleet import Fleet
    from modelfleet.cli.quickstart import train
    root = Path(tempfile.mkdtemp(prefix="modelfleet-bench-start-"))
    rows = train("iris", root / "model")
    homes, results = {}, {w: {"healthy": [], "restored": [], "first_deployment": []} for w in WAYS}
    for way in WAYS:   # a workspace each with two deployments, restored at every start
        homes[way] = root / way
        proc, info, _ = start(homes[way], way)
        fleet = Fleet(server=info["url"], token=info["token"])
        fleet.models.register("m", str(root / "model"), version="1")
        for ep in ("ep-a", "ep-b"):
            fleet.online_endpoints.create(ep)
            fleet.online_deployments.create("blue", ep, "m:1")
        stop(proc)
    for n in range(args.rounds):
        for way in WAYS:
            t0 = time.monotonic()
            proc, info, healthy = start(homes[way], way)
            restored = answered(Fleet(server=info["url"], token=info["token"]), ["ep-a", "ep-b"], rows, t0)
            stop(proc)
            fresh = root / f"{way}-new-{n}"
            proc, info, _ = start(fresh, way)
            fleet = Fleet(server=info["url"], token=info["token"])
            fleet.models.register("m", str(root / "model"), version="1")
            t1 = time.monotonic()
            fleet.online_endpoints.create("ep-c")
            fleet.online_deployments.create("blue", "ep-c", "m:1")
            first = answered(fleet, ["ep-c"], rows, t1)
            stop(proc)
            parts = {k: run_part(code) for k, code in PARTS.items()}
            for k, v in (("healthy", healthy), ("restored", restored), ("first_deployment", first), *parts.items()):
                results[way].setdefault(k, []).append(v)
            print(f"round {n} interpreter {parts['interpreter']:.3f} s  imports {parts['imports']:.3f} s  "
                  f"healthy {healthy:.3f} s  restored {restored:.3f} s  first deployment {first:.3f} s  "
                  f"load {os.getloadavg()[0]:.1f}", flush=True)
    m = {k: statistics.median(v) for k, v in results["server"].items()}
    print(f"\n| median of {args.rounds} | seconds | / healthy |")
    print("|---|---|---|")
    for k in ("interpreter", "imports", "healthy", "restored", "first_deployment"):
        print(f"| {k} | {m[k]:.2f} | {m[k] / m['healthy']:.2f} |")
    medians = {"server": m}
    out = Path(__file__).resolve().parent / "results" / "server_start.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"machine": machine(), "rounds": args.rounds, "results": results, "medians": medians},
                              indent=1))


if __name__ == "__main__":
    main()
