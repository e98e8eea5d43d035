"""What the control API shows for endpoints and deployments, built from store rows plus what
the server knows live (replicas, a rollout in progress). The SDK builds the same views from the
store alone when the server is not running, so read-only commands never need to start it."""

from __future__ import annotations

from ...domain.placement import placement_of
from ...schema.deployment_settings import SETTINGS_FIELDS
from ...store.serving import spec_etag


def endpoint_view(ep: dict, deployments: list[str], public_url: str | None) -> dict:
    return {"name": ep["name"], "auth_mode": ep["spec"].get("auth_mode", "key"),
            "compute": ep["spec"].get("compute", "local"), "local": ep["spec"].get("local", False),
            "description": ep["spec"].get("description", ""),
            "tags": ep["spec"].get("tags", {}), "traffic": ep["traffic"], "mirror_traffic": ep["mirror_traffic"],
            "scoring_uri": f"{public_url}/endpoints/{ep['name']}/score" if public_url else None,
            "openapi_uri": f"{public_url}/v2/models/{ep['name']}" if public_url else None,
            "provisioning_state": "Succeeded", "deployments": deployments,
            "created_at": ep["created_at"], "updated_at": ep["updated_at"]}


STOPPED = {"health": "Unavailable", "ready_replicas": 0, "fault": "the server is not running"}


def deployment_view(row: dict, replicas: list[dict], busy: bool, health: dict = STOPPED) -> dict:
    spec = row["spec"]
    out = {"name": row["name"], "endpoint_name": row["endpoint"], "model": spec["model"],
           "model_type": spec.get("model_type"),
           "code_configuration": ({"code": f"sha256:{spec['code']['sha256']}",
                                   "scoring_script": spec["code"]["scoring_script"]}
                                  if spec.get("code") else None),
           "code": spec.get("code")}
    for k in ("environment", *SETTINGS_FIELDS):
        out[k] = spec.get(k)
    out.update(where_it_runs(spec, replicas))
    state = row["state"]
    if state == "Succeeded" and busy:
        state = "Updating"
    out.update(provisioning_state=state, error=row["error"], etag=spec_etag(spec), **health, replicas=replicas,
               created_at=row["created_at"], updated_at=row["updated_at"])
    return out


def where_it_runs(spec: dict, replicas: list[dict]) -> dict:
    """For show: dedicated or shared (on Ray compute every replica is dedicated, as its replicas
    say), whether the model is loaded in every replica now, and the slowest replica's last model
    load (at its start, or on demand after an eviction in a shared worker)."""
    starts = [r["last_load_ms"] for r in replicas if r.get("last_load_ms") is not None]
    fast = next((r["fast_path"] for r in replicas if r.get("fast_path")), None)
    return {"placement": placement_of(spec),
            "loaded": bool(replicas) and all(r.get("loaded", True) for r in replicas),
            "last_load_ms": max(starts) if starts else None,
            # how its replicas call the model, as the first to load it found (runtime/fast_path.py)
            "fast_path_used": fast["path"] if fast else None, "fast_path_reason": fast["reason"] if fast else None}
