"""Pydantic models of every document users write (Azure ML v2 field names) and their errors.

Azure files work unchanged: `$schema` is accepted, and fields that have no meaning on modelfleet
(`instance_type`, an environment's `image`, ...) are accepted with a notice. Any other unknown field is an
error naming its path, so typos do not pass silently.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from .errors import InvalidInput, SpecError
from .monitoring_specs import DataCollector, data_collector
from .model_types import AZURE_MODEL_TYPES, FAST_PATH_DEFAULT, MODEL_TYPES
from .names import ENDPOINT_RULE, NAME_RULE, ModelRef, check_endpoint_name, check_name, check_version, problem
from .placement import Placement, check_shared, resolve_placement
from .spec_base import Spec  # re-exported: every document model's base


def _mapping(v) -> dict:
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise ValueError(f"must be a mapping of names to values, got {type(v).__name__}")
    return v


def _by_rule(check, rule: str, endpoint_rule: bool = False):
    """A names.py check as a pydantic validator: the value, what is wrong with it, and the rule."""
    def validate(v):
        try:
            return check(v)
        except InvalidInput:
            raise ValueError(f"must be {rule}: {v!r} {problem(v, endpoint_rule)}") from None
    return validate


_check_name = _by_rule(check_name, NAME_RULE)
_check_version = _by_rule(check_version, NAME_RULE)
# Azure's rule for deployment names is the endpoint rule.
_check_endpoint_name = _by_rule(check_endpoint_name, ENDPOINT_RULE, endpoint_rule=True)


def _model_type(v):
    """Ours, or Azure's (custom and triton models are detected from their files); any case, as in Azure."""
    if v is None:
        return None
    key = str(v).lower()
    if key in AZURE_MODEL_TYPES:
        return AZURE_MODEL_TYPES[key]
    if key not in MODEL_TYPES:
        raise ValueError(f"{v!r} is not a model type: use {', '.join(AZURE_MODEL_TYPES)} or {', '.join(MODEL_TYPES)}")
    return key


def _version(v):
    """Versions are strings; YAML's `version: 2` is a number and means "2"."""
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (str, int, float)):
        raise ValueError(f"must be a string or a number, got {type(v).__name__}")
    return _check_version(str(v))


class ModelSpec(Spec):
    AZURE_ONLY = frozenset({"properties", "stage", "job_name", "datastore", "flavors", "intellectual_property"})
    name: str
    version: str | None = None
    path: str
    type: str | None = None
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    labels: list[str] = Field(default_factory=list)  # fleet files: labels that point at this version

    _name = field_validator("name")(classmethod(lambda cls, v: _check_name(v)))
    _version = field_validator("version", mode="before")(classmethod(lambda cls, v: _version(v)))
    _type = field_validator("type", mode="before")(classmethod(lambda cls, v: _model_type(v)))

    @field_validator("tags", mode="before")
    @classmethod
    def _tags(cls, v):
        return {str(k): "" if x is None else str(x) for k, x in _mapping(v).items()}

    @field_validator("labels")
    @classmethod
    def _labels(cls, v):
        for label in v:
            _check_name(label)
            if label == "latest":
                raise ValueError("'latest' is built in (the newest version) and cannot be set")
        return v


class InlineModel(Spec):
    """Azure's inline `model: {path: ...}` inside a deployment: registered on apply. It takes what a
    model YAML takes (numeric versions, every model type)."""
    AZURE_ONLY = ModelSpec.AZURE_ONLY
    name: str | None = None
    version: str | None = None
    path: str
    type: str | None = None
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)

    _name = field_validator("name")(classmethod(lambda cls, v: None if v is None else _check_name(v)))
    _version = field_validator("version", mode="before")(classmethod(lambda cls, v: _version(v)))
    _type = field_validator("type", mode="before")(classmethod(lambda cls, v: _model_type(v)))
    _tags = field_validator("tags", mode="before")(ModelSpec._tags.__func__)


