"""What crosses the control API and what the store keeps of a deployment: the body a client sends
(a model reference, an uploaded code snapshot, an environment reference) and the record it becomes
(the model resolved to name:version, its type and sha256)."""

from __future__ import annotations

import re

from pydantic import field_validator, model_validator

from ..domain.placement import resolve_placement
from .deployment_settings import DeploymentSettings
from .documents import _environment_ref
from .validation import Spec


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
        self._check_placement(self.code is not None)
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
