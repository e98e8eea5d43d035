"""Control-plane benchmark: operations per second and p99 of register, deploy, show and a list of
10,000 versions, on a modelfleet server with SQLite and with PostgreSQL side by side, and MLflow's
tracking server with the basic-auth app (`mlflow server --app-name basic-auth`) on the same
PostgreSQL for registering, showing and listing model versions.

Each system is started, measured over HTTP from this machine's clients (modelfleet's Python
client, MlflowClient) and stopped before the next; every server listens on 127.0.0.1. The
phases are the same code for all (bench/control_plane_ops.py). PostgreSQL is Debian's, started
here in a temporary folder as the tests do (tests/postgres.py), one database per system.

    .venv/bin/python bench/control_plane.py [--versions 10000] [--clients 8] [--deployments 40]
                                            [--only sqlite,postgresql,mlflow]

Writes bench/results/control_plane.json and control_plane.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as c  # noqa: E402
import control_plane_ops as ops  # noqa: E402

SYSTEMS = ("sqlite", "postgresql", "mlflow")
MLFLOW_PACKAGES = ["mlflow[auth]", "psycopg2-binary", "psycopg[binary]"]   # the full server; PostgreSQL drivers
MLFLOW_ADMIN = ("admin", f"bench-{os.getpid()}-admin")   # basic-auth refuses its old default password


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--versions", type=int, default=10_000, help="versions registered (then listed)")
    ap.add_argument("--clients", type=int, default=8, help="concurrent clients for register, deploy and show")
    ap.add_argument("--shows", type=int, default=2_000, help="single-version reads")
    ap.add_argument("--lists", type=int, default=10, help="lists of every version")
    ap.add_argument("--deployments", type=int, default=40, help="deployments created, one per endpoint")
    ap.add_argument("--mlflow-versions", type=int, default=None,
                    help="versions registered in MLflow (default: --versions), when its registration is too slow "
                         "to reach as many in the time at hand")
    ap.add_argument("--mlflow-shows", type=int, default=None, help="single-version reads in MLflow (default: --shows)")
    ap.add_argument("--only", default=",".join(SYSTEMS), help="a subset of " + ",".join(SYSTEMS))
    ap.add_argument("--report-only", action="store_true", help="print the table of the last run again")
    ap.add_argument("--install-timeout", type=float, default=900.0)
    return ap.parse_args(argv)


def _progress(name: str):
    return lambda m: print(f"  {name} {m}", flush=True)


def _fleet_cli(home: Path, *args: str) -> dict:
    env = c.clean_env({"FLEET_HOME": str(home)})
    for k in ("FLEET_SERVER", "FLEET_TOKEN", "FLEET_WORKSPACE", "FLEET_DATABASE_URL"):
        env.pop(k, None)
    r = subprocess.run([str(Path(c.PYTHON).parent / "fleet"), *args, "-o", "json"], env=env, capture_output=True,
                       text=True, timeout=300)
    if r.returncode != 0:
        raise RuntimeError(f"fleet {' '.join(args)}: {r.stderr.strip()}")
    return json.loads(r.stdout) if r.stdout.strip() else {}


def bench_modelfleet(name: str, args, work: Path, model: Path, database_url: str | None) -> dict:
    from modelfleet import Fleet
    home = work / f"home-{name}"
    start = ["server", "start"] + (["--database-url", database_url] if database_url else [])
    _fleet_cli(home, *start)
    status = _fleet_cli(home, "server", "status", "--show-token")
    pids = [p.pid for p in c.tree(status["pid"])]
    fleets = [Fleet(server=status["url"], token=status["token"]) for _ in range(args.clients)]
    try:
        versions = args.versions
        out = ops.phases(lambda k, _i: fleets[k].models.register(ops.MODEL, model),
                         lambda k, i: fleets[k].models.get(ops.MODEL, str(1 + (i * 7919) % versions)),
                         lambda: len(fleets[0].models.list(ops.MODEL)),
                         versions, args.clients, args.shows, args.lists, _progress(name))
        print(f"  {name} deploy: {args.deployments} deployments, {args.clients} clients", flush=True)
        made = ops.in_threads(args.deployments, args.clients,
                              lambda k, i: fleets[k].online_endpoints.create(f"bench-ep-{i}"))
        if made["errors"]:
            raise RuntimeError(f"creating the endpoints failed: {made['first_error']}")
        out["deploy"] = ops.in_threads(
            args.deployments, args.clients,
            lambda k, i: fleets[k].online_deployments.create("blue", f"bench-ep-{i}", f"{ops.MODEL}:1", instance_count=1,
                                                           wait=False))
        t = time.perf_counter()
        for i in range(args.deployments):
            fleets[0].online_deployments.wait(f"bench-ep-{i}", "blue", timeout=600)
        out["deploy"]["all_ready_s"] = round(time.perf_counter() - t, 2)
        out["server_pid"], out["database"] = status["pid"], "postgresql" if database_url else "sqlite"
        return out
    finally:
        for f in fleets:
            f.close()
        pids += [p.pid for p in c.tree(status["pid"])]
        try:
            _fleet_cli(home, "server", "stop")
        finally:
            c.stop_pids(pids, 5.0)


MLFLOW_AUTH_INI = """[mlflow]
default_permission = READ
database_uri = {auth_db}
admin_username = {user}
admin_password = {password}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
"""


def bench_mlflow(args, work: Path, pg) -> dict:
    py, why = c.ensure_venv("mlflow-server", MLFLOW_PACKAGES, args.install_timeout)
    if py is None:
        return {"unavailable": why}
    version = c.run_python(str(py), "import mlflow; print(mlflow.__version__)").strip()
    ini = work / "basic_auth.ini"
    ini.write_text(MLFLOW_AUTH_INI.format(auth_db=pg.create_database("mlflow_auth"), user=MLFLOW_ADMIN[0],
                                          password=MLFLOW_ADMIN[1]))
    port = c.free_port()
    cmd = [str(py.parent / "mlflow"), "server", "--app-name", "basic-auth", "--host", c.HOST, "--port", str(port),
           "--backend-store-uri", pg.create_database("mlflow"), "--default-artifact-root", str(work / "mlruns")]
    import secrets   # basic-auth's CSRF protection wants one key shared by its workers
    env = c.clean_env({"MLFLOW_AUTH_CONFIG_PATH": str(ini), "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16)})
    svc = c.Service("mlflow-server", cmd, work, env=env)
    try:
        svc.wait_ready(f"http://{c.HOST}:{port}/health", timeout=180)
        r = subprocess.run([str(py), str(Path(ops.__file__)), "mlflow", f"http://{c.HOST}:{port}",
                            str(args.mlflow_versions or args.versions), str(args.clients),
                            str(args.mlflow_shows or args.shows), str(args.lists)], capture_output=True, text=True,
                           env=c.clean_env({"MLFLOW_TRACKING_USERNAME": MLFLOW_ADMIN[0],
                                            "MLFLOW_TRACKING_PASSWORD": MLFLOW_ADMIN[1]}), timeout=3600)
        if r.returncode != 0:
            return {"unavailable": f"the MLflow client failed: {(r.stderr.strip().splitlines() or ['?'])[-1]}"}
        out = json.loads(r.stdout)
        out["version"] = version
        out["processes"] = len(svc.pids())
        out["command"] = "mlflow server --app-name basic-auth --backend-store-uri postgresql://... (default workers)"
        return out
    finally:
        _stop_session(svc)


def _stop_session(svc: c.Service) -> None:
    """MLflow's server forks workers and job consumers that outlive their parent (reparented, so not
    in its tree at stop): every process of the session it was started in goes, by pid."""
    import psutil
    svc.stop()
    left = []
    for p in psutil.process_iter():
        try:
            if os.getsid(p.pid) == svc.pid:
                left.append(p.pid)
        except OSError:
            continue
    c.stop_pids(left, 5.0)


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a and b else None


def report(res: dict) -> str:
    systems = res["systems"]
    cols = [("op", "operation")]
    for s in SYSTEMS:
        cols += [(f"{s}_rps", f"{s} ops/s"), (f"{s}_p99", f"{s} p99 ms")]
    cols += [("pg_vs_sqlite", "PostgreSQL / SQLite (ops/s)"), ("pg_vs_mlflow", "modelfleet PostgreSQL / MLflow (ops/s)")]
    rows = []
    for op in ("register", "deploy", "show", "list"):
        row = {"op": op}
        for s in SYSTEMS:
            got = systems.get(s, {}).get(op)
            if got:
                row[f"{s}_rps"], row[f"{s}_p99"] = got["ops_per_s"], got["p99_ms"]
        # lists of different lengths compare by rows per second
        per = {s: (systems[s][op]["ops_per_s"] * systems[s][op].get("rows", 1) if op == "list" else row.get(f"{s}_rps"))
               for s in SYSTEMS if row.get(f"{s}_rps")}
        row["pg_vs_sqlite"] = ratio(per.get("postgresql"), per.get("sqlite"))
        row["pg_vs_mlflow"] = ratio(per.get("postgresql"), per.get("mlflow"))
        rows.append(row)
    m = res["machine"]
    head = (f"# Control-plane benchmark\n\n{m['nproc']} cores, {m['cpu_model']}, Python {m['python']}; "
            f"{res['args']['versions']:,} versions registered by {res['args']['clients']} clients, then "
            f"{res['args']['shows']:,} shows, {res['args']['lists']} lists of every version, "
            f"{res['args']['deployments']} deployments (acknowledged; all ready after: "
            + ", ".join(f"{s} {systems[s]['deploy']['all_ready_s']} s" for s in ("sqlite", "postgresql")
                        if systems.get(s, {}).get("deploy")) + ").\n\n")
    mlflow = systems.get("mlflow", {})
    if mlflow.get("register") and mlflow["register"]["ops"] != res["args"]["versions"]:
        head += (f"MLflow: {mlflow['register']['ops']:,} versions registered and listed, {mlflow['show']['ops']:,} "
                 "shows (its registration rate here would take hours to reach as many).\n\n")
    notes = [f"- {s}: not measured: {systems[s]['unavailable']}" for s in SYSTEMS if "unavailable" in systems.get(s, {})]
    if systems.get("mlflow", {}).get("version"):
        notes.append(f"- MLflow {systems['mlflow']['version']} ({systems['mlflow']['processes']} processes), basic_auth.ini "
                     "as shipped (no credential cache: every request checks the password hash); it has no deploy: "
                     "its registry records versions, serving is elsewhere.")
    notes.append("- list: the ratios compare rows per second (the lists may differ in length).")
    errs = [f"- {s} {op}: {v['errors']} errors ({v.get('first_error')})" for s, d in systems.items()
            for op, v in d.items() if isinstance(v, dict) and v.get("errors")]
    return head + c.table(rows, cols) + "\n\n" + "\n".join(notes + errs) + "\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.report_only:   # the table again from the last run's JSON
        c.publish("control_plane", res := json.loads((c.RESULTS / "control_plane.json").read_text()), report(res))
        return 0
    only = [s for s in args.only.split(",") if s]
    sys.path.insert(0, str(c.ROOT))
    from tests.postgres import PostgresServer
    res = {"args": vars(args), "machine": c.machine(), "systems": {}}
    with tempfile.TemporaryDirectory(prefix="fleet-cp-bench-") as tmp:
        work = Path(tmp)
        model = c.train_iris(work / "iris").parent
        pg = PostgresServer().start() if {"postgresql", "mlflow"} & set(only) else None
        try:
            for name in only:
                print(f"{name} ...", flush=True)
                if name == "mlflow":
                    res["systems"][name] = bench_mlflow(args, work, pg)
                else:
                    url = pg.create_database("fleet") if name == "postgresql" else None
                    res["systems"][name] = bench_modelfleet(name, args, work, model, url)
        finally:
            if pg is not None:
                pg.stop()
    c.publish("control_plane", res, report(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
