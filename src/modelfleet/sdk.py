"""The Python API. The CLI is a thin layer over it.

    from modelfleet import Fleet
    fleet = Fleet()                                   # the current workspace
    fleet.models.register("model_a", "./models/model_a", version="v1", description="segment 1")
    fleet.online_endpoints.create("model-a")
    fleet.online_deployments.create("blue", endpoint="model-a", model="model_a:v1")
    fleet.online_endpoints.invoke("model-a", {"data": [[1, 2, 3, 4]]})
    plan = fleet.plan("fleet.yaml")                   # a whole fleet file: what would change
    outcomes = fleet.apply(plan)                      # ... and make it so

Registry work goes straight to the workspace store; serving work goes to the workspace server,
which is started in the background on first need.
"""

from __future__ import annotations

import functools
import threading
import time
from functools import cached_property
from pathlib import Path
from typing import Any, Callable

from typing import TYPE_CHECKING

import orjson

from . import errors
from .computes import ComputeOperations
from .environment_ops import EnvironmentOperations
from .errors import DeploymentFailed, FleetError, InvalidInput, ServerUnavailable
from .server import process
from .workspace import Workspace, Workspaces

if TYPE_CHECKING:  # the heavy imports wait until a call needs them: the CLI starts faster
    import httpx

    from .applier import Outcome, Progress
    from .environments import Environments
    from .fleetfile import DesiredFleet
    from .planner import Plan
    from .registry import Model, Registry
    from .specs import DeploymentSpec, EndpointSpec, ModelSpec
    from .store import ArtifactStore, Database


def _notice_nothing(_msg: str) -> None:
    pass


def load_fleet(path: str | Path, notice: Callable[[str], None] | None = None) -> DesiredFleet:
    """A fleet YAML, multi-document YAML or directory of documents, validated in full before any
    workspace or server is touched (one SpecError lists every problem). Fields that have no
    meaning here (Azure-only) are reported to `notice`."""
    from .fleetfile import load
    desired = load(path)
    for n in desired.notices:
        (notice or _notice_nothing)(f"notice: {n}")
    return desired


class Resource(dict):
    """An endpoint or deployment as the server shows it. Its keys read as attributes too
    (`ep.scoring_uri`), and `to_dict()` gives the plain dict, as for a Model, so every list and
    get method returns objects used the same way."""

    def __getattr__(self, name: str):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def to_dict(self) -> dict:
        return dict(self)


