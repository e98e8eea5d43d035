"""Azure-shaped resource ids for `show` and `list` output.

az prints an `id` such as /subscriptions/S/resourceGroups/G/providers/Microsoft.MachineLearningServices/
workspaces/W/onlineEndpoints/E on every resource, and scripts pass it around. Here the subscription and
resource group are always `local` (modelfleet has neither), so an id is a stable path naming the
workspace and the resource.
"""

from __future__ import annotations

from typing import Any

from .output import plain

_ROOT = "/subscriptions/local/resourceGroups/local/providers/Microsoft.MachineLearningServices/workspaces/{ws}"

_PATHS = {
    "workspace": lambda d: "",
    "model": lambda d: f"/models/{d['name']}/versions/{d['version']}",
    "endpoint": lambda d: f"/onlineEndpoints/{d['name']}",
    "deployment": lambda d: f"/onlineEndpoints/{d['endpoint_name']}/deployments/{d['name']}",
    "compute": lambda d: f"/computes/{d['name']}",
    "datastore": lambda d: f"/datastores/{d['name']}",
}


def resource_id(kind: str, doc: dict, workspace: str) -> str:
    ws = doc["name"] if kind == "workspace" else workspace
    return _ROOT.format(ws=ws) + _PATHS[kind](doc)


def with_ids(data: Any, kind: str, workspace: str) -> Any:
    """`data` (one resource or a list) with `id` first in each resource."""
    data = plain(data)
    if isinstance(data, list):
        return [with_ids(d, kind, workspace) for d in data]
    if not isinstance(data, dict):
        return data
    try:
        rid = resource_id(kind, data, workspace)
    except KeyError:  # not a resource (e.g. {"deleted": ...})
        return data
    out = {"id": rid, **{k: v for k, v in data.items() if k != "id"}}
    if kind == "endpoint":  # Azure's scripts read the endpoint's id here too (autoscale rules)
        out["properties"] = {**(data.get("properties") or {}), "azureml.onlineendpointid": rid}
    return out
