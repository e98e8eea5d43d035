"""Registering, inspecting and removing compute targets (`fleet.computes`), and resolving the one
an endpoint names.

Computes are workspace state written straight to the store, like models: no server is needed to
create, attach, show or delete one. Only Ray clusters exist so far: `create` starts one on this
machine that modelfleet owns (and stops on `delete`); `attach` records the address of one that
runs elsewhere (and `detach` forgets it, leaving it running).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import AlreadyExists, Conflict, InvalidInput
from .names import check_name
from .compute import ray_cluster

if TYPE_CHECKING:
    from .store.computes import ComputeStore

LOCAL = "local"      # the compute of an endpoint that names none: replica processes on this machine
TYPES = ("ray",)
# `--compute-type` as az scripts pass it: Azure's container instances are this machine, its
# Kubernetes clusters a Ray compute.
COMPUTE_TYPES = {"local": LOCAL, "aci": LOCAL, "managed": LOCAL, "ray": "ray", "aks": "ray", "kubernetes": "ray"}


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


class ComputeOperations:
    """`fleet.computes`: create|attach, list, show, detach|delete."""

    def __init__(self, fleet):
        self._f = fleet

    @property
    def _store(self) -> ComputeStore:
        from .store.computes import ComputeStore
        return ComputeStore(self._f.db)

    def create(self, name: str, type: str = "ray", num_cpus: int | None = None) -> dict:
        """Start a Ray cluster on this machine (127.0.0.1, token auth) that this workspace owns."""
        check_compute_name(name)
        check_type(type)
        if num_cpus is not None and (isinstance(num_cpus, bool) or not isinstance(num_cpus, int) or num_cpus < 1):
            raise InvalidInput(f"num_cpus {num_cpus!r}: use a whole number of at least 1")
        store = self._store
        if any(r["name"] == name for r in store.list()):  # before starting anything
            raise AlreadyExists(f"compute {name!r} already exists")
        ray_cluster.require_ray(f"compute type {type!r}")
        self._f.notice(f"starting a Ray cluster for compute {name!r} on 127.0.0.1")
        started = ray_cluster.start_local(name, self._f.workspace.logs_dir / "computes", num_cpus)
        try:
            row = store.create(name, type=type, address=started["address"], owned=True,
                               auth_token=started["auth_token"], temp_dir=started["temp_dir"],
                               spec={"num_cpus": num_cpus})
        except BaseException:
            ray_cluster.stop_local(started["temp_dir"])  # created twice at once: keep no orphan
            raise
        return view(row)

    def attach(self, name: str, address: str, type: str = "ray", auth_token: str | None = None) -> dict:
        """Record a Ray cluster that runs elsewhere; nothing is started, and detach leaves it running."""
        check_compute_name(name)
        check_type(type)
        ray_cluster.split_address(address)
        return view(self._store.create(name, type=type, address=address.strip(), owned=False,
                                       auth_token=auth_token or None))

    def list(self) -> list[dict]:
        return [view(r) for r in self._store.list()]

    def for_type(self, compute_type: str) -> str:
        """The compute `--compute-type` means: local, or the workspace's one Ray compute."""
        kind = COMPUTE_TYPES.get(compute_type.strip().lower())
        if kind is None:
            raise InvalidInput(f"--compute-type {compute_type!r}: use local (or aci) for this machine, "
                               "ray (or aks) for the workspace's Ray compute")
        if kind == LOCAL:
            return LOCAL
        names = [r["name"] for r in self._store.list() if r["type"] == kind]
        if len(names) != 1:
            have = f"it has {', '.join(names)}" if names else "it has none (fleet compute create --type ray)"
            raise InvalidInput(f"--compute-type {compute_type}: the workspace needs exactly one Ray compute "
                               f"for that, and {have}; name one with --compute")
        return names[0]

    def resolve(self, name: str) -> dict | None:
        """The compute an endpoint names (see `resolve`): None for local, else its row."""
        return resolve(self._store, name)

    def show(self, name: str, timeout: float = ray_cluster.STATUS_TIMEOUT) -> dict:
        """The compute, its endpoints, and how its cluster is now: nodes, CPUs, memory, health."""
        store = self._store
        row = store.get(name)
        health = ray_cluster.status(row["address"], row["auth_token"], timeout=timeout)
        return {**view(row), "endpoints": store.users(name),
                **{k: health[k] for k in ("healthy", "error", "cpus", "memory_bytes", "nodes")}}

    def detach(self, name: str) -> dict:
        """Forget an attached cluster; it keeps running. Endpoints on it stay, and report the
        fault until a compute of that name is attached again (then they serve with no command)."""
        store = self._store
        row = store.get(name)
        if row["owned"]:
            raise Conflict(f"compute {name!r} was created by modelfleet: stop and remove it with "
                           f"`fleet compute delete --name {name}`")
        users = store.users(name)
        if users:
            many = len(users) > 1
            self._f.notice(f"endpoint{'s' if many else ''} {', '.join(users)} keep{'' if many else 's'} compute "
                           f"{name!r} and cannot serve until a compute named {name!r} is attached again")
        return {**view(store.delete(name, unless_used=False)), "endpoints": users}

    def delete(self, name: str) -> dict:
        """Stop an owned cluster's processes and remove it; refused while an endpoint uses it."""
        store = self._store
        row = store.get(name)
        if not row["owned"]:
            raise Conflict(f"compute {name!r} is attached, not created by modelfleet: "
                           f"forget it with `fleet compute detach --name {name}`")
        store.check_unused(name)  # before stopping anything; the row's delete checks again
        stopped = ray_cluster.stop_local(row["temp_dir"])
        store.delete(name)
        return {**view(row), "stopped_pids": stopped}
