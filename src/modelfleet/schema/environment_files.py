"""What an environment asks for, read from the files people already have.

An Azure `conda_file`, a pip requirements.txt, or an MLflow model's python_env.yaml,
requirements.txt or conda.yaml become one `EnvironmentContent`: PEP 508 requirements that uv
installs from the package index, index options, and an optional Python pin.

Nothing here runs conda. A conda dependency becomes the PyPI requirement of the same name
(`numpy=1.23` -> `numpy==1.23.*`; a few packages are renamed, `pytorch` -> `torch`); conda's own
tools and the packages PyPI lacks (system libraries, compilers, CUDA toolkits) are refused by
name. A Python pin is met when the environment is built, by an interpreter found on the machine
(interpreters.py).
"""

from __future__ import annotations

import hashlib
import platform
import re
from dataclasses import dataclass
from pathlib import Path

import orjson
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from . import yaml_files
from ..domain import curated
from ..domain.errors import InvalidInput, SpecError

# conda names whose PyPI package is called differently
CONDA_TO_PYPI = {"pytorch": "torch", "pytorch-cpu": "torch", "py-xgboost": "xgboost", "py-xgboost-cpu": "xgboost",
                 "matplotlib-base": "matplotlib", "msgpack-python": "msgpack", "pytables": "tables",
                 "py-opencv": "opencv-python", "opencv": "opencv-python", "pyqt": "pyqt5"}
# conda packages with no PyPI counterpart: pieces of the interpreter and the system, compilers, CUDA
CONDA_ONLY = frozenset({
    "cudatoolkit", "cudnn", "nccl", "cuda-toolkit", "cuda-nvcc", "magma", "libgcc-ng", "libgcc", "libstdcxx-ng",
    "libgfortran-ng", "libgfortran5", "libgomp", "ld_impl_linux-64", "openssl", "ca-certificates", "libffi",
    "ncurses", "readline", "sqlite", "tk", "xz", "zlib", "libzlib", "bzip2", "libuuid", "libnsl", "libsqlite",
    "icu", "libiconv", "openmpi", "mpich", "blas", "libblas", "libcblas", "liblapack", "libopenblas", "openblas",
    "gcc", "gxx", "gcc_linux-64", "gxx_linux-64", "gfortran", "make", "conda", "mamba", "conda-build", "r-base",
})
# conda's packaging tools: uv installs without them
CONDA_TOOLS = frozenset({"pip", "python"})
# the requirements-file options an environment may carry (where its packages come from)
INDEX_OPTIONS = {"-i": "--index-url", "--index-url": "--index-url", "--extra-index-url": "--extra-index-url",
                 "-f": "--find-links", "--find-links": "--find-links"}
MAX_INCLUDE_DEPTH = 8


@dataclass(frozen=True)
class EnvironmentContent:
    """The packages an environment asks for; equal content, equal `sha256`."""
    requirements: tuple[str, ...]      # PEP 508, as written (conda ones translated)
    options: tuple[str, ...] = ()      # "--index-url URL", "--extra-index-url URL", "--find-links URL"
    python: str | None = None          # a PEP 440 specifier the interpreter must meet, e.g. "==3.9.*"
    from_conda: tuple[str, ...] = ()   # canonical names that came from conda dependencies

    @property
    def sha256(self) -> str:
        # Order does not change what gets installed, so it does not change the hash either.
        return hashlib.sha256(orjson.dumps({"requirements": sorted(self.requirements), "options": list(self.options),
                                            "python": self.python}, option=orjson.OPT_SORT_KEYS)).hexdigest()

    def to_dict(self) -> dict:
        return {"requirements": list(self.requirements), "options": list(self.options), "python": self.python,
                "from_conda": list(self.from_conda)}

    @classmethod
    def from_dict(cls, d: dict) -> EnvironmentContent:
        return cls(tuple(d.get("requirements") or ()), tuple(d.get("options") or ()), d.get("python"),
                   tuple(d.get("from_conda") or ()))


