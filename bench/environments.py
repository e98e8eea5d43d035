"""Environments: how fast a deployment gets the packages its model needs, what they cost on disk,
and the same for MLflow's env managers.

  1. Builds (no server, uv from a cache that starts empty): the first environment (scikit-learn
     and its numpy and scipy); a new one sharing them (plus one small package); ten such: their
     disk against one's, just built and after each has imported scikit-learn once (bytecode).
  2. Deployments (one server): create -> ready on the server's interpreter; on an environment
     built but not used yet (its warm parent starts first); on an environment another deployment
     already uses (a cached environment reused).
  3. MLflow's env managers on the same MLflow models (their own logged requirements):
     `mlflow models serve --env-manager virtualenv | uv` against a modelfleet deployment with
     `--env-manager uv`, each from empty caches; then a second model with one more requirement
     (caches warm). Seconds until the first answer; disk per environment.

    .venv/bin/python bench/environments.py [--skip-mlflow] [--install-timeout 900]

Writes bench/results/environments.json and environments.md. Needs the package index.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as c  # noqa: E402

EXTRAS = ["tabulate", "termcolor", "humanize", "six", "toolz", "colorama", "wrapt", "xmltodict", "tomli", "idna"]
MB = 1e6


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--skip-mlflow", action="store_true", help="only modelfleet's builds and deployments")
    ap.add_argument("--install-timeout", type=float, default=900.0)
    return ap.parse_args(argv)


def sklearn_pin() -> str:
    import sklearn
    return f"scikit-learn=={sklearn.__version__}"


# -- 1. builds ----------------------------------------------------------------------------------

def bench_builds(work: Path) -> dict:
    from modelfleet.envbuild.builder import Builder, bytes_only_in, disk_usage
    builder = Builder(work / "builds", work / "uv-cache")
    rows, paths = [], []
    for i, extra in enumerate(EXTRAS):
        requirements = [sklearn_pin()] + ([extra] if i else [])
        t = time.perf_counter()
        lock = builder.resolve(requirements, [], f"bench env {i}")
        resolved = time.perf_counter() - t
        key = builder.key(lock)
        path = builder.build(key, lock, f"bench env {i}")
        rows.append({"env": i + 1, "requirements": " ".join(requirements), "resolve_s": round(resolved, 3),
                     "total_s": round(time.perf_counter() - t, 3), "packages": len(lock["requirements"]),
                     "own_mb": round(bytes_only_in([path]) / MB, 1)})
        paths.append(path)
    disk = {"one_mb": disk_usage(paths[:1]) / MB, "ten_mb": disk_usage(paths) / MB,
            "cache_mb": disk_usage([builder.cache]) / MB, "cache_and_ten_mb": disk_usage([builder.cache, *paths]) / MB}
    # What each environment writes when it first runs: Python's bytecode of what it imports (unless
    # PYTHONDONTWRITEBYTECODE is set, as it may be on the server: then nothing, and every start compiles).
    quiet = {k: v for k, v in c.clean_env().items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH")}
    for p in paths:
        subprocess.run([str(p / "bin" / "python"), "-c", "import sklearn.linear_model, sklearn.ensemble"],
                       check=True, env=quiet)
    disk.update(one_used_mb=disk_usage(paths[:1]) / MB, ten_used_mb=disk_usage(paths) / MB)
    return {"builds": rows, "disk": {k: round(v, 1) for k, v in disk.items()}}


# -- 2. deployments -----------------------------------------------------------------------------

def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return round(time.perf_counter() - t, 3)


@contextlib.contextmanager
def fleet_on(home: Path, uv_cache: Path):
    """A Fleet on its own FLEET_HOME and uv cache; its server and everything it spawned stop after."""
    from modelfleet import Fleet
    os.environ["FLEET_HOME"] = str(home)
    os.environ["FLEET_UV_CACHE_DIR"] = str(uv_cache)
    fleet = Fleet()
    try:
        yield fleet
    finally:
        c.stop_fleet(fleet)


def bench_deployments(work: Path) -> dict:
    with fleet_on(work / "home", work / "uv-cache") as fleet:   # the cache is warm from part 1
        fleet.models.register("iris", c.train_iris(work / "iris").parent, "1")
        for ep in ("warm-up", "on-server", "first-use", "reused"):
            fleet.online_endpoints.create(ep)
        fleet.environments.create("sk", requirements=[sklearn_pin()])
        fleet.online_deployments.create("blue", "warm-up", "iris:1")   # the server's own warm parent is up
        out = {"server_s": timed(lambda: fleet.online_deployments.create("blue", "on-server", "iris:1")),
               "build_s": timed(lambda: fleet.environments.build("sk:1")),
               "first_use_s": timed(lambda: fleet.online_deployments.create("blue", "first-use", "iris:1",
                                                                           environment="sk:1")),
               "reused_s": timed(lambda: fleet.online_deployments.create("blue", "reused", "iris:1",
                                                                        environment="sk:1"))}
        for ep in ("on-server", "first-use", "reused"):
            assert fleet.online_endpoints.invoke(ep, {"data": [c.IRIS_ROW]}) == [0]
        return out


# -- 3. MLflow ----------------------------------------------------------------------------------

SAVE = ("import sys, joblib, mlflow.sklearn; extra = sys.argv[3:]; "
        "mlflow.sklearn.save_model(joblib.load(sys.argv[1]), sys.argv[2], serialization_format='cloudpickle', "
        "extra_pip_requirements=extra or None)")


def new_dirs(root: Path, before: set[str]) -> list[Path]:
    return [p for p in root.iterdir() if p.name not in before] if root.is_dir() else []


def bench_mlflow_serve(py: Path, model: Path, manager: str, caches: Path, work: Path, name: str) -> dict:
    from modelfleet.envbuild.builder import bytes_only_in, disk_usage
    root = caches / "mlflow-envs"
    root.mkdir(parents=True, exist_ok=True)
    before = {p.name for p in root.iterdir()}
    port = c.free_port()
    pyenv = shutil.which("pyenv")
    path = os.pathsep.join(x for x in (str(py.parent), str(Path(pyenv).parent) if pyenv else "",
                                       os.environ.get("PATH", "")) if x)
    env = c.clean_env({"PATH": path, "MLFLOW_ENV_ROOT": str(root), "PIP_CACHE_DIR": str(caches / "pip"),
                       "UV_CACHE_DIR": str(caches / "uv"), "UV_PYTHON_DOWNLOADS": "never",
                       "MLFLOW_TRACKING_URI": (work / "mlruns").as_uri()})
    t = time.perf_counter()
    svc = c.Service(name, [str(py.parent / "mlflow"), "models", "serve", "-m", str(model), "-h", c.HOST, "-p",
                           str(port), "--env-manager", manager], work, env=env)
    try:
        svc.wait_ready(f"http://{c.HOST}:{port}/invocations", 1800, orjson.dumps({"inputs": [c.IRIS_ROW]}),
                       {"Content-Type": "application/json"})
        seconds = time.perf_counter() - t
    except RuntimeError as e:
        return {"error": str(e)[-300:]}
    finally:
        svc.stop()
    made = new_dirs(root, before)
    return {"ready_s": round(seconds, 1), "env_mb": round(disk_usage(made) / MB, 1),
            "own_mb": round(bytes_only_in(made) / MB, 1)}


def bench_modelfleet_mlflow(models: list[Path], work: Path) -> list[dict]:
    from modelfleet.envbuild.builder import bytes_only_in, disk_usage
    out = []
    with fleet_on(work / "mf-home", work / "mf-uv-cache") as fleet:   # an empty cache: as cold as MLflow's
        fleet.server.start()
        for i, model in enumerate(models):
            fleet.models.register(f"mlflow-{i}", model, "1")
            fleet.online_endpoints.create(f"mlflow-{i}")
            t = time.perf_counter()
            dep = fleet.online_deployments.create("blue", f"mlflow-{i}", f"mlflow-{i}:1", env_manager="uv")
            fleet.online_endpoints.invoke(f"mlflow-{i}", {"inputs": [c.IRIS_ROW]})
            seconds = time.perf_counter() - t
            path = Path(fleet.environments.resolve(dep["environment"]).to_dict()["path"])
            out.append({"ready_s": round(seconds, 1), "env_mb": round(disk_usage([path]) / MB, 1),
                        "own_mb": round(bytes_only_in([path]) / MB, 1)})
    return out


def bench_mlflow(args, work: Path) -> dict:
    py, why = c.ensure_venv("mlflow-envs", ["mlflow", sklearn_pin(), "virtualenv", "uv"], args.install_timeout)
    if py is None:
        return {"unavailable": why}
    model_file = c.train_iris(work / "iris-mlflow")
    models = [work / "mlflow-model-1", work / "mlflow-model-2"]
    c.run_python(str(py), f"import sys; sys.argv = ['', {str(model_file)!r}, {str(models[0])!r}]; {SAVE}")
    c.run_python(str(py), f"import sys; sys.argv = ['', {str(model_file)!r}, {str(models[1])!r}, 'tabulate']; {SAVE}")
    rows = []
    for manager in ("virtualenv", "uv"):
        caches = work / f"caches-{manager}"   # empty at the first model, warm at the second
        for i, model in enumerate(models):
            print(f"  mlflow models serve --env-manager {manager}, model {i + 1}", flush=True)
            rows.append({"system": f"mlflow models serve --env-manager {manager}", "model": i + 1,
                         **bench_mlflow_serve(py, model, manager, caches, work, f"mlflow-{manager}-{i}")})
    print("  modelfleet online-deployment create --env-manager uv", flush=True)
    for i, r in enumerate(bench_modelfleet_mlflow(models, work)):
        rows.append({"system": "modelfleet --env-manager uv", "model": i + 1, **r})
    requirements = (models[0] / "requirements.txt").read_text().split()
    return {"rows": rows, "requirements": requirements}


# -- report ---------------------------------------------------------------------------------------

def report(res: dict) -> str:
    m, b, d = res["machine"], res["builds"], res["deployments"]
    disk = b["disk"]
    out = [f"# Environments\n\n{m['nproc']} cores, {m['cpu_model']}, Python {m['python']}; uv "
           f"{res['uv']}; packages from the public index.\n",
           "## Builds\n\nuv from a cache that starts empty: environment 1 downloads; the others share "
           "scikit-learn, numpy and scipy with it (hard links from the cache) and add one small package.\n",
           c.table(b["builds"], [("env", "env"), ("requirements", "requirements"), ("packages", "packages"),
                                 ("resolve_s", "resolve s"), ("total_s", "resolve + build s"),
                                 ("own_mb", "own MB")]),
           f"\nDisk (each hard-linked file counted once): one environment {disk['one_mb']:.0f} MB, ten "
           f"{disk['ten_mb']:.0f} MB ({disk['ten_mb'] / disk['one_mb']:.2f}x one); with the uv cache "
           f"{disk['cache_and_ten_mb']:.0f} MB (the cache alone {disk['cache_mb']:.0f} MB, nearly all of it "
           f"the same files). After each environment has imported scikit-learn once, Python having written "
           f"bytecode into each (its default; none with PYTHONDONTWRITEBYTECODE): one "
           f"{disk['one_used_mb']:.0f} MB, ten {disk['ten_used_mb']:.0f} MB "
           f"({disk['ten_used_mb'] / disk['one_used_mb']:.2f}x).\n",
           "## Deployments\n\nSeconds from `online-deployment create` to ready (the SDK call returns), one "
           "replica of the iris model:\n",
           c.table([{"case": "on the server's interpreter", "s": d["server_s"]},
                    {"case": "building the environment (warm cache)", "s": d["build_s"]},
                    {"case": "on a built environment used for the first time (its warm parent starts: "
                             "imports numpy and scikit-learn)",
                     "s": d["first_use_s"]},
                    {"case": "on an environment another deployment uses (cached, warm parent)", "s": d["reused_s"]}],
                   [("case", "case"), ("s", "seconds")])]
    ml = res.get("mlflow") or {}
    if ml.get("rows"):
        out += ["\n## Against MLflow's env managers\n\nThe same MLflow sklearn model (its own requirements: "
                f"{', '.join(ml['requirements'])}); model 2 adds `tabulate`. Each system starts from empty caches "
                "at model 1; at model 2 its caches are warm. Ready = until the first answer; env MB = the "
                "environment's directory (hard-linked files once); own MB = what only it holds.\n",
                c.table(ml["rows"], [("system", "system"), ("model", "model"), ("ready_s", "ready s"),
                                     ("env_mb", "env MB"), ("own_mb", "own MB"), ("error", "error")])]
    elif ml.get("unavailable"):
        out.append(f"\nMLflow: not available ({ml['unavailable']}).")
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    removed = c.scrub_blas_overrides()
    from modelfleet.envbuild.builder import uv_binary
    res = {"machine": c.machine(removed), "started_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
           "uv": subprocess.run([uv_binary(), "--version"], capture_output=True, text=True).stdout.split()[1]}
    for k in ("FLEET_WORKSPACE", "FLEET_DATABASE_URL", "FLEET_UV_CACHE_DIR"):
        os.environ.pop(k, None)
    with tempfile.TemporaryDirectory(prefix="modelfleet-bench-env-") as tmp:
        work = Path(tmp)
        print("builds", flush=True)
        res["builds"] = bench_builds(work)
        print("deployments", flush=True)
        res["deployments"] = bench_deployments(work)
        if not args.skip_mlflow:
            print("mlflow", flush=True)
            res["mlflow"] = bench_mlflow(args, work)
    c.publish("environments", res, report(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
