"""`fleet quickstart`: the seed's whole workflow, end to end, in well under a minute.

Trains three small scikit-learn models on datasets that ship with scikit-learn, registers them
(model_a v1, model_b v1, model_c v2), creates one endpoint and one deployment per model, invokes
each, then registers model_b v2 and updates its deployment with zero downtime.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Callable

import click

from .common import Ctx, command

WORKSPACE = "quickstart"

# (model name, version, description, endpoint, trainer)
SUITE = [
    ("model_a", "v1", "Model A for user segment 1", "aci-model-a", "iris"),
    ("model_b", "v1", "Model B for user segment 2", "aci-model-b", "wine"),
    ("model_c", "v2", "Model C for user segment 3", "aci-model-c", "breast_cancer"),
]


def train(dataset: str, out_dir: Path, variant: int = 1) -> list:
    """Fit a small model on a bundled dataset, save it as model.joblib; returns two sample rows."""
    import joblib
    from sklearn import datasets
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = getattr(datasets, f"load_{dataset}")(return_X_y=True)
    if variant == 1:
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    else:
        model = RandomForestClassifier(n_estimators=20, max_depth=5, random_state=variant)
    model.fit(X, y)
    out_dir.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, out_dir / "model.joblib")
    return X[:2].tolist()


def run(say: Callable[[str], None], workspace: str = WORKSPACE) -> list[dict]:
    from ..client import Fleet, launcher
    from ..schema.workspace import Workspaces

    t0 = time.monotonic()
    wss = Workspaces()
    try:  # start from a clean workspace so the walk-through is the same every time
        old = wss.get(workspace)
        launcher.stop(old)
        wss.delete(workspace)
    except Exception:
        pass
    wss.create(workspace)
    fleet = Fleet(workspace, notice=say)
    work = Path(tempfile.mkdtemp(prefix="modelfleet-quickstart-"))
    samples = {}
    say(f"workspace {workspace!r}; training three models on scikit-learn's bundled datasets")
    for name, _version, _desc, _endpoint, dataset in SUITE:
        samples[name] = train(dataset, work / "models" / name)
    for name, version, desc, _, _ in SUITE:
        m = fleet.models.register(name, work / "models" / name, version, description=desc)
        say(f"registered {m.ref:<12} {m.type:<8} sha256 {m.sha256[:12]}  ({desc})")
    for name, version, _, endpoint, _ in SUITE:
        fleet.online_endpoints.create(endpoint)
        fleet.online_deployments.create("default", endpoint, f"{name}:{version}", wait=False)
    for name, version, _, endpoint, _ in SUITE:
        t = time.monotonic()
        fleet.online_deployments.wait(endpoint, "default")
        answer = fleet.online_endpoints.invoke(endpoint, {"data": samples[name]})
        say(f"{endpoint}/default serves {name}:{version}; invoke -> {answer}")
    samples["model_b"] = train("wine", work / "models" / "model_b_v2", variant=2)
    m = fleet.models.register("model_b", work / "models" / "model_b_v2", "v2",
                              description="Model B for user segment 2, retrained")
    t = time.monotonic()
    fleet.online_deployments.update("default", "aci-model-b", model=m.ref)
    answer = fleet.online_endpoints.invoke("aci-model-b", {"data": samples["model_b"]})
    say(f"updated aci-model-b/default to {m.ref} in {time.monotonic() - t:.1f}s with zero downtime; "
        f"invoke -> {answer}")
    endpoints = fleet.online_endpoints.list()
    say(f"done in {time.monotonic() - t0:.1f}s")
    fleet.close()
    return endpoints


@click.group()
def _holder() -> None:
    pass


@command(_holder, "quickstart", help="Train, register, deploy, invoke and update three models, end to end.")
def quickstart(ctx: Ctx):
    endpoints = run(ctx.notice, ctx.workspace_name if ctx.workspace_name else WORKSPACE)
    ctx.emit(endpoints, columns=["name", "traffic", "scoring_uri"], title="endpoints")
    ws = ctx.workspace_name or WORKSPACE
    click.echo(f"\nTry:  fleet online-endpoint list -w {ws}\n      fleet server stop -w {ws}", err=True)