# -- conda ------------------------------------------------------------------------------------

_CONDA_SPEC = re.compile(r"^(?:[^:\s]+::)?(?P<name>[A-Za-z0-9_][A-Za-z0-9_.\-]*)\s*(?P<rest>.*)$")


def _conda_specifier(rest: str, dep: str, where: str) -> str:
    """A conda version constraint as a PEP 440 specifier ("" = any version). conda's `=1.2` is a
    prefix match (1.2, 1.2.5), `==1.2` an exact one, `1.2 build` a version and a build string."""
    rest = rest.strip()
    if not rest:
        return ""
    if rest.startswith("=") and not rest.startswith("=="):
        version = rest[1:].split("=", 1)[0].strip()   # "=1.2=py39_0": the build string goes
        spec = f"=={version}" if version.endswith(".*") else f"=={version.rstrip('*').rstrip('.')}.*"
    elif rest[0] in "<>!~=":
        spec = rest.split()[0]
        if spec.startswith("==") and spec.count("=") > 2:   # "==1.2=build"
            spec = "==" + spec[2:].split("=", 1)[0]
    else:  # "1.2.* py39_0": a version then a build string
        version = rest.split()[0]
        spec = f"=={version}" if not version.endswith("*") or version.endswith(".*") \
            else f"=={version.rstrip('*').rstrip('.')}.*"
    try:
        SpecifierSet(spec)
    except InvalidSpecifier:
        raise SpecError(f"{where}: cannot read conda dependency {dep!r} as a version constraint") from None
    return spec


def conda_dependency(dep: str, where: str) -> tuple[str, str] | None:
    """One conda dependency as (canonical name, PEP 508 requirement); None for conda's own tools."""
    text = str(dep).strip()
    m = _CONDA_SPEC.match(text)
    if not m or "[" in text or "|" in text:
        raise SpecError(f"{where}: cannot read conda dependency {text!r} (use name, name=version or "
                        "name>=version)")
    name = m["name"].lower()
    if name in CONDA_TOOLS:
        return None
    if name in CONDA_ONLY or name.startswith(("r-", "_")):
        raise SpecError(f"{where}: {name!r} is a conda-only package (PyPI has no such package) and "
                        "environments are installed from PyPI: remove it, or name the PyPI package "
                        "that provides it under pip:")
    pypi = CONDA_TO_PYPI.get(name, name)
    return canonicalize_name(pypi), f"{pypi}{_conda_specifier(m['rest'], text, where)}"


def read_conda(doc, base_dir: Path | None, where: str) -> EnvironmentContent:
    """A conda environment document (`dependencies` with an optional `pip:` list)."""
    if not isinstance(doc, dict):
        raise SpecError(f"{where}: expected a conda environment (a mapping with dependencies), "
                        f"got {type(doc).__name__}")
    deps = doc.get("dependencies") or []
    if not isinstance(deps, list):
        raise SpecError(f"{where}: dependencies: expected a list")
    requirements, options, names, python = [], [], [], None
    for i, dep in enumerate(deps):
        at = f"{where}: dependencies[{i}]"
        if isinstance(dep, dict):
            if set(dep) != {"pip"} or not isinstance(dep["pip"], list):
                raise SpecError(f"{at}: expected a conda package or a `pip:` list")
            reqs, opts = read_requirement_lines([str(x) for x in dep["pip"]], base_dir, f"{at}.pip")
            requirements += reqs
            options += opts
            continue
        if not isinstance(dep, (str, int, float)):
            raise SpecError(f"{at}: expected a conda package such as numpy=1.26")
        m = _CONDA_SPEC.match(str(dep).strip())
        if m and m["name"].lower() == "python":
            python = _conda_specifier(m["rest"], str(dep), at) or None
            continue
        found = conda_dependency(str(dep), at)
        if found is not None:
            names.append(found[0])
            requirements.append(found[1])
    return EnvironmentContent(tuple(requirements), tuple(dict.fromkeys(options)), python, tuple(names))


