"""Desired fleet vs current workspace state -> the list of changes that makes them equal.

Pure apart from hashing local files (injectable), so it is unit-testable without a server. The
comparison uses what the server shows: a deployment's model as `name:version`, its code as the
snapshot sha256, and its settings normalized through the same spec classes, so re-planning right
after an apply finds nothing to do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..domain import curated
from ..domain import traffic as traffic_rules
from ..schema.environment_files import ANONYMOUS, content_of
from ..domain.errors import FleetError, InvalidInput, SpecError
from .desired import DesiredFleet, Entry
from ..domain.names import ModelRef
from ..domain.model_types import detect_type
from ..schema.records import Model
from ..domain.placement import resolve_placement
from ..schema.deployment_settings import SETTINGS_FIELDS
from ..schema.documents import DeploymentSpec, EndpointSpec, ModelSpec
from ..schema.validation import Spec
from ..files.digests import content_digest

SYMBOL = {"create": "+", "update": "~", "delete": "-"}
ENDPOINT_FIELDS = ("auth_mode", "compute", "description", "tags")
# Every deployment field but identity, model and code, which are compared on their own; derived
# from the spec so a new setting is planned and exported without touching this module.
SETTINGS = SETTINGS_FIELDS
_NESTED = {k: f.annotation for k, f in DeploymentSpec.model_fields.items()
           if k in SETTINGS and isinstance(f.annotation, type) and issubclass(f.annotation, Spec)}
_INT = re.compile(r"^[0-9]+$")


@dataclass(eq=False)
class Change:
    action: str                 # create | update | delete
    kind: str                   # model | endpoint | deployment | traffic
    name: str                   # model_a:v1 | aci-model-a | aci-model-a/default
    fields: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # update: field -> (now, wanted)
    detail: str = ""
    payload: dict = field(default_factory=dict)  # what the applier needs to carry it out

    def line(self) -> str:
        text = f"{SYMBOL[self.action]} {self.kind} {self.name}"
        if self.fields:
            text += ": " + "; ".join(f"{k} {_show(a)} -> {_show(b)}" for k, (a, b) in self.fields.items())
        return text + (f" ({self.detail})" if self.detail else "")

    def to_dict(self) -> dict:
        return {"action": self.action, "kind": self.kind, "name": self.name,
                "fields": {k: {"from": a, "to": b} for k, (a, b) in self.fields.items()},
                "detail": self.detail}


@dataclass
class Plan:
    changes: list[Change] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.changes)

    def of(self, kind: str, *actions: str) -> list[Change]:
        return [c for c in self.changes if c.kind == kind and (not actions or c.action in actions)]

    def summary(self) -> str:
        if not self.changes:
            return "no changes"
        n = {a: sum(c.action == a for c in self.changes) for a in SYMBOL}
        return f"{n['create']} to create, {n['update']} to update, {n['delete']} to delete"


@dataclass
class Current:
    """What the workspace holds now: model versions (archived too) and the server's views."""
    models: list[Model]
    endpoints: list[dict]
    deployments: list[dict]
    computes: list[str] | None = None  # compute names; None: not known, not checked
    environments: list = field(default_factory=list)  # environment versions (archived too)


def read_current(fleet) -> Current:
    return Current(fleet.models.list(include_archived=True), fleet.online_endpoints.list(),
                   fleet.online_deployments.list(), [c["name"] for c in fleet.computes.list()],
                   fleet.environments.list(include_archived=True))


def _show(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={_show(v) if isinstance(v, dict) else v}" for k, v in value.items()) + "}"
    return repr(value) if isinstance(value, str) and (not value or " " in value) else str(value)


