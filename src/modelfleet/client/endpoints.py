"""`fleet.online_endpoints`: endpoints, their keys and traffic, and scoring through the gateway."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from ..domain.errors import FleetError, InvalidInput
from .resources import Resource, resources, without_none

if TYPE_CHECKING:
    from ..schema.documents import EndpointSpec


class EndpointOperations:
    def __init__(self, fleet):
        self._f = fleet

    @resources
    def create(self, name: str, *, auth_mode: str = "key", compute: str = "local", description: str = "",
               tags: dict | None = None, spec: EndpointSpec | None = None, exist_ok: bool = False,
               local: bool = False) -> Resource:
        """`local`: made as Azure's `--local` endpoints are, answering loopback clients without a key."""
        from ..schema.documents import EndpointSpec
        from ..schema.validation import validate
        spec = spec or validate(EndpointSpec, dict(name=name, auth_mode=auth_mode, compute=compute,
                                                    description=description, tags=tags or {}))
        body = {"auth_mode": spec.auth_mode, "compute": spec.compute, "description": spec.description,
                "tags": spec.tags, "local": local}
        ep = self._f.request("PUT", f"/api/endpoints/{spec.name}", json=body,
                             params=None if exist_ok else {"create": "true"})
        if spec.traffic is not None or spec.mirror_traffic is not None:
            ep = self.update(spec.name, traffic=spec.traffic, mirror_traffic=spec.mirror_traffic)
        return ep

    @resources
    def update(self, name: str, *, traffic: dict | None = None, mirror_traffic: dict | None = None,
               description: str | None = None, tags: dict | None = None, auth_mode: str | None = None) -> Resource:
        ep = self.get(name)
        if description is not None or tags is not None or auth_mode is not None:
            body = {"auth_mode": auth_mode or ep["auth_mode"], "compute": ep["compute"],
                    "local": ep.get("local", False),
                    "description": ep["description"] if description is None else description,
                    "tags": without_none({**ep["tags"], **(tags or {})})}
            ep = self._f.request("PUT", f"/api/endpoints/{name}", json=body, params={"create": "false"})
        if traffic is not None or mirror_traffic is not None:
            ep = self._f.request("PUT", f"/api/endpoints/{name}/traffic",
                                 json={"traffic": traffic, "mirror_traffic": mirror_traffic})
        return ep

    @resources
    def get(self, name: str) -> Resource:
        return self._f.request("GET", f"/api/endpoints/{name}")

    @resources
    def list(self) -> list[Resource]:
        return self._f.request("GET", "/api/endpoints")

    def delete(self, name: str) -> None:
        self._f.request("DELETE", f"/api/endpoints/{name}")

    def get_keys(self, name: str) -> dict:
        return self._f.request("GET", f"/api/endpoints/{name}/keys")

    def regenerate_keys(self, name: str, key_type: str = "primary") -> dict:
        return self._f.request("POST", f"/api/endpoints/{name}/regenerate-keys", json={"key_type": key_type})

    def invoke(self, name: str, request: Any = None, *, request_file: str | Path | None = None,
               deployment_name: str | None = None, timeout: float = 60.0) -> Any:
        """Score through the gateway, exactly as any client would (key, optional header route)."""
        if request_file is not None:
            try:
                body = Path(request_file).read_bytes()
            except OSError as e:
                raise InvalidInput(f"request file {str(request_file)!r}: {e.strerror}") from None
        elif isinstance(request, (bytes, str)):
            body = request.encode() if isinstance(request, str) else request
        else:
            body = orjson.dumps(request)
        ep = self.get(name)
        headers = {"content-type": "application/json"}
        if ep["auth_mode"] == "key":
            headers["authorization"] = f"Bearer {self.get_keys(name)['primaryKey']}"
        if deployment_name:
            headers["azureml-model-deployment"] = deployment_name
        request = self._f.connection.client().build_request("POST", ep["scoring_uri"], content=body, headers=headers)
        if ep["auth_mode"] != "key":
            request.headers.pop("authorization", None)   # the admin token is for the control API only
        r = self._f.connection.send(request, timeout)
        try:
            doc = r.json()
        except ValueError:
            doc = r.text
        if r.status_code >= 400:
            msg = doc.get("error", {}).get("message") if isinstance(doc, dict) else str(doc)
            err = FleetError(f"{name} answered {r.status_code}: {msg}")
            err.http_status = r.status_code
            raise err
        return doc
