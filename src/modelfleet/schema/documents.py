"""The documents users write, with Azure ML v2's field names: model, environment, endpoint and
deployment YAML, and a whole fleet file.

Azure files work unchanged: `$schema` is accepted, and fields that have no meaning on modelfleet
(`instance_type`, an environment's `image`, ...) are accepted with a notice. Any other unknown field is an
error naming its path, so typos do not pass silently.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from ..domain import curated
from ..domain.errors import InvalidInput
from ..domain.names import ModelRef, check_name
from .deployment_settings import CodeConfiguration, DeploymentSettings
from .validation import Spec, _check_endpoint_name, _check_name, _check_version, _mapping, _model_type, _version


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
    inference images is the packages it carries (domain/curated.py), any other the default environment."""
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
        self._check_placement(self.code_configuration is not None)
        return self


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