def normalized(kind: type[Spec], value: dict | Spec | None) -> dict:
    """Settings as modelfleet uses them: defaults filled, `$schema` and ignored Azure fields dropped."""
    spec = value if isinstance(value, Spec) else kind.model_validate(value or {})
    out = spec.model_dump(exclude={"schema_", *(spec.model_extra or {})})
    for name, v in list(out.items()):  # nested settings (resources.limits) lose their extras too
        if isinstance(getattr(spec, name), Spec):
            out[name] = normalized(type(getattr(spec, name)), getattr(spec, name))
    return out


def deployment_settings(source: DeploymentSpec | dict) -> dict:
    if isinstance(source, dict):  # a server view: absent or null means the default
        source = DeploymentSpec.model_validate({"name": "default", "model": "m", **{
            k: source[k] for k in SETTINGS if source.get(k) is not None}})
    return {k: normalized(_NESTED[k], getattr(source, k)) if k in _NESTED else getattr(source, k)
            for k in SETTINGS}


@dataclass
class _Resolved:
    """What a model entry of the file means: its version ref, type, and the change producing it."""
    ref: str
    type: str
    change: Change | None = None
    sha256: str = ""


class _Planner:
    def __init__(self, desired: DesiredFleet, current: Current, prune: bool,
                 hash_files: Callable[[str], tuple[str, list[dict]]]):
        self.desired, self.current, self.prune, self.hash_files = desired, current, prune, hash_files
        self.problems: list[str] = []
        self.plan = Plan()
        self.file_models: dict[str, list[tuple[str | None, _Resolved]]] = {}

    # -- models --------------------------------------------------------------------------------

    def models(self, entries: list[Entry]) -> None:
        for e in entries:
            try:
                resolved = self._model(e.spec, e.where)
            except FleetError as err:
                self.problems.append(err.message if err.message.startswith(e.where)
                                     else f"{e.where}: {err.message}")
                continue
            self.file_models.setdefault(e.spec.name, []).append((e.spec.version, resolved))

    def _model(self, spec: ModelSpec, where: str) -> _Resolved:
        sha, files = self.hash_files(spec.path)
        versions = [m for m in self.current.models if m.name == spec.name]
        pending = [res for v, res in self.file_models.get(spec.name, []) if res.change and v is None]
        if spec.version is not None:
            match = next((m for m in versions if m.version == spec.version), None)
            if match is not None and match.sha256 != sha:
                raise SpecError(f"{where}: model {match.ref} already exists with different content; versions "
                                "are immutable: give a new version (or none, for the next number)")
        else:
            same = next((res for res in pending if res.sha256 == sha), None)
            if same is not None:  # two inline models with the same files: registered once
                return same
            # as Registry.register(reuse_same_content=True): the newest version holding these files
            match = next((m for m in reversed(versions) if m.sha256 == sha), None)
        if match is not None:
            self._model_metadata(spec, match)
            return _Resolved(match.ref, match.type, None, sha)
        version = spec.version or str(max((int(m.version) for m in versions if _INT.match(m.version)),
                                          default=0) + 1 + len(pending))
        change = Change("create", "model", f"{spec.name}:{version}",
                        detail="" if spec.version else "next version", payload={"spec": spec})
        self.plan.changes.append(change)
        return _Resolved(change.name, spec.type or detect_type(files), change, sha)

    def _model_metadata(self, spec: ModelSpec, model: Model) -> None:
        fields = {k: (getattr(model, k), getattr(spec, k)) for k in ("description", "tags")
                  if getattr(model, k) != getattr(spec, k)}
        labels = [label for label in spec.labels if label not in model.labels]  # labels are moved, never removed
        if labels:
            fields["labels"] = (model.labels, sorted({*model.labels, *labels}))
        if fields:
            self.plan.changes.append(Change("update", "model", model.ref, fields, payload={
                "name": model.name, "version": model.version, "description": spec.description,
                "tags": spec.tags, "remove_tags": [k for k in model.tags if k not in spec.tags], "labels": labels}))

    def model_ref(self, ref: str, where: str) -> _Resolved:
        """A deployment's `model`: the file's own entries first, then the registry."""
        r = ModelRef.parse(ref)
        in_file = self.file_models.get(r.name, [])
        registered = [m for m in self.current.models if m.name == r.name]
        if r.version is not None:
            hit = next((res for v, res in in_file if res.ref == f"{r.name}:{r.version}"), None)
            found = hit or next((_Resolved(m.ref, m.type) for m in registered if m.version == r.version), None)
        elif r.label in (None, "latest"):
            # A bare name means the version this fleet file registers or reuses, when it names one.
            live = [m for m in registered if not m.archived]
            found = in_file[-1][1] if in_file else (_Resolved(live[-1].ref, live[-1].type) if live else None)
        else:
            found = next((_Resolved(m.ref, m.type) for m in registered if r.label in m.labels), None)
        if found is None:
            raise SpecError(f"{where}.model: model {r} not found (not in the fleet file, not registered)")
        return found

    # -- endpoints -----------------------------------------------------------------------------

    def endpoints(self) -> None:
        now = {ep["name"]: ep for ep in self.current.endpoints}
        for e in self.desired.endpoints:
            spec: EndpointSpec = e.spec
            body = spec.model_copy(update={"traffic": None, "mirror_traffic": None})
            cur = now.get(spec.name)
            known = self.current.computes
            if known is not None and spec.compute not in ("local", *known):
                self.problems.append(f"{e.where}.compute: compute {spec.compute!r} not found (see fleet compute list)")
            if cur is not None and cur["compute"] != spec.compute and cur.get("deployments"):
                self.problems.append(f"{e.where}.compute: endpoint {spec.name!r} has deployments on compute "
                                     f"{cur['compute']!r}: delete them before moving it to {spec.compute!r}")
            if cur is None:
                self.plan.changes.append(Change("create", "endpoint", spec.name, payload={"spec": body}))
                continue
            fields = {k: (cur[k], getattr(spec, k)) for k in ENDPOINT_FIELDS if cur[k] != getattr(spec, k)}
            if fields:
                self.plan.changes.append(Change("update", "endpoint", spec.name, fields, payload={"spec": body}))

    # -- deployments ---------------------------------------------------------------------------

    def deployments(self) -> None:
        known = {e.spec.name for e in self.desired.endpoints} | {ep["name"] for ep in self.current.endpoints}
        now = {(d["endpoint_name"], d["name"]): d for d in self.current.deployments}
        for e in self.desired.deployments:
            spec: DeploymentSpec = e.spec
            if spec.endpoint_name not in known:
                self.problems.append(f"{e.where}.endpoint_name: endpoint {spec.endpoint_name!r} not found "
                                     "(not in the fleet file, not in the workspace)")
                continue
            try:
                change = self._deployment(e, now.get((spec.endpoint_name, spec.name)))
            except FleetError as err:
                self.problems.append(err.message if err.message.startswith(e.where)
                                     else f"{e.where}: {err.message}")
                continue
            if change is not None:
                self.plan.changes.append(change)

    def _inline_model(self, e: Entry) -> _Resolved:
        """Azure's inline `model: {path: ...}`: a model entry of its own, named after the deployment."""
        spec: DeploymentSpec = e.spec
        m = spec.model
        entry = ModelSpec(name=m.name or f"{spec.endpoint_name}-{spec.name}", version=m.version, path=m.path,
                          type=m.type, description=m.description, tags=m.tags)
        resolved = self._model(entry, f"{e.where}.model")
        self.file_models.setdefault(entry.name, []).append((entry.version, resolved))
        return resolved

    def _deployment(self, e: Entry, cur: dict | None) -> Change | None:
        spec: DeploymentSpec = e.spec
        model = self._inline_model(e) if not isinstance(spec.model, str) else self.model_ref(spec.model, e.where)
        code = None
        if spec.code_configuration is not None:
            sha, _ = self.hash_files(spec.code_configuration.code)
            root = Path(spec.code_configuration.code).resolve().name  # as the SDK names the snapshot root
            code = {"sha256": sha, "root": root, "scoring_script": spec.code_configuration.scoring_script}
        elif model.type == "custom":
            raise SpecError(f"{e.where}.code_configuration: model {model.ref} is of type custom: "
                            "give code_configuration (code and scoring_script)")
        wanted = {"model": model.ref, "code": code, "environment": self._environment(e), **deployment_settings(spec)}
        try:   # compared as the server shows it: as written, or the default for this model
            wanted["placement"] = resolve_placement(spec.placement, model.type, code=code is not None,
                                                    environment_variables=spec.environment_variables,
                                                    environment=spec.environment is not None
                                                    or spec.env_manager is not None)
        except InvalidInput as err:
            raise SpecError(f"{e.where}: {err.message}") from None
        name = f"{spec.endpoint_name}/{spec.name}"
        payload = {"spec": spec, "model": model.ref, "model_change": model.change}
        if cur is None:
            return Change("create", "deployment", name, detail=f"model {model.ref}", payload=payload)
        have = {"model": cur["model"], "code": _code(cur.get("code")), "environment": cur.get("environment"),
                **deployment_settings(cur)}
        if spec.env_manager is not None:  # the model's own environment: it changes with the model
            have["environment"] = wanted["environment"]
        have["placement"] = cur.get("placement") or wanted["placement"]   # a server before placement: no change
        fields = {k: (have[k], wanted[k]) for k in wanted if have[k] != wanted[k]}
        if "code" in fields:  # the snapshot hash says little; name the script instead
            fields["code"] = tuple(f"{c['root']}/{c['scoring_script']} sha256:{c['sha256'][:12]}" if c else None
                                   for c in fields["code"])
        retry = cur["provisioning_state"] == "Failed" and not cur.get("replicas")
        if not fields and not retry:
            return None
        return Change("update", "deployment", name, fields, detail="" if fields else "retry: its last rollout failed",
                      payload=payload)

    def _environment(self, e: Entry) -> str | None:
        """The environment version a deployment entry names, as the SDK will resolve it."""
        env = e.spec.environment
        if env is None:
            return None
        if isinstance(env, str):
            entry = curated.lookup(env) if curated.registry_uri(env) or "azureml-" in env.lower() else None
            if entry is not None and (curated.registry_uri(env) or not any(
                    x.name == ModelRef.parse(env, "environment").name for x in self.current.environments)):
                return entry.ref   # one of Azure's curated environments (curated.py)
            r = ModelRef.parse(env, "environment")
            if r.version is not None:
                return f"{r.name}:{r.version}"
            live = [x for x in self.current.environments if x.name == r.name and not x.archived]
            if not live:
                raise SpecError(f"{e.where}.environment: environment {r} not found")
            return live[-1].ref
        sha = content_of(env, Path("."))[0].sha256   # the fleet file's paths are absolute by now
        if env.name is None:
            return f"{ANONYMOUS}:{sha[:32]}"
        if env.version is not None:
            return f"{env.name}:{env.version}"
        same = [x for x in self.current.environments if x.name == env.name and x.sha256 == sha]
        return same[-1].ref if same else f"{env.name}:(next version)"

    # -- traffic and pruning -------------------------------------------------------------------

    def traffic_and_prune(self) -> None:
        now = {ep["name"]: ep for ep in self.current.endpoints}
        file_eps = {e.spec.name: e for e in self.desired.endpoints}
        named_deps = {(e.spec.endpoint_name, e.spec.name) for e in self.desired.deployments}
        named_eps = set(file_eps) | {ep for ep, _ in named_deps}
        doomed_eps = [n for n in now if n not in named_eps] if self.prune else []
        doomed_deps = [(d["endpoint_name"], d["name"]) for d in self.current.deployments
                       if d["endpoint_name"] in named_eps and (d["endpoint_name"], d["name"]) not in named_deps
                       ] if self.prune else []
        for name in sorted(named_eps):
            self._traffic(name, file_eps.get(name), now.get(name), named_deps,
                          {d for ep, d in doomed_deps if ep == name})
        for ep, dep in doomed_deps:
            self.plan.changes.append(Change("delete", "deployment", f"{ep}/{dep}",
                                            payload={"endpoint": ep, "name": dep}))
        for name in doomed_eps:
            deps = now[name]["deployments"]
            self.plan.changes.append(Change("delete", "endpoint", name,
                                            detail=f"and its deployments {', '.join(deps)}" if deps else "",
                                            payload={"name": name}))

    def _traffic(self, name: str, entry: Entry | None, cur: dict | None, named_deps: set, doomed: set) -> None:
        spec: EndpointSpec | None = entry.spec if entry else None
        have_t = dict(cur["traffic"]) if cur else {}
        have_m = dict(cur["mirror_traffic"]) if cur else {}
        managed_t = spec is not None and spec.traffic is not None
        managed_m = spec is not None and spec.mirror_traffic is not None
        want_t = traffic_rules.clean(spec.traffic) if managed_t else {k: v for k, v in have_t.items() if k not in doomed}
        want_m = traffic_rules.clean(spec.mirror_traffic) if managed_m else {
            k: v for k, v in have_m.items() if k not in doomed}
        staying = {d for ep, d in named_deps if ep == name} | (
            {n for n in cur["deployments"] if n not in doomed} if cur else set())
        where = f"{entry.where}.traffic" if entry else f"endpoint {name}"
        if not managed_t and doomed and staying and sum(have_t.values()) and not sum(want_t.values()):
            self.problems.append(f"{where}: pruning {', '.join(sorted(doomed))} leaves the live traffic of "
                                 f"{name} nowhere; set traffic for {name} in the fleet file")
            return
        try:
            traffic_rules.check(want_t, want_m, staying)
        except FleetError as err:
            self.problems.append(f"{where}: {err.message}")
            return
        if want_t == traffic_rules.clean(have_t) and want_m == traffic_rules.clean(have_m):
            return
        fields = {}
        if want_t != traffic_rules.clean(have_t):
            fields["traffic"] = (have_t, want_t)
        if want_m != traffic_rules.clean(have_m):
            fields["mirror_traffic"] = (have_m, want_m)
        self.plan.changes.append(Change("create" if cur is None else "update", "traffic", name,
                                        {} if cur is None else fields,
                                        detail=_percent(want_t) if cur is None else "",
                                        payload={"endpoint": name, "traffic": want_t if managed_t or doomed else None,
                                                 "mirror_traffic": want_m if managed_m or doomed else None}))


def _percent(traffic: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in traffic.items()) or "none"


def _code(code: dict | None) -> dict | None:
    return {k: code[k] for k in ("sha256", "root", "scoring_script")} if code else None


def make_plan(desired: DesiredFleet, current: Current, *, prune: bool = False,
              hash_files: Callable[[str], tuple[str, list[dict]]] = content_digest) -> Plan:
    """The changes, in the order they are applied: models, endpoints, deployments, traffic, deletions.
    Raises one SpecError listing every problem (unknown models, immutable versions, bad traffic)."""
    p = _Planner(desired, current, prune, hash_files)
    p.models(desired.models)
    p.endpoints()
    p.deployments()
    p.traffic_and_prune()
    if p.problems:
        more = f" (and {len(p.problems) - 1} more problems below)" if len(p.problems) > 1 else ""
        raise SpecError(p.problems[0] + more, detail="\n".join(p.problems[1:]) or None)
    order = {"model": 0, "endpoint": 1, "deployment": 2, "traffic": 3}
    p.plan.changes.sort(key=lambda c: (c.action == "delete", order[c.kind] if c.action != "delete"
                                       else -order[c.kind]))
    return p.plan