def read_conda_file(path: str | Path) -> EnvironmentContent:
    path = Path(path)
    return read_conda(yaml_files.load_one(path), path.parent, str(path))


# -- requirements files -----------------------------------------------------------------------

def _logical_lines(lines: list[str]) -> list[tuple[int, str]]:
    """(line number, text) with comments dropped and backslash continuations joined."""
    out, buf, start = [], "", 0
    for n, raw in enumerate(lines, 1):
        line = re.sub(r"(^|\s)#.*$", "", raw).rstrip()
        if not buf:
            start = n
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        if buf.strip():
            out.append((start, buf.strip()))
        buf = ""
    if buf.strip():
        out.append((start, buf.strip()))
    return out


def read_requirement_lines(lines: list[str], base_dir: Path | None, where: str,
                           depth: int = 0) -> tuple[list[str], list[str]]:
    """(requirements, index options) of requirements-file lines; `-r FILE` is read relative to
    `base_dir`. Local paths and editable installs are refused: an environment is content that
    can be rebuilt anywhere, not a checkout on one machine."""
    requirements, options = [], []
    for n, line in _logical_lines(lines):
        at = f"{where}: line {n}" if len(lines) > 1 or depth else where
        if line.startswith("-"):
            m = re.match(r"^(--[A-Za-z-]+|-[A-Za-z])\s*=?\s*(.*)$", line)
            flag, value = m.groups() if m else (line, "")
            if flag in ("-r", "--requirement"):
                if base_dir is None or depth >= MAX_INCLUDE_DEPTH:
                    raise SpecError(f"{at}: cannot include {value!r} here")
                inc = base_dir / value
                try:
                    text = inc.read_text(encoding="utf-8")
                except OSError as e:
                    raise SpecError(f"{at}: cannot read {value!r} ({inc}): {e.strerror or e}") from None
                reqs, opts = read_requirement_lines(text.splitlines(), inc.parent, str(inc), depth + 1)
                requirements += reqs
                options += opts
            elif flag in INDEX_OPTIONS and value:
                if not re.match(r"^https?://", value):
                    raise SpecError(f"{at}: {flag} must be an http(s) URL, not {value!r}")
                options.append(f"{INDEX_OPTIONS[flag]} {value}")
            elif flag in ("-e", "--editable"):
                raise SpecError(f"{at}: editable installs ({line!r}) cannot be part of an environment")
            else:
                raise SpecError(f"{at}: option {flag!r} is not supported in an environment "
                                "(only -r, --index-url, --extra-index-url and --find-links)")
            continue
        if line.startswith((".", "/", "~")):
            raise SpecError(f"{at}: local paths ({line!r}) cannot be part of an environment")
        try:
            req = Requirement(line)
        except InvalidRequirement:
            raise SpecError(f"{at}: {line!r} is not a requirement such as scikit-learn==1.5.2") from None
        if req.url and req.url.startswith("file:"):
            raise SpecError(f"{at}: local paths ({line!r}) cannot be part of an environment")
        requirements.append(str(req))
    return requirements, options


def read_requirements_file(path: str | Path) -> EnvironmentContent:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"file {str(path)!r} not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SpecError(f"{path}: cannot read: {getattr(e, 'strerror', None) or e}") from None
    reqs, opts = read_requirement_lines(text.splitlines(), path.parent, str(path))
    return EnvironmentContent(tuple(reqs), tuple(dict.fromkeys(opts)))


def read_requirements(values: list[str], where: str) -> EnvironmentContent:
    reqs, opts = read_requirement_lines([str(v) for v in values], None, where)
    return EnvironmentContent(tuple(reqs), tuple(dict.fromkeys(opts)))


# -- MLflow models ----------------------------------------------------------------------------

ENV_MANAGERS = ("virtualenv", "uv", "conda")


