"""The control-plane measurement both sides of bench/control_plane.py run: the same phases, the
same clients, the same counting, stdlib only (it also runs inside MLflow's virtualenv, where it
drives MLflow's tracking server with MlflowClient).

Phases, each timed call by call:
  register  VERSIONS versions of one model, spread over CLIENTS threads
  show      SHOWS reads of one version each (spread over the versions), CLIENTS threads
  list      every version of the model (VERSIONS rows), LISTS times, one client

    python bench/control_plane_ops.py mlflow URL VERSIONS CLIENTS SHOWS LISTS   # prints JSON
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import Callable

MODEL = "big"


def summary(latencies: list[float], wall_s: float) -> dict:
    lat = sorted(latencies)

    def pct(q: float) -> float:
        return lat[min(len(lat) - 1, int(q * len(lat)))] * 1000 if lat else 0.0
    return {"ops": len(lat), "wall_s": round(wall_s, 3), "ops_per_s": round(len(lat) / wall_s, 1) if wall_s else 0.0,
            "p50_ms": round(pct(0.5), 2), "p99_ms": round(pct(0.99), 2), "max_ms": round(lat[-1] * 1000, 2) if lat else 0.0}


def in_threads(n_ops: int, clients: int, op: Callable[[int, int], object]) -> dict:
    """`op(client, i)` for i in 0..n_ops-1, dealt round-robin to `clients` threads; the summary."""
    per_client: list[list[float]] = [[] for _ in range(clients)]
    errors: list[str] = []

    def work(k: int) -> None:
        for i in range(k, n_ops, clients):
            t = time.perf_counter()
            try:
                op(k, i)
            except Exception as e:   # counted and reported, never hidden
                errors.append(f"{type(e).__name__}: {e}"[:200])
                continue
            per_client[k].append(time.perf_counter() - t)

    threads = [threading.Thread(target=work, args=(k,), daemon=True) for k in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out = summary([x for xs in per_client for x in xs], time.perf_counter() - t0)
    out["clients"], out["errors"] = clients, len(errors)
    if errors:
        out["first_error"] = errors[0]
    return out


def phases(register: Callable[[int, int], object], show: Callable[[int, int], object],
           list_all: Callable[[], int], versions: int, clients: int, shows: int, lists: int,
           progress: Callable[[str], None] = lambda _m: None) -> dict:
    progress(f"register: {versions:,} versions, {clients} clients")
    out = {"register": in_threads(versions, clients, register)}
    progress(f"show: {shows:,} reads, {clients} clients")
    out["show"] = in_threads(shows, clients, show)
    rows: list[int] = []
    progress(f"list: all versions, {lists} times")
    out["list"] = in_threads(lists, 1, lambda _k, _i: rows.append(list_all()))
    out["list"]["rows"] = rows[-1] if rows else 0
    return out


def _mlflow(url: str, versions: int, clients: int, shows: int, lists: int) -> dict:
    """MLflow's tracking server: create_model_version / get_model_version / search_model_versions
    (paged), each thread with a client of its own, basic auth from MLFLOW_TRACKING_USERNAME/PASSWORD."""
    from mlflow import MlflowClient
    from mlflow.exceptions import RestException
    made = [MlflowClient(tracking_uri=url, registry_uri=url) for _ in range(clients)]
    try:
        made[0].create_registered_model(MODEL)
    except RestException as e:
        if "RESOURCE_ALREADY_EXISTS" not in str(e):
            raise
    source = "s3://bench-models/big/model"   # a registered version names where its files are

    def register(k: int, _i: int) -> object:
        return made[k].create_model_version(MODEL, source)

    def show(k: int, i: int) -> object:
        return made[k].get_model_version(MODEL, str(1 + (i * 7919) % versions))

    def list_all() -> int:
        n, token = 0, None
        while True:
            page = made[0].search_model_versions(f"name='{MODEL}'", max_results=10_000, page_token=token)
            n += len(page)
            token = page.token
            if not token:
                return n
    return phases(register, show, list_all, versions, clients, shows, lists,
                  lambda m: print(f"  mlflow {m}", file=sys.stderr, flush=True))


if __name__ == "__main__":
    kind, url, *numbers = sys.argv[1:]
    assert kind == "mlflow" and os.environ.get("MLFLOW_TRACKING_USERNAME"), "usage: see the docstring"
    print(json.dumps(_mlflow(url, *map(int, numbers))))
