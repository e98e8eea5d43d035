"""Azure's curated environments and inference images, as package sets that uv builds.

Azure's scripts name environments Azure prepared: curated ones by registry URI or workspace name
(`azureml://registries/azureml/environments/sklearn-1.5/labels/latest`,
`azureml:AzureML-sklearn-1.0-ubuntu20.04-py38-cpu@latest`), and Docker images
(`mcr.microsoft.com/azureml/minimal-py312-inference`). There is no Docker here: each curated
environment of the catalog below is the PyPI packages its image carries for inference (exact
pins, so every machine builds the same thing), and Azure's inference images are the server's
Python plus the Azure inference HTTP server and its scoring helpers (`inference_schema`,
`azureml.contrib.services`). A curated version registers as `AzureML-NAME:VERSION`, the name
Azure gives curated environments in a workspace; VERSION is the catalog's, bumped when its
packages change. Each entry is built by tests/test_curated_environments.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["CATALOG", "IMAGE_PACKAGES", "Curated", "is_inference_image", "lookup", "registry_uri"]

# What Azure's inference images carry for a score.py, beyond Python (pinned: built the same everywhere).
IMAGE_PACKAGES = ("azureml-inference-server-http==1.4.1", "inference-schema[numpy-support]==1.8")
INFERENCE_IMAGES = "mcr.microsoft.com/azureml/"


@dataclass(frozen=True)
class Curated:
    name: str                       # Azure's curated name: sklearn-1.5
    version: str                    # of this mapping
    requirements: tuple[str, ...]
    python: str | None = None       # a pin (interpreters.py finds it), None: the server's
    aliases: tuple[str, ...] = ()   # Azure's older names for the same environment

    @property
    def registered_name(self) -> str:
        return f"AzureML-{self.name}"

    @property
    def ref(self) -> str:
        return f"{self.registered_name}:{self.version}"

    def mapped_to(self) -> str:
        python = f"Python {self.python.removeprefix('==').removesuffix('.*')}" if self.python else "the server's Python"
        return f"{python} + {', '.join(self.requirements)}"


CATALOG: tuple[Curated, ...] = (
    Curated("sklearn-1.5", "1", ("scikit-learn==1.5.2", "numpy==1.26.4", "scipy==1.13.1", "pandas==2.2.3",
                                 "joblib==1.4.2", *IMAGE_PACKAGES)),
    Curated("sklearn-1.0", "1", ("scikit-learn==1.0.2", "numpy==1.23.5", "scipy==1.9.3", "pandas==1.5.3",
                                 "joblib==1.2.0", *IMAGE_PACKAGES), python="==3.10.*",
            aliases=("sklearn-1.0-ubuntu20.04-py38-cpu",)),
    Curated("lightgbm-3.3", "1", ("lightgbm==3.3.5", "scikit-learn==1.5.2", "numpy==1.26.4", "scipy==1.13.1",
                                  "pandas==2.2.3", *IMAGE_PACKAGES)),
    Curated("minimal-py312-inference", "1", IMAGE_PACKAGES, python="==3.12.*",
            aliases=("minimal-ubuntu22.04-py39-cpu-inference", "minimal-ubuntu20.04-py38-cpu-inference")),
)
_BY_NAME = {n.lower(): c for c in CATALOG for n in (c.name, *c.aliases)}
_REGISTRY = re.compile(r"^azureml://registries/azureml/environments/(?P<name>[^/]+)/(labels|versions)/[^/]+$")


def _catalog_name(ref: str) -> str | None:
    """The curated name an Azure reference points at, if it is one (not yet checked against the catalog)."""
    text = ref.strip()
    m = _REGISTRY.match(text)
    if m:
        return m["name"]
    text = text.removeprefix("azureml:")
    name = re.split(r"[@:]", text, maxsplit=1)[0]
    return name[len("AzureML-"):] if name.lower().startswith("azureml-") else None


def lookup(ref: str) -> Curated | None:
    """The catalog entry `ref` names, None if it names no curated environment; a curated one the
    catalog lacks is refused in one line."""
    from .errors import InvalidInput
    name = _catalog_name(ref)
    if name is None:
        return None
    found = _BY_NAME.get(name.lower())
    if found is None:
        known = ", ".join(c.name for c in CATALOG)
        raise InvalidInput(f"environment {ref!r}: Azure's curated environment {name!r} is not in modelfleet's "
                           f"catalog ({known}); create an environment with its packages instead "
                           "(fleet environment create --conda-file ...)")
    return found


def registry_uri(ref: str) -> bool:
    return ref.strip().startswith("azureml://")


def is_inference_image(image: str | None) -> bool:
    """Azure's inference base images (their packages are IMAGE_PACKAGES)."""
    return bool(image) and image.strip().lower().startswith(INFERENCE_IMAGES)
