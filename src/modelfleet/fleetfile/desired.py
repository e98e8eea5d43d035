"""Loading a fleet: one YAML with lists, multi-document YAML, or a directory of single documents.

Each document is recognised by its shape (a fleet has `models`/`endpoints`/`deployments` lists; an
Azure `$schema` names its kind; `endpoint_name` means a deployment, `auth_mode` an endpoint, `path`
a model). Every document is validated and every file it names is checked before anything is
returned, so `fleet apply` changes nothing when any of them is wrong. Relative paths resolve
against the file that holds them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..schema import yaml_files
from ..domain.errors import FleetError, SpecError
from ..schema.documents import DeploymentSpec, EndpointSpec, FleetSpec, ModelSpec
from ..schema.validation import Spec, validate

SUFFIXES = (".yaml", ".yml", ".json")


@dataclass
class Entry:
    """One model, endpoint or deployment of the fleet, and where it was written."""
    spec: Spec
    where: str  # "fleet.yaml: deployments[2]": the prefix of every message about this entry


@dataclass
class DesiredFleet:
    models: list[Entry] = field(default_factory=list)
    endpoints: list[Entry] = field(default_factory=list)
    deployments: list[Entry] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)


def kind_of(doc: dict) -> str | None:
    if any(k in doc for k in ("models", "endpoints", "deployments")):
        return "fleet"
    schema = str(doc.get("$schema") or "").lower()
    for word in ("deployment", "endpoint", "model"):
        if word in schema:  # e.g. managedOnlineDeployment.schema.json, model.schema.json
            return word
    if "endpoint_name" in doc or ("model" in doc and "name" in doc):
        return "deployment"
    if any(k in doc for k in ("auth_mode", "traffic", "mirror_traffic")):
        return "endpoint"
    if "path" in doc:
        return "model"
    return None


def load(path: str | Path) -> DesiredFleet:
    """The whole fleet under `path` (a file or a directory), validated; SpecError lists every problem."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)
        if not files:
            raise SpecError(f"{path}: no {'/'.join(SUFFIXES)} files in this directory")
    elif path.exists():
        files = [path]
    else:
        raise SpecError(f"file {str(path)!r} not found")
    fleet, problems = DesiredFleet(), []
    for f in files:
        try:
            docs = yaml_files.load_file(f)
        except FleetError as e:
            problems.append(e.message)
            continue
        for i, doc in enumerate(docs):
            where = str(f) if len(docs) == 1 else f"{f} (document {i + 1})"
            try:
                _add(fleet, doc, where, f.resolve().parent, problems)
            except SpecError as e:
                problems.append(e.message)
    _check_unique(fleet, problems)
    if problems:
        more = f" (and {len(problems) - 1} more problems below)" if len(problems) > 1 else ""
        raise SpecError(problems[0] + more, detail="\n".join(problems[1:]) or None)
    return fleet


def _add(fleet: DesiredFleet, doc, where: str, base: Path, problems: list[str]) -> None:
    if not isinstance(doc, dict):
        raise SpecError(f"{where}: expected a mapping of fields, got {type(doc).__name__}")
    kind = kind_of(doc)
    if kind is None:
        raise SpecError(f"{where}: cannot tell whether this is a model, endpoint, deployment or fleet "
                        "(add $schema, or the fields that make it one: path, auth_mode, endpoint_name)")
    if kind == "fleet":
        # `deployments:` with nothing under it is an empty list, not an error
        doc = {k: ([] if v is None and k in ("models", "endpoints", "deployments") else v) for k, v in doc.items()}
        spec = validate(FleetSpec, doc, where)
        fleet.notices += spec.notices(where)
        items = [(s, f"{where}: {key}[{i}]") for key in ("models", "endpoints", "deployments")
                 for i, s in enumerate(getattr(spec, key))]
    else:
        cls = {"model": ModelSpec, "endpoint": EndpointSpec, "deployment": DeploymentSpec}[kind]
        items = [(validate(cls, doc, where), where)]
    for spec, at in items:
        fleet.notices += _notices(spec, at)
        try:
            spec = _resolve_paths(spec, base, at)
        except SpecError as e:
            problems.append(e.message)
            continue
        if isinstance(spec, ModelSpec):
            fleet.models.append(Entry(spec, at))
        elif isinstance(spec, EndpointSpec):
            fleet.endpoints.append(Entry(spec, at))
        else:
            if not spec.endpoint_name:
                problems.append(f"{at}: endpoint_name: required in a fleet (which endpoint serves it)")
                continue
            fleet.deployments.append(Entry(spec, at))


def _notices(spec: Spec, where: str) -> list[str]:
    """Notices for ignored Azure fields, nested ones (request_settings.max_queue_wait_ms) included."""
    return spec.notices(where)


def _absolute(value: str, base: Path) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else base / p


def _resolve_paths(spec: Spec, base: Path, where: str) -> Spec:
    """The spec with every path made absolute (against the file's folder) and checked to exist."""
    if isinstance(spec, ModelSpec):
        return spec.model_copy(update={"path": _existing(spec.path, base, f"{where}.path")})
    if not isinstance(spec, DeploymentSpec):
        return spec
    update = {}
    if not isinstance(spec.model, str):
        update["model"] = spec.model.model_copy(update={"path": _existing(spec.model.path, base,
                                                                          f"{where}.model.path")})
    cc = spec.code_configuration
    if cc is not None:
        code = _absolute(cc.code, base)
        if not code.is_dir():
            raise SpecError(f"{where}.code_configuration.code: directory {cc.code!r} does not exist ({code})")
        if not (code / cc.scoring_script).is_file():
            raise SpecError(f"{where}.code_configuration.scoring_script: {cc.scoring_script!r} "
                            f"not found in {code}")
        update["code_configuration"] = cc.model_copy(update={"code": str(code)})
    env = spec.environment
    if env is not None and not isinstance(env, str):  # an inline environment's files
        files = {k: _existing(getattr(env, k), base, f"{where}.environment.{k}")
                 for k in ("conda_file", "requirements") if isinstance(getattr(env, k), str)}
        update["environment"] = env.model_copy(update=files) if files else env
    return spec.model_copy(update=update) if update else spec


def _existing(value: str, base: Path, where: str) -> str:
    p = _absolute(value, base)
    if not p.exists():
        raise SpecError(f"{where}: {value!r} does not exist ({p})")
    return str(p)


def _check_unique(fleet: DesiredFleet, problems: list[str]) -> None:
    seen: dict[str, Entry] = {}
    named = ([(f"model {e.spec.name}:{e.spec.version}" if e.spec.version else
               f"model {e.spec.name} (without a version)", e) for e in fleet.models]
             + [(f"endpoint {e.spec.name}", e) for e in fleet.endpoints]
             + [(f"deployment {e.spec.endpoint_name}/{e.spec.name}", e) for e in fleet.deployments])
    for what, e in named:
        if what in seen:
            problems.append(f"{e.where}: {what} is already defined at {seen[what].where}")
        else:
            seen[what] = e