def _resources(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        out = fn(*args, **kwargs)
        if isinstance(out, list):
            return [Resource(x) for x in out]
        return Resource(out) if isinstance(out, dict) else out
    return wrapper


def _without_none(mapping: dict) -> dict:
    """In an update, a key set to None is one to remove (a tag, an environment variable)."""
    return {k: v for k, v in mapping.items() if v is not None}


class Fleet:
    def __init__(self, workspace: str | None = None, *, home: str | Path | None = None,
                 notice: Callable[[str], None] | None = None):
        self.workspaces = Workspaces(Path(home) if home else None)
        self.workspace: Workspace = self.workspaces.get(workspace)
        self.notice = notice or _notice_nothing
        self.models = ModelOperations(self)
        self.online_endpoints = EndpointOperations(self)
        self.online_deployments = DeploymentOperations(self)
        self.computes = ComputeOperations(self)
        self.environments = EnvironmentOperations(self)
        self.server = ServerOperations(self)
        self._http: httpx.Client | None = None
        self._info: process.ServerInfo | None = None
        self._server_lock = threading.Lock()   # threads of one Fleet (apply's) start one server

    @cached_property
    def data(self):
        """Data assets (docs/monitoring.md)."""
        from .monitoring.operations import DataOperations
        return DataOperations(self)

    @cached_property
    def schedules(self):
        """Model monitor schedules (docs/monitoring.md)."""
        from .monitoring.operations import ScheduleOperations
        return ScheduleOperations(self)

    @cached_property
    def db(self) -> Database:
        from .store import Database
        return Database(self.workspace.db_url)

    @cached_property
    def artifacts(self) -> ArtifactStore:
        from .store import ArtifactStore
        store = ArtifactStore(self.workspace.artifacts)
        store.sweep_tmp()
        return store

    @cached_property
    def registry(self) -> Registry:
        from .registry import Registry
        return Registry(self.db, self.artifacts)

    @cached_property
    def environment_registry(self) -> Environments:
        from .environments import Environments
        from .interpreters import Policy
        from .server import settings
        return Environments.of_workspace(self.workspace, self.db, Policy.of_settings(settings.load(self.workspace)))

    # -- talking to the server ---------------------------------------------------------------

    def _server(self) -> process.ServerInfo:
        with self._server_lock:
            return self._connect()

    def _connect(self) -> process.ServerInfo:
        import httpx
        info = process.read_info(self.workspace)
        if info is None:
            info, started = process.start(self.workspace)
            if started:
                self.notice(f"started the server of workspace {self.workspace.name!r} at {info.url} (pid {info.pid})")
        if self._info is None or self._info.pid != info.pid:
            if self._http is not None:
                self._http.close()
            self._http = httpx.Client(base_url=info.url, timeout=httpx.Timeout(60.0, connect=5.0),
                                      headers={"authorization": f"Bearer {info.token}"},
                                      verify=process.verify(info))
            self._info = info
        return info

    def request(self, method: str, path: str, *, json: Any = None, params: dict | None = None,
                timeout: float | None = None, headers: dict | None = None) -> Any:
        import httpx
        if method == "GET" and process.read_info(self.workspace) is None:
            return self._offline.get(path, params)  # reading never starts the server
        self._server()
        try:
            r = self._http.request(method, path, json=json, params=params, headers=headers,
                                   timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT)
        except httpx.HTTPError as e:
            raise ServerUnavailable(f"cannot reach the server at {self._info.url}: {e}") from None
        try:
            body = r.json() if r.content else None
        except ValueError:
            err = FleetError(f"server answered {r.status_code}: {r.text[:200]}")
            err.http_status = r.status_code
            raise err from None
        if r.status_code >= 400:
            if isinstance(body, dict) and isinstance(body.get("error"), dict):
                err = errors.from_dict(body["error"])
            else:
                err = FleetError(f"server answered {r.status_code}")
            err.http_status = r.status_code  # what the server said, whatever the class's usual status
            raise err
        return body

    @cached_property
    def _offline(self):
        from .offline import OfflineReader
        from .store.serving import ServingStore
        return OfflineReader(self.workspace, ServingStore(self.db))

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
        if "db" in self.__dict__:
            self.db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- fleet files -------------------------------------------------------------------------

    def plan(self, fleet: str | Path | DesiredFleet, *, prune: bool = False) -> Plan:
        """The changes that make the workspace match `fleet`: a path (its notices go to this
        Fleet's `notice`) or what `load_fleet` returned. `prune` also deletes endpoints and
        deployments the fleet no longer names."""
        from .fleetfile import DesiredFleet
        from .planner import make_plan, read_current
        desired = fleet if isinstance(fleet, DesiredFleet) else load_fleet(fleet, self.notice)
        return make_plan(desired, read_current(self), prune=prune)

    def apply(self, fleet: str | Path | DesiredFleet | Plan, *, prune: bool = False, timeout: float = 600.0,
              progress: Progress | None = None) -> list[Outcome]:
        """Carry out `plan(fleet)` (or a Plan already made), waiting up to `timeout` seconds for
        each deployment; `progress(change, state, text)` hears of each step. One failure does not
        stop the others: every change has an Outcome, check `ok`."""
        from .applier import apply_plan
        from .planner import Plan
        if isinstance(fleet, Plan):
            if prune:
                raise InvalidInput("prune is decided when planning: pass it to plan()")
            plan = fleet
        else:
            plan = self.plan(fleet, prune=prune)
        return apply_plan(self, plan, timeout=timeout, progress=progress)


class ModelOperations:
    def __init__(self, fleet: Fleet):
        self._f = fleet

    def register(self, name: str, path: str | Path, version: str | int | None = None, *,
                 description: str = "", tags: dict | None = None, type: str | None = None,
                 exist_ok: bool = False) -> Model:
        return self._f.registry.register(name, path, None if version is None else str(version),
                                         description=description, tags=tags, type=type, exist_ok=exist_ok)

    create = register

    def register_spec(self, spec: ModelSpec, base_dir: Path = Path("."), **kw) -> Model:
        path = Path(spec.path)
        path = path if path.is_absolute() else base_dir / path
        return self.register(spec.name, path, spec.version, description=spec.description, tags=spec.tags,
                             type=spec.type, **kw)

    def get(self, name: str, version: str | None = None, label: str | None = None) -> Model:
        if version is not None and label is not None:
            raise InvalidInput("give --version or --label, not both")
        ref = f"{name}:{version}" if version is not None else f"{name}@{label or 'latest'}"
        return self._f.registry.get(ref)

    def resolve(self, ref: str) -> Model:
        return self._f.registry.get(ref)

    def list(self, name: str | None = None, include_archived: bool = False) -> list[Model]:
        return self._f.registry.list(name, include_archived)

    def update(self, name: str, version: str, *, description: str | None = None, tags: dict | None = None,
               remove_tags: list[str] | None = None) -> Model:
        return self._f.registry.update(name, version, description=description, tags=tags, remove_tags=remove_tags)

    def archive(self, name: str, version: str) -> Model:
        return self._f.registry.set_archived(name, version, True)

    def restore(self, name: str, version: str) -> Model:
        return self._f.registry.set_archived(name, version, False)

    def label(self, name: str, version: str, label: str) -> Model:
        return self._f.registry.label(name, version, label)

    def download(self, name: str, version: str | None = None, label: str | None = None,
                 download_path: str | Path = ".") -> Path:
        m = self.get(name, version, label)
        return self._f.registry.download(m.ref, download_path)

    def delete(self, name: str, version: str) -> None:
        self._f.registry.delete(name, version)


class EndpointOperations:
    def __init__(self, fleet: Fleet):
        self._f = fleet

    @_resources
    def create(self, name: str, *, auth_mode: str = "key", compute: str = "local", description: str = "",
               tags: dict | None = None, spec: EndpointSpec | None = None, exist_ok: bool = False,
               local: bool = False) -> Resource:
        """`local`: made as Azure's `--local` endpoints are, answering loopback clients without a key."""
        from .specs import EndpointSpec, validate
        spec = spec or validate(EndpointSpec, dict(name=name, auth_mode=auth_mode, compute=compute,
                                                    description=description, tags=tags or {}))
        self._f.computes.resolve(spec.compute)  # an unknown compute starts no server
        body = {"auth_mode": spec.auth_mode, "compute": spec.compute, "description": spec.description,
                "tags": spec.tags, "local": local}
        ep = self._f.request("PUT", f"/api/endpoints/{spec.name}", json=body,
                             params=None if exist_ok else {"create": "true"})
        if spec.traffic is not None or spec.mirror_traffic is not None:
            ep = self.update(spec.name, traffic=spec.traffic, mirror_traffic=spec.mirror_traffic)
        return ep

    @_resources
    def update(self, name: str, *, traffic: dict | None = None, mirror_traffic: dict | None = None,
               description: str | None = None, tags: dict | None = None, auth_mode: str | None = None) -> Resource:
        ep = self.get(name)
        if description is not None or tags is not None or auth_mode is not None:
            body = {"auth_mode": auth_mode or ep["auth_mode"], "compute": ep["compute"],
                    "local": ep.get("local", False),
                    "description": ep["description"] if description is None else description,
                    "tags": _without_none({**ep["tags"], **(tags or {})})}
            ep = self._f.request("PUT", f"/api/endpoints/{name}", json=body, params={"create": "false"})
        if traffic is not None or mirror_traffic is not None:
            ep = self._f.request("PUT", f"/api/endpoints/{name}/traffic",
                                 json={"traffic": traffic, "mirror_traffic": mirror_traffic})
        return ep

    @_resources
    def get(self, name: str) -> Resource:
        return self._f.request("GET", f"/api/endpoints/{name}")

    @_resources
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
        import httpx
        if request_file is not None:
            try:
                body = Path(request_file).read_bytes()
            except OSError as e:
                raise InvalidInput(f"request file {str(request_file)!r}: {e.strerror}") from None
        elif isinstance(request, (bytes, str)):
            body = request.encode() if isinstance(request, str) else request
        else:
            body = orjson.dumps(request)
        info = self._f._server()  # scoring needs the server: start it if it is not running
        ep = self.get(name)
        headers = {"content-type": "application/json"}
        if ep["auth_mode"] == "key":
            headers["authorization"] = f"Bearer {self.get_keys(name)['primaryKey']}"
        if deployment_name:
            headers["azureml-model-deployment"] = deployment_name
        try:
            r = httpx.post(ep["scoring_uri"], content=body, headers=headers, timeout=timeout,
                           verify=process.verify(info))
        except httpx.HTTPError as e:
            raise ServerUnavailable(f"cannot reach {ep['scoring_uri']}: {e}") from None
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


class DeploymentOperations:
    def __init__(self, fleet: Fleet):
        self._f = fleet

    def _body(self, spec: DeploymentSpec, endpoint: str, base_dir: Path) -> dict:
        model = spec.model
        if not isinstance(model, str):  # Azure's inline `model: {path: ...}`: register it first
            path = Path(model.path)
            path = path if path.is_absolute() else base_dir / path
            m = self._f.registry.register(model.name or f"{endpoint}-{spec.name}", path, model.version,
                                          description=model.description, tags=model.tags, type=model.type,
                                          exist_ok=model.version is not None,
                                          reuse_same_content=model.version is None)
            model = m.ref
        code = None
        if spec.code_configuration is not None:
            code_dir = Path(spec.code_configuration.code)
            code_dir = code_dir if code_dir.is_absolute() else base_dir / code_dir
            if not code_dir.is_dir():
                raise InvalidInput(f"code_configuration.code: directory {str(code_dir)!r} does not exist")
            if not (code_dir / spec.code_configuration.scoring_script).is_file():
                raise InvalidInput(f"code_configuration.scoring_script: {spec.code_configuration.scoring_script!r} "
                                   f"not found in {code_dir}")
            snap = self._f.artifacts.add("code", code_dir)
            code = {"sha256": snap.sha256, "root": code_dir.resolve().name,
                    "scoring_script": spec.code_configuration.scoring_script}
        data = spec.data()
        from .specs import SETTINGS_FIELDS
        body = {k: data[k] for k in SETTINGS_FIELDS if k in data}
        body.update(model=model, code=code, environment=self._environment(spec.environment, base_dir))
        return body

    def _environment(self, environment, base_dir: Path) -> str | None:
        """A deployment's `environment` as a version ref; Azure's inline block is registered first."""
        if environment is None or isinstance(environment, str):
            return environment
        default = self._f.environment_registry.runs_on_default(environment)
        if default is not None:   # an image that is not Azure's: the server's own Python and packages
            self._f.notice(f"notice: {default}")
            return None
        return self._f.environment_registry.inline(environment, base_dir).ref

    def _build_environment(self, endpoint: str, body: dict) -> None:
        """Build the body's environment before the deployment is written, so its progress shows
        (the server finds it built then); for env_manager, the one the MLflow model logged."""
        ref = body.get("environment")
        if ref is None:
            model = self._f.registry.get(body["model"])
            if model.type != "mlflow":
                return  # the server says why, if there is anything to say
            model_dir = self._f.registry.path_of(model, False)
            if body.get("env_manager"):
                ref = self._f.environment_registry.for_mlflow_model(model.ref, model_dir, body["env_manager"]).ref
            else:
                env = self._f.environment_registry.for_mlflow_flavour(model.ref, model_dir)
                if env is not None:
                    self._f.notice(f"notice: {env.description}")
                ref = env.ref if env is not None else None
        if ref is not None:
            self._f.environments.build(ref, compute=self._f.online_endpoints.get(endpoint)["compute"])

    @_resources
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

    @_resources
    def create(self, name: str, endpoint: str, model: str, **kw) -> Resource:
        opts = {k: kw.pop(k) for k in ("all_traffic", "wait", "timeout", "base_dir") if k in kw}
        from .specs import DeploymentSpec, validate
        spec = validate(DeploymentSpec, dict(name=name, endpoint_name=endpoint, model=model, **kw))
        return self.create_or_update(spec, create=True, **opts)

    @_resources
    def update(self, name: str, endpoint: str, *, wait: bool = True, timeout: float = 600.0,
               all_traffic: bool = False, etag: str | None = None, **changes) -> Resource:
        """Change some fields of a deployment; the rest stay as they are. Mappings (tags,
        environment_variables, request_settings, ...) are merged key by key; a key given as None
        is removed. The change is based on the deployment as read here, or on the version `etag`
        names (from an earlier read): if another writer changed it since, it is refused with
        PreconditionFailed and nothing changes."""
        cur = self.get(name, endpoint)
        body = {k: cur.get(k) for k in ("model", "environment_variables", "instance_count", "request_settings",
                                        "liveness_probe", "readiness_probe", "batching", "fast_path", "resources",
                                        "description", "tags")}
        body["code"] = cur.get("code")
        # an env_manager's environment is the model's own: derived again from the model given
        body.update(environment=None if cur.get("env_manager") else cur.get("environment"),
                    env_manager=cur.get("env_manager"))
        from .placement import written_placement
        body["placement"] = written_placement(cur)   # set explicitly: kept (the default follows the model)
        for k, v in changes.items():
            if v is None:
                continue
            if k == "environment":
                body.update(environment=self._environment(_environment_spec(v), Path(".")), env_manager=None)
            elif k == "env_manager":  # "local": back to the server's own interpreter
                body.update(environment=None, env_manager=None if v == "local" else v)
            elif k == "code_configuration":
                from .specs import DeploymentSpec, validate
                spec = validate(DeploymentSpec, dict(name=name, model=body["model"], code_configuration=v))
                body["code"] = self._body(spec, endpoint, Path("."))["code"]
            elif k in ("request_settings", "batching", "liveness_probe", "readiness_probe", "resources",
                       "environment_variables"):
                body[k] = _without_none({**(body[k] or {}), **v})
            elif k in body:
                body[k] = _without_none(v) if isinstance(v, dict) else v
            else:
                raise InvalidInput(f"unknown deployment field {k!r}")
        params = {"create": "false", "all_traffic": str(all_traffic).lower()}
        body = {k: v for k, v in body.items() if v is not None}
        self._build_environment(endpoint, body)
        self._f.request("PUT", f"/api/endpoints/{endpoint}/deployments/{name}", json=body, params=params,
                        headers={"if-match": f'"{etag or cur["etag"]}"'})
        return self.wait(endpoint, name, timeout) if wait else self.get(name, endpoint)

    @_resources
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

    @_resources
    def get(self, name: str, endpoint: str) -> Resource:
        return self._f.request("GET", f"/api/endpoints/{endpoint}/deployments/{name}")

    @_resources
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
        process.require(self._f.workspace)
        self._f._server()
        params = {"lines": lines, "follow": "true", **({"since": since} if since else {})}
        path = f"/api/endpoints/{endpoint}/deployments/{name}/logs"
        with self._f._http.stream("GET", path, params=params, timeout=httpx.Timeout(None, connect=5.0)) as r:
            if r.status_code >= 400:
                r.read()
                body = r.json()
                raise errors.from_dict(body["error"]) if isinstance(body.get("error"), dict) else FleetError(
                    f"server answered {r.status_code}")
            try:
                yield from r.iter_text()
            except httpx.HTTPError:
                return  # the server went away: the stream is over


def _environment_spec(value):
    """An `environment` change: a ref as it is, Azure's inline block validated."""
    if isinstance(value, dict):
        from .specs import InlineEnvironment, validate
        return validate(InlineEnvironment, value, "environment")
    return value


class ServerOperations:
    def __init__(self, fleet: Fleet):
        self._f = fleet

    def start(self, **changes) -> tuple[dict, bool]:
        """Start with the saved settings plus `changes` (host, port, ssl_certfile, ...; saved once
        the server listens). Already running: the changes are saved for the next start."""
        ws = self._f.workspace
        info, started = process.start(ws, changes)
        if not started and changes:
            from .server import settings
            settings.update(ws, **changes)
        return info.to_dict(), started

    def stats(self, endpoint: str | None = None, series: int = 0) -> dict:
        """Live figures over the last minute (req/s, p50, p99, errors, in flight, queued,
        replicas by state) per endpoint and deployment; never starts the server."""
        params = {"series": series, **({"endpoint": endpoint} if endpoint else {})}
        return self._f.request("GET", "/api/stats", params=params)

    def configure(self, **changes) -> dict:
        """The saved server settings, after applying `changes` (they apply at the next start)."""
        from .server import settings
        return settings.update(self._f.workspace, **changes).shown()

    def stop(self) -> dict | None:
        info = process.stop(self._f.workspace)
        return info.to_dict() if info else None

    def status(self) -> dict:
        info = process.read_info(self._f.workspace)
        if info is None:
            return {"status": "stopped", "workspace": self._f.workspace.name}
        d = info.to_dict()
        d["healthy"] = process.healthy(info)
        d["workspace"] = self._f.workspace.name
        return d
