"""Compute targets' rules: names, types, the one an endpoint names, and how one is shown.

Only Ray clusters exist so far: `create` starts one on the server's machine that modelfleet owns
(and stops on `delete`); `attach` records the address of one that runs elsewhere (and `detach`
forgets it, leaving it running). The control API carries these out (server/computes_api.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..domain.errors import Conflict, InvalidInput
from ..domain.names import check_name
from ..backends.ray import cluster as ray_cluster

if TYPE_CHECKING:
    from ..store.computes import ComputeStore

LOCAL = "local"      # the compute of an endpoint that names none: replica processes on this machine
TYPES = ("ray",)


def check_compute_name(name: str) -> str:
    check_name(name, "compute name")
    if name == LOCAL:
        raise InvalidInput(f"compute name {name!r} is reserved: it means this machine's processes")
    return name


def check_type(type: str) -> str:
    if type not in TYPES:
        raise InvalidInput(f"compute type {type!r}: use {', '.join(TYPES)}")
    return type


def resolve(store: ComputeStore, name: str) -> dict | None:
    """The compute an endpoint names: None for `local`, else its row (token included).

    NotFound for a name no compute has; Conflict, saying how to install it, when Ray is missing.
    """
    if name == LOCAL:
        return None
    row = store.get(check_name(name, "compute name"))
    ray_cluster.require_ray(f"compute {name!r}")
    return row


def view(row: dict) -> dict:
    """A compute as users see it: never its token."""
    return {"name": row["name"], "type": row["type"], "address": row["address"], "owned": row["owned"],
            "auth": "token" if row["auth_token"] else "none", "num_cpus": row["spec"].get("num_cpus"),
            "temp_dir": row["temp_dir"], "created_at": row["created_at"], "updated_at": row["updated_at"]}
