"""`fleet export`: the workspace's current state as a fleet file that `fleet apply` takes back.

Model paths point at each version's content-addressed snapshot in the workspace
(artifacts/models/<sha256>/<root>, as the server says), and code paths at the code snapshot a
deployment runs: on the server's machine, that is. Hashing
those folders gives exactly the sha256 they were stored under, so applying the export registers
nothing, restarts nothing, and no bytes are copied (models can be large). The snapshots are
read-only and never change while the version exists. `copy_models_to` downloads each version to
a folder instead (for another machine); the copies hash the same, so that export is a no-op too.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from ..version import __version__
from ..domain.errors import StorageError
from .planner import deployment_settings
from ..domain.placement import written_placement
from ..schema.documents import DeploymentSpec


def _model_path(fleet, model, copy_to: Path | None, relative_to: Path | None) -> str:
    root = model.files[0]["path"].split("/", 1)[0]  # the registered folder's (or file's) own name
    if copy_to is None:
        return str(Path(fleet.models.verified_path(model)) / root)  # every file checked against its sha256
    dest = copy_to / model.name / model.version
    try:
        if (dest / root).is_dir():
            shutil.rmtree(dest / root)
        elif (dest / root).exists():
            (dest / root).unlink()
    except OSError as e:
        raise StorageError(f"cannot copy {model.ref} to {dest}: {e.strerror or e}") from e
    fleet.models.download_to(model, dest)   # each file checked against its sha256
    dest = dest / root
    if relative_to is not None and dest.is_relative_to(relative_to):
        return dest.relative_to(relative_to).as_posix()
    return str(dest)


def export_fleet(fleet, *, copy_models_to: Path | None = None, relative_to: Path | None = None,
                 notice=lambda _msg: None) -> dict:
    """Every model version (not archived) with its labels, endpoint and deployment, as one fleet
    document. A deployment that failed and serves nothing is left out (applying it would only fail
    again); one whose update failed still serves its previous spec, which is what is exported."""
    copy_to = copy_models_to.resolve() if copy_models_to else None
    rel = relative_to.resolve() if relative_to else None
    models = [{"name": m.name, "version": m.version, "path": _model_path(fleet, m, copy_to, rel), "type": m.type,
               "description": m.description, "tags": m.tags, **({"labels": m.labels} if m.labels else {})}
              for m in fleet.models.list()]
    defaults = deployment_settings(DeploymentSpec(name="default", model="m"))
    deployments = []
    left_out: set[tuple[str, str]] = set()
    for d in fleet.online_deployments.list():
        if d["provisioning_state"] == "Failed" and not d.get("replicas"):
            notice(f"notice: deployment {d['endpoint_name']}/{d['name']} failed and serves nothing; left out")
            left_out.add((d["endpoint_name"], d["name"]))
            continue
        out = {"name": d["name"], "endpoint_name": d["endpoint_name"], "model": d["model"]}
        if d.get("code"):
            code = Path(fleet.request("GET", f"/api/artifacts/code/{d['code']['sha256']}")["path"]) / d["code"]["root"]
            out["code_configuration"] = {"code": str(code), "scoring_script": d["code"]["scoring_script"]}
        if d.get("environment") and not d.get("env_manager"):
            out["environment"] = f"azureml:{d['environment']}"
        settings = deployment_settings(d)
        # defaults are left out to keep the file readable; applying fills them in again
        out.update({k: v for k, v in settings.items() if k == "instance_count" or v != defaults[k]})
        if written_placement(d) is None:
            out.pop("placement", None)   # the default for this model: say nothing
        deployments.append(out)
    endpoints = []
    for ep in fleet.online_endpoints.list():
        out = {k: ep[k] for k in ("name", "auth_mode", "compute", "description", "tags", "traffic", "mirror_traffic")}
        for key in ("traffic", "mirror_traffic"):
            gone = {d: pct for d, pct in out[key].items() if (ep["name"], d) in left_out}
            out[key] = {d: pct for d, pct in out[key].items() if d not in gone}
            if any(gone.values()):
                del out[key]  # a share went to a deployment left out: applying leaves the split alone
        endpoints.append(out)
    return {"models": models, "endpoints": endpoints, "deployments": deployments}


def dump(doc: dict, workspace: str) -> str:
    head = (f"# modelfleet {__version__}: fleet exported from workspace {workspace!r}.\n"
            "# Apply it with: fleet apply -f FILE  (applying it unchanged changes nothing)\n")
    return head + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
