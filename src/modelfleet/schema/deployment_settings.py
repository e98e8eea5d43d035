"""A deployment's settings, shared by its YAML document, the control API's body and the stored
record: requests, probes, batching, resources, scaling, placement. Every default is written here,
once."""

from __future__ import annotations

import re
from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from ..domain.model_types import FAST_PATH_DEFAULT
from ..domain.placement import Placement, check_shared
from .monitoring import DataCollector, data_collector
from .validation import Spec, _mapping


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
    # modelfleet's field: replicas that may start beyond the wanted count while every replica is
    # stuck in a model call (server/control/spares.py); within max_instances when autoscaled
    spare_instances: int = Field(default=1, ge=0, le=16)

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
    # Azure's data_collector: what to collect of requests and answers (schema/monitoring.py)
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

    def _check_placement(self, has_code: bool) -> None:
        """`placement: shared` only for what a shared worker can run (placement.py's rule)."""
        check_shared(self.placement, has_code, self.environment_variables,
                     getattr(self, "environment", None) is not None or self.env_manager is not None)

    @model_validator(mode="after")
    def _one_environment(self):
        if self.ASKS_ONE_ENVIRONMENT and getattr(self, "environment", None) is not None \
                and self.env_manager is not None:
            raise ValueError("give environment or env_manager, not both")
        return self


# The settings a deployment carries, named once: the SDK sends them, views show them, plans compare them.
SETTINGS_FIELDS = tuple(k for k in DeploymentSettings.model_fields if k != "schema_")