def _environment_ref(v):
    """`azureml:NAME:VERSION`, `NAME:VERSION`, `NAME@label` or `NAME` (latest), as for models, or
    one of Azure's curated environments (`azureml://registries/azureml/environments/NAME/labels/latest`)."""
    if v is None:
        return None
    from . import curated
    try:
        if curated.registry_uri(str(v)):
            if curated.lookup(str(v)) is None:
                raise InvalidInput(f"{v!r} is not a curated environment of Azure's registry "
                                   "(azureml://registries/azureml/environments/NAME/labels/latest)")
        else:
            ModelRef.parse(str(v), "environment")
    except Exception as e:
        raise ValueError(str(e)) from None
    return str(v)


class EnvironmentSpec(Spec):
    """Azure's environment YAML. The packages come from `conda_file` (a conda environment file, or
    that document inline) or `requirements` (modelfleet's: a requirements.txt, or its lines). There
    is no Docker here: beside a conda file `image` is kept but not used; alone, one of Azure's
    inference images is the packages it carries (curated.py), any other the default environment."""
    AZURE_ONLY = frozenset({"build", "inference_config", "os_type", "docker", "properties", "datastore", "stage",
                            "intellectual_property"})
    name: str
    version: str | None = None
    conda_file: str | dict | None = None
    requirements: str | list[str] | None = None
    image: str | None = None
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)

    _name = field_validator("name")(classmethod(lambda cls, v: _check_name(v)))

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, v):
        return None if v is None else _check_version(str(v))

    @field_validator("conda_file", mode="before")
    @classmethod
    def _conda_file(cls, v):
        return v[len("file:"):] if isinstance(v, str) and v.startswith("file:") else v

    @field_validator("tags", mode="before")
    @classmethod
    def _tags(cls, v):
        return {str(k): "" if x is None else str(x) for k, x in _mapping(v).items()}

    @property
    def NOTED(self) -> dict[str, str]:  # noqa: N802 - Spec's class-level name for kept-but-unused fields
        if self.image is not None and (self.conda_file is not None or self.requirements is not None):
            return {"image": "environments are virtualenvs built with uv from the conda file, not Docker images"}
        return {}

    @model_validator(mode="after")
    def _packages(self):
        if self.conda_file is None and self.requirements is None and self.image is None:
            raise ValueError("conda_file: required (or requirements: a requirements.txt, or image: one of "
                             "Azure's inference images)")
        if self.conda_file is not None and self.requirements is not None:
            raise ValueError("give conda_file or requirements, not both")
        return self


class InlineEnvironment(EnvironmentSpec):
    """Azure's inline `environment: {conda_file: ..., image: ...}` inside a deployment: an
    anonymous environment, registered on deploy."""
    name: str | None = None


class CodeConfiguration(Spec):
    code: str
    scoring_script: str


class RequestSettings(Spec):
    AZURE_ONLY = frozenset({"max_queue_wait_ms"})
    request_timeout_ms: int = Field(default=5000, ge=1, le=600_000)
    max_concurrent_requests_per_instance: int = Field(default=16, ge=1, le=10_000)
    max_queue_size: int = Field(default=512, ge=0, le=1_000_000)
    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1, le=1024 * 1024 * 1024)


class Probe(Spec):
    """Azure's probe fields, in seconds."""
    initial_delay: int = Field(default=0, ge=0)
    period: int = Field(default=2, ge=1)
    timeout: int = Field(default=2, ge=1)
    success_threshold: int = Field(default=1, ge=1)
    failure_threshold: int = Field(default=30, ge=1)


class LivenessProbe(Probe):
    """Defaults that find a stopped or wedged replica in about 3 s (Azure's: 10 s period, 30
    misses): a replica answers from a second thread even while run() is busy, so a miss means
    the process itself is stuck."""
    period: int = Field(default=1, ge=1)
    timeout: int = Field(default=1, ge=1)
    failure_threshold: int = Field(default=3, ge=1)


class Batching(Spec):
    max_batch_size: int = Field(default=1, ge=1, le=4096)
    max_batch_wait_ms: float = Field(default=2.0, ge=0, le=1000)


_QUANTITY = {"": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "ki": 1024, "mi": 1024**2, "gi": 1024**3}