def read_mlflow_model(model_dir: Path, manager: str, where: str) -> EnvironmentContent:
    """The environment an MLflow model logged for itself, as MLflow's env managers read it:
    virtualenv and uv use python_env.yaml (its python and `-r requirements.txt`), conda uses
    conda.yaml."""
    found = sorted(model_dir.rglob("MLmodel"))
    if not found:
        raise InvalidInput(f"{where}: no MLmodel file: --env-manager applies to MLflow models")
    root = found[0].parent
    if manager == "conda" or not (root / "python_env.yaml").is_file() and not (root / "requirements.txt").is_file():
        if (root / "conda.yaml").is_file():
            return read_conda_file(root / "conda.yaml")
        raise InvalidInput(f"{where}: the model logged no conda.yaml, python_env.yaml or requirements.txt: "
                           "name an environment instead of --env-manager")
    if not (root / "python_env.yaml").is_file():
        return read_requirements_file(root / "requirements.txt")
    doc = yaml_files.load_one(root / "python_env.yaml")
    deps = doc.get("dependencies") or []
    if not isinstance(deps, list):
        raise SpecError(f"{root / 'python_env.yaml'}: dependencies: expected a list")
    reqs, opts = read_requirement_lines([str(d) for d in deps], root, str(root / "python_env.yaml"))
    python = f"=={doc['python']}" if doc.get("python") else None
    return EnvironmentContent(tuple(reqs), tuple(dict.fromkeys(opts)), python)


# -- the interpreter --------------------------------------------------------------------------

def _release(text: str) -> tuple[int, ...]:
    return Version(text.removesuffix(".*")).release


def python_allows(pin: str | None, version: str | None = None) -> bool:
    """Whether this interpreter meets `pin`. Exact pins are compared by major.minor: wheels are
    built per minor version, so a model logged on 3.11.4 runs on 3.11.9."""
    if not pin:
        return True
    version = version or platform.python_version()
    spec = SpecifierSet(pin)
    if spec.contains(version, prereleases=True):
        return True
    try:
        return all(s.operator in ("==", "===") and _release(s.version)[:2] == _release(version)[:2] for s in spec)
    except InvalidVersion:
        return False


def shown_pin(pin: str) -> str:
    """A pin as people write it: `==3.12.*` is 3.12."""
    return pin[2:].removesuffix(".*") if pin.startswith("==") else pin


ANONYMOUS = "CliV2AnonymousEnvironment"   # Azure's name for environments written inline


def content_of(spec, base_dir: Path) -> tuple[EnvironmentContent, dict]:
    """What `spec` asks for, and the source document kept with the version (for `show`). An image
    alone must be one of Azure's inference images (see Environments.runs_on_default)."""
    if spec.conda_file is None and spec.requirements is None:
        if not curated.is_inference_image(spec.image):
            raise InvalidInput(f"image {spec.image!r} is not one of Azure's inference images "
                               f"({curated.INFERENCE_IMAGES}...): give a conda_file with the packages it needs")
        return EnvironmentContent(curated.IMAGE_PACKAGES), {
            "image": spec.image, "mapped_to": f"the server's Python + {', '.join(curated.IMAGE_PACKAGES)}"}
    if isinstance(spec.conda_file, dict):
        return read_conda(spec.conda_file, base_dir, "conda_file"), {"conda_file": spec.conda_file}
    if spec.conda_file is not None:
        path = Path(spec.conda_file).expanduser()
        path = path if path.is_absolute() else base_dir / path
        if path.suffix.lower() == ".txt":  # a plain requirements.txt given as the conda file
            return read_requirements_file(path), {"requirements_file": path.name}
        return read_conda_file(path), {"conda_file": yaml_files.load_one(path), "file": path.name}
    if isinstance(spec.requirements, list):
        return read_requirements(spec.requirements, "requirements"), {"requirements": spec.requirements}
    path = Path(spec.requirements).expanduser()
    path = path if path.is_absolute() else base_dir / path
    return read_requirements_file(path), {"requirements_file": path.name}
