"""Where a deployment's replicas run: `placement: shared` (one model among many in a multi-model
worker, backends/shared.py) or `dedicated` (a process of its own), and the default for a model.

A stored spec keeps `placement` as written (None: the default, which follows the model: its type,
a scoring script, environment variables, an environment). Views show the placement in effect;
`written_placement` turns a view back into what a document would write.
"""

from __future__ import annotations

from typing import Literal

from .errors import InvalidInput
from .model_types import NO_CODE_TYPES

Placement = Literal["shared", "dedicated"]


def _not_shareable(model_type: str | None, code: bool, environment_variables: dict | None,
                   environment: bool) -> str | None:
    """Why a deployment needs a process of its own (None: it can share a multi-model worker)."""
    if code:
        return "a scoring script gets a process of its own (its init() may do anything)"
    if environment_variables:
        return "environment_variables are a process's own (a shared worker is one process for many models)"
    if environment:
        return "an environment (or env_manager) has its own Python; shared workers run the server's"
    if model_type not in NO_CODE_TYPES:
        return f"shared workers serve {', '.join(NO_CODE_TYPES)} models; this model is of type {model_type}"
    return None


def default_placement(model_type: str | None, *, code: bool, environment_variables: dict | None,
                      environment: bool = False) -> str:
    """Where a deployment runs when its spec does not say: a no-code model (sklearn, ONNX, MLflow)
    in the server's own Python, without a scoring script or environment variables, shares a
    multi-model worker; anything else gets a process of its own."""
    return "dedicated" if _not_shareable(model_type, code, environment_variables, environment) else "shared"


def resolve_placement(placement: str | None, model_type: str | None, *, code: bool,
                      environment_variables: dict | None, environment: bool = False) -> str:
    """The placement a deployment gets; InvalidInput when `placement: shared` cannot apply."""
    if placement != "shared":
        return placement or default_placement(model_type, code=code, environment_variables=environment_variables,
                                              environment=environment)
    why = _not_shareable(model_type, code, environment_variables, environment)
    if why:
        raise InvalidInput(f"placement: shared does not apply: {why}; use placement: dedicated")
    return "shared"


def placement_of(deployment: dict) -> str:
    """A stored spec's or a view's placement: as written, or the default for its model."""
    return deployment.get("placement") or default_placement(
        deployment.get("model_type"), code=bool(deployment.get("code")),
        environment_variables=deployment.get("environment_variables"),
        environment=bool(deployment.get("environment") or deployment.get("env_manager")))


def written_placement(deployment: dict) -> str | None:
    """A deployment view's placement as a document would write it: None when it is the default
    for its model (views show the placement in effect; a copy must not pin the default)."""
    placement = deployment.get("placement")
    return None if placement == placement_of({**deployment, "placement": None}) else placement


def check_shared(placement: str | None, code: bool, environment_variables: dict, environment: bool) -> None:
    """`placement: shared` where it cannot apply, as a field error (the model's type is checked
    once the model is resolved)."""
    if placement == "shared":
        try:
            resolve_placement(placement, NO_CODE_TYPES[0], code=code, environment_variables=environment_variables,
                              environment=environment)
        except InvalidInput as e:
            raise ValueError(e.message) from None