def memory_bytes(value: str | int) -> int:
    """A Kubernetes memory quantity ("300Mi", "1Gi", "512M", or bytes) in bytes."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([kKmMgG]i?)?\s*", str(value))
    if not m:
        raise ValueError(f"{value!r} is not a memory quantity such as 512Mi or 1Gi")
    return int(float(m.group(1)) * _QUANTITY[(m.group(2) or "").lower()])


class ResourceLimits(Spec):
    AZURE_ONLY = frozenset({"cpu", "nvidia.com/gpu"})
    memory: str | None = None

    @field_validator("memory", mode="before")
    @classmethod
    def _memory(cls, v):
        if v is None:
            return None
        if memory_bytes(v) < 16 * 1024 * 1024:
            raise ValueError("must be at least 16Mi")
        return str(v)


def cpu_cores(value: str | float | int) -> float:
    """A Kubernetes CPU quantity ("500m", "0.5", 2) in cores."""
    text = str(value).strip()
    try:
        cores = float(text[:-1]) / 1000 if text.endswith("m") else float(text)
    except ValueError:
        raise ValueError(f"{value!r} is not a CPU quantity such as 500m or 0.5") from None
    if not 0 <= cores <= 1024:
        raise ValueError(f"{value!r} must be from 0 to 1024 cores")
    return cores


class ResourceRequests(Spec):
    """What a replica reserves where it is placed: Ray compute maps them to actor resources
    (num_cpus, memory); on local compute they are accepted and have no effect."""
    AZURE_ONLY = frozenset({"nvidia.com/gpu"})
    cpu: str | None = None
    memory: str | None = None

    @field_validator("cpu", mode="before")
    @classmethod
    def _cpu(cls, v):
        if v is None:
            return None
        cpu_cores(v)
        return str(v)

    @field_validator("memory", mode="before")
    @classmethod
    def _memory(cls, v):
        if v is None:
            return None
        memory_bytes(v)
        return str(v)

    @property
    def cpu_cores(self) -> float:
        return cpu_cores(self.cpu) if self.cpu is not None else 0.0

    @property
    def memory_bytes(self) -> int | None:
        return memory_bytes(self.memory) if self.memory else None


class Resources(Spec):
    """Azure's Kubernetes-style `resources`: `requests` place a replica on Ray compute,
    `limits.memory` caps each replica's resident memory."""
    requests: ResourceRequests = Field(default_factory=ResourceRequests)
    limits: ResourceLimits = Field(default_factory=ResourceLimits)

    @property
    def memory_limit_bytes(self) -> int | None:
        return memory_bytes(self.limits.memory) if self.limits.memory else None


class ScaleSettings(Spec):
    """Azure's `scale_settings`. `default`: `instance_count` replicas, always. `target_utilization`:
    from `min_instances` to `max_instances` replicas, aiming at `target_utilization_percentage` of
    their request slots (max_concurrent_requests_per_instance each) busy, looked at every
    `polling_interval` seconds. modelfleet allows `min_instances: 0`: after `idle_timeout` seconds
    without a request the last replica stops, and the next request waits while one starts."""
    type: Literal["default", "target_utilization"] = "default"
    min_instances: int = Field(default=1, ge=0, le=64)
    max_instances: int = Field(default=1, ge=1, le=64)
    target_utilization_percentage: int = Field(default=70, ge=1, le=100)
    polling_interval: int = Field(default=1, ge=1, le=3600)
    idle_timeout: int = Field(default=300, ge=1, le=7 * 24 * 3600)   # modelfleet's field (seconds)

    @field_validator("type", mode="before")
    @classmethod
    def _type(cls, v):
        return v.lower() if isinstance(v, str) else v   # Azure's enums are case-insensitive

    @model_validator(mode="after")
    def _range(self):
        if self.type == "target_utilization" and self.min_instances > self.max_instances:
            raise ValueError(f"min_instances ({self.min_instances}) is above max_instances ({self.max_instances})")
        return self

    @property
    def autoscaled(self) -> bool:
        return self.type == "target_utilization"


