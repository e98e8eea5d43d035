"""`fleet.online_deployments`: deployments written to the server, their code uploaded first."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..domain import curated
from ..domain.errors import DeploymentFailed, InvalidInput
from . import transfer
from .resources import Resource, resources, without_none

if TYPE_CHECKING:
    from ..schema.documents import DeploymentSpec


class DeploymentOperations:
    def __init__(self, fleet):
        self._f = fleet

    def _body(self, spec: DeploymentSpec, endpoint: str, base_dir: Path) -> dict:
        model = spec.model
        if not isinstance(model, str):  # Azure's inline `model: {path: ...}`: register it first
            path = model.path if transfer.is_uri(model.path) else Path(model.path)
            path = path if isinstance(path, str) or path.is_absolute() else base_dir / path
            m = self._f.models.register(model.name or f"{endpoint}-{spec.name}", path, model.version,
                                          description=model.description, tags=model.tags, type=model.type,
                                          exist_ok=model.version is not None,
                                          reuse_same_content=model.version is None)
            model = m.ref
        code = None
        if spec.code_configuration is not None and transfer.is_uri(spec.code_configuration.code):
            read = self._f.request("POST", "/api/artifacts/code", json={"path": spec.code_configuration.code},
                                   timeout=None)   # the server reads it from the datastore
            code = {"sha256": read["sha256"], "root": read["root"],
                    "scoring_script": spec.code_configuration.scoring_script}
        elif spec.code_configuration is not None:
            code_dir = Path(spec.code_configuration.code)
            code_dir = code_dir if code_dir.is_absolute() else base_dir / code_dir
            if not code_dir.is_dir():
                raise InvalidInput(f"code_configuration.code: directory {str(code_dir)!r} does not exist")
            if not (code_dir / spec.code_configuration.scoring_script).is_file():
                raise InvalidInput(f"code_configuration.scoring_script: {spec.code_configuration.scoring_script!r} "
                                   f"not found in {code_dir}")
            sha256, _files = transfer.upload(self._f.connection, "code", code_dir)
            code = {"sha256": sha256, "root": code_dir.resolve().name,
                    "scoring_script": spec.code_configuration.scoring_script}
        data = spec.data()
        from ..schema.deployment_settings import SETTINGS_FIELDS
        body = {k: data[k] for k in SETTINGS_FIELDS if k in data}
        body.update(model=model, code=code, environment=self._environment(spec.environment, base_dir))
        return body

    def _environment(self, environment, base_dir: Path) -> str | None:
        """A deployment's `environment` as a version ref; Azure's inline block is registered first."""
        if environment is None or isinstance(environment, str):
            return environment
        if environment.conda_file is None and environment.requirements is None and \
                not curated.is_inference_image(environment.image):
            self._f.notice(f"notice: {self._f.environments.runs_on_default(environment.image)}")
            return None
        return self._f.environments.inline(environment, base_dir).ref

    def _build_environment(self, endpoint: str, body: dict) -> None:
        """Build the body's environment before the deployment is written, so its progress shows
        (the server finds it built then); for env_manager, the one the MLflow model logged."""
        ref = body.get("environment")
        if ref is None:
            model = self._f.models.resolve(body["model"])
            if model.type != "mlflow":
                return  # the server says why, if there is anything to say
            env = self._f.environments.of_model(model.ref, body.get("env_manager"))
            if env is None:
                return
            if not body.get("env_manager"):   # the server lacks the flavour: the model's own environment
                self._f.notice(f"notice: {env.description}")
            ref = env.ref
        if ref is not None:
            self._f.environments.build(ref, compute=self._f.online_endpoints.get(endpoint)["compute"])

    @resources
    def create_or_update(self, spec: DeploymentSpec, *, endpoint: str | None = None, base_dir: Path = Path("."),
                         create: bool | None = None, all_traffic: bool = False, wait: bool = True,
                         timeout: float = 600.0) -> Resource:
        endpoint = endpoint or spec.endpoint_name
        if not endpoint:
            raise InvalidInput("endpoint_name is required (--endpoint or endpoint_name in the file)")
        body = self._body(spec, endpoint, base_dir)
        self._build_environment(endpoint, body)
        params = {"all_traffic": str(all_traffic).lower()}
        if create is not None:
            params["create"] = str(create).lower()
        dep = self._f.request("PUT", f"/api/endpoints/{endpoint}/deployments/{spec.name}", json=body, params=params)
        return self.wait(endpoint, spec.name, timeout) if wait else dep

    @resources
    def create(self, name: str, endpoint: str, model: str, **kw) -> Resource:
        opts = {k: kw.pop(k) for k in ("all_traffic", "wait", "timeout", "base_dir") if k in kw}
        from ..schema.documents import DeploymentSpec
        from ..schema.validation import validate
        spec = validate(DeploymentSpec, dict(name=name, endpoint_name=endpoint, model=model, **kw))
        return self.create_or_update(spec, create=True, **opts)

    @resources
    def update(self, name: str, endpoint: str, *, wait: bool = True, timeout: float = 600.0,
               all_traffic: bool = False, etag: str | None = None, **changes) -> Resource:
        """Change some fields of a deployment; the rest stay as they are. Mappings (tags,
        environment_variables, request_settings, ...) are merged key by key; a key given as None
        is removed. The change is based on the deployment as read here, or on the version `etag`
        names (from an earlier read): if another writer changed it since, it is refused with
        PreconditionFailed and nothing changes."""
        cur = self.get(name, endpoint)
        from ..schema.deployment_settings import SETTINGS_FIELDS
        # every setting as it is now (placement and the environment follow below)
        body = {k: cur.get(k) for k in ("model", *SETTINGS_FIELDS) if k not in ("placement", "env_manager")}
        body["code"] = cur.get("code")
        # an env_manager's environment is the model's own: derived again from the model given
        body.update(environment=None if cur.get("env_manager") else cur.get("environment"),
                    env_manager=cur.get("env_manager"))
        from ..domain.placement import written_placement
        body["placement"] = written_placement(cur)   # set explicitly: kept (the default follows the model)
        for k, v in changes.items():
            if v is None:
                continue
            if k == "environment":
                body.update(environment=self._environment(_environment_spec(v), Path(".")), env_manager=None)
            elif k == "env_manager":  # "local": back to the server's own interpreter
                body.update(environment=None, env_manager=None if v == "local" else v)
            elif k == "code_configuration" and str(v.get("code", "")) == f"sha256:{(body['code'] or {}).get('sha256')}":
                body["code"] = {**body["code"], "scoring_script": v["scoring_script"]}   # the code it runs now
            elif k == "code_configuration":
                from ..schema.documents import DeploymentSpec
                from ..schema.validation import validate
                spec = validate(DeploymentSpec, dict(name=name, model=body["model"], code_configuration=v))
                body["code"] = self._body(spec, endpoint, Path("."))["code"]
            elif k in ("request_settings", "batching", "liveness_probe", "readiness_probe", "resources",
                       "environment_variables"):
                body[k] = without_none({**(body[k] or {}), **v})
            elif k in body:
                body[k] = without_none(v) if isinstance(v, dict) else v
            else:
                raise InvalidInput(f"unknown deployment field {k!r}")
        params = {"create": "false", "all_traffic": str(all_traffic).lower()}
        body = {k: v for k, v in body.items() if v is not None}
        self._build_environment(endpoint, body)
        self._f.request("PUT", f"/api/endpoints/{endpoint}/deployments/{name}", json=body, params=params,
                        headers={"if-match": f'"{etag or cur["etag"]}"'})
        return self.wait(endpoint, name, timeout) if wait else self.get(name, endpoint)

    @resources
    def wait(self, endpoint: str, name: str, timeout: float = 600.0) -> Resource:
        deadline = time.monotonic() + timeout
        while True:
            dep = self._f.request("GET", f"/api/endpoints/{endpoint}/deployments/{name}",
                                  params={"wait": 10}, timeout=30)
            if dep["provisioning_state"] == "Failed":
                text = dep.get("error") or "deployment failed"
                first, _, rest = text.partition("\n")
                raise DeploymentFailed(f"{endpoint}/{name}: {first}", detail=rest or None)
            ready = sum(r.get("state") == "ready" for r in dep.get("replicas") or [])
            scale = dep.get("scale_settings") or {}
            want = scale.get("min_instances", 1) if scale.get("type") == "target_utilization" else dep["instance_count"]
            if dep["provisioning_state"] == "Succeeded" and ready >= want:
                return dep
            if dep["provisioning_state"] == "Succeeded":  # settled, but a scale-up is still starting replicas
                time.sleep(0.05)
            if time.monotonic() > deadline:
                raise DeploymentFailed(f"{endpoint}/{name} is not ready after {timeout:.0f}s "
                                       f"(state {dep['provisioning_state']})")

    @resources
    def get(self, name: str, endpoint: str) -> Resource:
        return self._f.request("GET", f"/api/endpoints/{endpoint}/deployments/{name}")

    @resources
    def list(self, endpoint: str | None = None) -> list[Resource]:
        if endpoint is None:
            return self._f.request("GET", "/api/deployments")
        return self._f.request("GET", f"/api/endpoints/{endpoint}/deployments")

    def delete(self, name: str, endpoint: str) -> None:
        self._f.request("DELETE", f"/api/endpoints/{endpoint}/deployments/{name}")

    def get_logs(self, name: str, endpoint: str, lines: int = 100, since: str | None = None) -> str:
        """The replicas' logs merged by time, each line prefixed with its replica; `since`: a
        duration back from now (10m, 2h) or a time."""
        params = {"lines": lines, **({"since": since} if since else {})}
        return self._f.request("GET", f"/api/endpoints/{endpoint}/deployments/{name}/logs", params=params)["logs"]

    def follow_logs(self, name: str, endpoint: str, lines: int = 10, since: str | None = None):
        """The last `lines` lines, then every new line as the replicas write it (an iterator of
        text chunks; it ends when the server stops). Needs the server running."""
        import httpx
        params = {"lines": lines, "follow": "true", **({"since": since} if since else {})}
        path = f"/api/endpoints/{endpoint}/deployments/{name}/logs"
        with self._f.connection.stream("GET", path, params=params) as r:
            try:
                yield from r.iter_text()
            except httpx.HTTPError:
                return  # the server went away: the stream is over


def _environment_spec(value):
    """An `environment` change: a ref as it is, Azure's inline block validated."""
    if isinstance(value, dict):
        from ..schema.documents import InlineEnvironment
        from ..schema.validation import validate
        return validate(InlineEnvironment, value, "environment")
    return value
