"""`fleet.computes`: create|attach, list, show, detach|delete, over the control API."""

from __future__ import annotations

LOCAL = "local"   # the compute of an endpoint that names none: replica processes on the server's machine
# `--compute-type` as az scripts pass it: Azure's container instances are the server's machine,
# its Kubernetes clusters a Ray compute.
COMPUTE_TYPES = {"local": LOCAL, "aci": LOCAL, "managed": LOCAL, "ray": "ray", "aks": "ray", "kubernetes": "ray"}
STATUS_TIMEOUT_S = 30.0   # what a Ray cluster gets to say how it is


class ComputeOperations:
    def __init__(self, fleet):
        self._f = fleet

    def create(self, name: str, type: str = "ray", num_cpus: int | None = None) -> dict:
        """Start a Ray cluster on the server's machine (127.0.0.1, token auth) that the workspace owns."""
        self._f.notice(f"starting a Ray cluster for compute {name!r} on 127.0.0.1")
        return self._f.request("POST", "/api/computes", json={"name": name, "type": type, "num_cpus": num_cpus},
                               timeout=None)

    def attach(self, name: str, address: str, type: str = "ray", auth_token: str | None = None) -> dict:
        """Record a Ray cluster that runs elsewhere; nothing is started, and detach leaves it running."""
        return self._f.request("POST", "/api/computes/attach",
                               json={"name": name, "address": address, "type": type, "auth_token": auth_token})

    def list(self) -> list[dict]:
        return self._f.request("GET", "/api/computes")

    def for_type(self, compute_type: str) -> str:
        """The compute `--compute-type` means: local, or the workspace's one Ray compute."""
        from ..domain.errors import InvalidInput
        kind = COMPUTE_TYPES.get(compute_type.strip().lower())
        if kind is None:
            raise InvalidInput(f"--compute-type {compute_type!r}: use local (or aci) for this machine, "
                               "ray (or aks) for the workspace's Ray compute")
        if kind == LOCAL:
            return LOCAL
        names = [r["name"] for r in self.list() if r["type"] == kind]
        if len(names) != 1:
            have = f"it has {', '.join(names)}" if names else "it has none (fleet compute create --type ray)"
            raise InvalidInput(f"--compute-type {compute_type}: the workspace needs exactly one Ray compute "
                               f"for that, and {have}; name one with --compute")
        return names[0]

    def show(self, name: str, timeout: float = STATUS_TIMEOUT_S) -> dict:
        """The compute, its endpoints, and how its cluster is now: nodes, CPUs, memory, health."""
        return self._f.request("GET", f"/api/computes/{name}", params={"timeout": timeout}, timeout=timeout + 30)

    def detach(self, name: str) -> dict:
        """Forget an attached cluster; it keeps running. Endpoints on it stay, and report the
        fault until a compute of that name is attached again (then they serve with no command)."""
        out = self._f.request("POST", f"/api/computes/{name}/detach")
        users = out["endpoints"]
        if users:
            many = len(users) > 1
            self._f.notice(f"endpoint{'s' if many else ''} {', '.join(users)} keep{'' if many else 's'} compute "
                           f"{name!r} and cannot serve until a compute named {name!r} is attached again")
        return out

    def delete(self, name: str) -> dict:
        """Stop an owned cluster's processes and remove it; refused while an endpoint uses it."""
        return self._f.request("DELETE", f"/api/computes/{name}", timeout=None)