class DeploymentSettings(Spec):
    """What a deployment runs with, shared by the YAML document and the control API's body."""
    ASKS_ONE_ENVIRONMENT: ClassVar[bool] = True   # an environment, or an env_manager to derive one
    environment_variables: dict[str, str] = Field(default_factory=dict)
    instance_count: int = Field(default=1, ge=1, le=64)
    scale_settings: ScaleSettings = Field(default_factory=ScaleSettings)
    # modelfleet's own field: a shared multi-model worker or a process of its own (None: the
    # default for the model, placement.py)
    placement: Placement | None = None
    request_settings: RequestSettings = Field(default_factory=RequestSettings)
    liveness_probe: LivenessProbe = Field(default_factory=LivenessProbe)
    readiness_probe: Probe = Field(default_factory=lambda: Probe(failure_threshold=60, period=1))
    batching: Batching = Field(default_factory=Batching)
    # modelfleet's own field: how a replica calls a scikit-learn model (runtime/fast_path.py):
    # true (a verified ONNX graph, else scikit-learn without its checks), false, or required
    fast_path: bool | Literal["required"] = FAST_PATH_DEFAULT
    resources: Resources = Field(default_factory=Resources)
    # MLflow's word: build the environment an MLflow model logged for itself (local: none)
    env_manager: Literal["virtualenv", "uv", "conda"] | None = None
    # Azure's data_collector: what to collect of requests and answers (monitoring_specs.py)
    data_collector: DataCollector | None = None
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)

    @field_validator("environment_variables", mode="before")
    @classmethod
    def _env(cls, v):
        return {str(k): str(x) for k, x in _mapping(v).items()}

    @field_validator("fast_path", mode="before")
    @classmethod
    def _fast_path(cls, v):   # YAML's booleans, or the words (any case, from --set)
        word = {"true": True, "false": False, "required": "required"}.get(str(v).strip().lower(), v)
        if word is not None and not isinstance(word, bool) and word != "required":
            raise ValueError(f"{v!r} is not a fast_path setting: use true, false or required")
        return FAST_PATH_DEFAULT if word is None else word

    _data_collector = field_validator("data_collector", mode="before")(classmethod(lambda cls, v: data_collector(v)))

    @field_validator("env_manager", mode="before")
    @classmethod
    def _env_manager(cls, v):
        return None if v in (None, "", "local") else v

    @model_validator(mode="after")
    def _one_environment(self):
        if self.ASKS_ONE_ENVIRONMENT and getattr(self, "environment", None) is not None \
                and self.env_manager is not None:
            raise ValueError("give environment or env_manager, not both")
        return self


# The settings a deployment carries, named once: the SDK sends them, views show them, plans compare them.
SETTINGS_FIELDS = tuple(k for k in DeploymentSettings.model_fields if k != "schema_")


class DeploymentSpec(DeploymentSettings):
    AZURE_ONLY = frozenset({"instance_type", "app_insights_enabled",
                            "egress_public_network_access", "properties", "type",
                            "model_mount_path", "private_network_connection", "code_path"})
    name: str
    endpoint_name: str | None = None
    model: str | InlineModel
    code_configuration: CodeConfiguration | None = None
    environment: InlineEnvironment | str | None = None

    _name = field_validator("name")(classmethod(lambda cls, v: _check_endpoint_name(v)))

    @field_validator("environment")
    @classmethod
    def _environment(cls, v):
        return _environment_ref(v) if isinstance(v, str) else v

    @field_validator("endpoint_name")
    @classmethod
    def _endpoint(cls, v):
        return None if v is None else _check_endpoint_name(v)

    @field_validator("model")
    @classmethod
    def _model(cls, v):
        if isinstance(v, str):
            try:
                ModelRef.parse(v)
            except Exception as e:
                raise ValueError(str(e)) from None
        return v

    @model_validator(mode="after")
    def _placement(self):
        check_shared(self.placement, self.code_configuration is not None, self.environment_variables,
                     self.environment is not None or self.env_manager is not None)
        return self




_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class CodeRef(Spec):
    """A code snapshot already in the store: names inside it only, never a path out of it."""
    sha256: str
    root: str
    scoring_script: str

    @field_validator("sha256")
    @classmethod
    def _sha(cls, v: str) -> str:
        if not _SHA256.match(v):
            raise ValueError("must be 64 lowercase hex digits")
        return v

    @field_validator("root", "scoring_script")
    @classmethod
    def _inside(cls, v: str) -> str:
        parts = v.replace("\\", "/").split("/")
        if not v or "\0" in v or v.startswith("/") or any(x in ("", ".", "..") for x in parts):
            raise ValueError("must be a relative path inside the code snapshot (no '..', '.', '/' at the start)")
        return v


class DeploymentBody(DeploymentSettings):
    """The control API's deployment body: settings, a model reference, a stored code snapshot and
    an environment reference (stored as name:version once resolved)."""
    model: str
    code: CodeRef | None = None
    environment: str | None = None

    _environment = field_validator("environment")(classmethod(lambda cls, v: _environment_ref(v)))

    @model_validator(mode="after")
    def _placement(self):
        check_shared(self.placement, self.code is not None, self.environment_variables,
                     self.environment is not None or self.env_manager is not None)
        return self


class DeploymentRecord(DeploymentBody):
    """A deployment's desired state as the store keeps it: the model resolved to name:version, and
    the environment too (for an env_manager, the one derived from the model)."""
    ASKS_ONE_ENVIRONMENT = False
    model_type: str
    model_sha256: str

    @property
    def effective_placement(self) -> str:
        return resolve_placement(self.placement, self.model_type, code=self.code is not None,
                                 environment_variables=self.environment_variables,
                                 environment=self.environment is not None or self.env_manager is not None)


class EndpointSpec(Spec):
    AZURE_ONLY = frozenset({"identity", "public_network_access", "kind", "properties", "location"})
    name: str
    auth_mode: Literal["key", "none"] = "key"
    compute: str = "local"
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    traffic: dict[str, int] | None = None
    mirror_traffic: dict[str, int] | None = None

    _name = field_validator("name")(classmethod(lambda cls, v: _check_endpoint_name(v)))

    @field_validator("auth_mode", mode="before")
    @classmethod
    def _auth(cls, v):
        # Azure's enums are case-insensitive (Key, AMLToken); its token modes need Azure AD, and
        # locally a key is the equivalent.
        v = str(v).lower() if v is not None else "key"
        if v in ("aml_token", "amltoken", "aad_token", "aadtoken"):
            return "key"
        if v not in ("key", "none"):
            raise ValueError(f"{v!r} is not an auth mode: use key, aml_token or none")
        return v

    @field_validator("compute", mode="before")
    @classmethod
    def _compute(cls, v):
        # `compute: azureml:NAME` names a compute as Azure does; the name is what is kept.
        v = str(v or "local").strip()
        v = v[len("azureml:"):] if v.lower().startswith("azureml:") else v
        try:
            return check_name(v, "compute name")
        except InvalidInput as e:
            raise ValueError(e.message) from None


class FleetSpec(Spec):
    AZURE_ONLY = frozenset({"workspace"})
    models: list[ModelSpec] = Field(default_factory=list)
    endpoints: list[EndpointSpec] = Field(default_factory=list)
    deployments: list[DeploymentSpec] = Field(default_factory=list)


KINDS: dict[str, type[Spec]] = {"model": ModelSpec, "endpoint": EndpointSpec, "environment": EnvironmentSpec,
                                "deployment": DeploymentSpec, "fleet": FleetSpec}


def format_loc(loc: tuple, prefix: str = "") -> str:
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("str", "dict[any,any]", "list[str]", "InlineModel", "InlineEnvironment",
                      "function-after[_model(), str]") or str(part).startswith(("function-", "constrained-")):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out


def validate(kind: type[Spec], data: Any, where: str = "") -> Spec:
    """Validate `data` as `kind`; the first problem becomes one SpecError naming its field path."""
    if not isinstance(data, dict):
        raise SpecError(f"{where or 'document'}: expected a mapping of fields, got {type(data).__name__}")
    try:
        return kind.model_validate(data)
    except ValidationError as e:
        errors = e.errors()
        # A field with alternatives (a model reference or an inline model) fails on each of them:
        # the deepest error is the one about what was actually given.
        err = max((x for x in errors if x["loc"][:1] == errors[0]["loc"][:1]), key=lambda x: len(x["loc"]))
        loc = format_loc(tuple(err["loc"]))
        msg = err["msg"].removeprefix("Value error, ")
        head = f"{where}: " if where else ""
        raise SpecError(f"{head}{loc + ': ' if loc else ''}{msg}") from None
