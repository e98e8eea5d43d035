"""The Python an environment runs on: the version it asks for, found on this machine.

    discover(pythons)       the interpreters found: uv's discovery (`uv python list --only-installed`),
                            pyenv's versions folder and the operator's list (server setting `pythons`)
    Policy.choose(pin)      the interpreter for a pin: the server's own when it meets the pin, else
                            one found, else (python_downloads on) one `uv python install` fetched,
                            else by the policy: `strict` refuses in one line, `nearest` builds on
                            the nearest minor version found and says so (the build log, `show`)

Only the versions modelfleet's replica runtime runs on (SUPPORTED) are candidates: a replica in
an environment imports modelfleet's runtime from the server's package under the environment's
interpreter. Discovery runs each candidate once to ask its version and real path (pyenv's shims
and PATH links lead to one executable). The quick places (the setting, pyenv) are looked at
first; uv's discovery, which can take seconds, only when they lack the version, and its answer is
kept for DISCOVERY_TTL_S.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..domain.errors import FleetError, InvalidInput
from ..schema.environment_files import python_allows, shown_pin
from .builder import Interpreter, uv_binary

__all__ = ["SUPPORTED", "Choice", "Policy", "discover"]

SUPPORTED = ((3, 10), (3, 11), (3, 12), (3, 13))   # what runtime/ runs on
POLICIES = ("nearest", "strict")
_SUPPORTED = f" as a supported version ({SUPPORTED[0][0]}.{SUPPORTED[0][1]}-{SUPPORTED[-1][0]}.{SUPPORTED[-1][1]})"
DISCOVERY_TTL_S = 300.0
_PROBE = ("import json, platform, sys, sysconfig; print(json.dumps([platform.python_implementation(), "
          "platform.python_version(), sys.executable, sysconfig.get_platform()]))")


def _minor(version: str) -> tuple[int, int]:
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


_probed: dict[tuple[str, float], Interpreter | None] = {}   # by path and modification time


def _probe(executable: str) -> Interpreter | None:
    """The interpreter `executable` really is (a shim or link resolved), if it runs and is supported;
    each file is run once while it is unchanged."""
    try:
        key = (executable, os.stat(executable).st_mtime)
    except OSError:
        return None
    if key not in _probed:
        _probed[key] = _run_probe(executable)
    return _probed[key]


def _run_probe(executable: str) -> Interpreter | None:
    try:
        out = subprocess.run([executable, "-I", "-c", _PROBE], capture_output=True, text=True, timeout=20,
                             stdin=subprocess.DEVNULL)
        impl, version, real, plat = json.loads(out.stdout)
    except (OSError, ValueError, subprocess.SubprocessError):
        return None
    if impl != "CPython" or _minor(version) not in SUPPORTED or not real:
        return None
    return Interpreter(os.path.realpath(real), version, plat)


def _uv_candidates() -> list[str]:
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "NO_COLOR": "1"}
    try:
        out = subprocess.run([uv_binary(), "--no-config", "python", "list", "--only-installed",
                              "--output-format", "json"], capture_output=True, text=True, timeout=60, env=env,
                             stdin=subprocess.DEVNULL)
        return [e["path"] for e in json.loads(out.stdout or "[]") if e.get("path")]
    except (OSError, ValueError, KeyError, TypeError, subprocess.SubprocessError, FleetError):
        return []   # uv missing or failing: the other places still count


def pyenv_versions() -> Path:
    return Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"


def _pyenv_candidates() -> list[str]:
    found = []
    root = pyenv_versions()
    if root.is_dir():
        for d in sorted(root.iterdir()):
            try:
                if _minor(d.name) not in SUPPORTED:   # 3.12.1: skip the unsupported without running them
                    continue
            except ValueError:
                continue
            exe = d / "bin" / "python3"
            if exe.exists():
                found.append(str(exe))
    return found


def where_looked(pythons: tuple[str, ...]) -> str:
    places = ["uv's discovery (PATH, uv-managed)", str(pyenv_versions())]
    if pythons:
        places.append("the pythons setting (" + ", ".join(pythons) + ")")
    return "; ".join(places)


def discover(pythons: tuple[str, ...] = (), uv: bool = True) -> list[Interpreter]:
    """Every supported interpreter found, one per real executable, newest version first (`uv`:
    with uv's discovery too, which can take seconds where PATH has broken shims)."""
    seen: dict[str, Interpreter] = {}
    for exe in [*pythons, *_pyenv_candidates(), *(_uv_candidates() if uv else [])]:
        found = _probe(exe)
        if found is not None and found.executable not in seen:
            seen[found.executable] = found
    return sorted(seen.values(), key=lambda i: tuple(int(x) for x in i.version.split(".")[:3] if x.isdigit()),
                  reverse=True)


@dataclass(frozen=True)
class Choice:
    interpreter: Interpreter
    note: str | None = None   # why it is not what the environment asked for (a warning), if it is not


class Policy:
    """How an environment's Python pin is met on this machine (the server settings `python_policy`,
    `pythons` and `python_downloads`)."""

    def __init__(self, mode: str = POLICIES[0], pythons: tuple[str, ...] = (), downloads: bool = False,
                 server: Interpreter | None = None):
        if mode not in POLICIES:
            raise InvalidInput(f"python_policy {mode!r}: use {' or '.join(POLICIES)}")
        self.mode = mode
        self.pythons = tuple(pythons)
        self.downloads = downloads
        self.server = server or Interpreter.current()
        self._lock = threading.Lock()
        self._found: tuple[float, list[Interpreter]] | None = None

    @classmethod
    def of_settings(cls, settings) -> Policy:
        return cls(settings.python_policy, tuple(settings.pythons), settings.python_downloads)

    def found(self, everywhere: bool = True) -> list[Interpreter]:
        """The interpreters in the usual places (the setting, pyenv: quick), and with `everywhere`
        those uv's discovery finds too (kept for DISCOVERY_TTL_S)."""
        if not everywhere:
            return discover(self.pythons, uv=False)
        with self._lock:
            if self._found is None or time.monotonic() - self._found[0] > DISCOVERY_TTL_S:
                self._found = (time.monotonic(), discover(self.pythons))
            return self._found[1]

    def choose(self, pin: str | None, what: str) -> Choice:
        """The interpreter for an environment pinning `pin` (None: any), or InvalidInput under strict."""
        if python_allows(pin, self.server.version):
            return Choice(self.server)
        return self._find(pin, what)

    def _find(self, pin: str, what: str) -> Choice:
        for it in self.found(everywhere=False):
            if python_allows(pin, it.version):
                return Choice(it)
        found = self.found()
        for it in found:
            if python_allows(pin, it.version):
                return Choice(it)
        if self.downloads:
            it = self._install(pin)
            if it is not None:
                return Choice(it)
        looked = where_looked(self.pythons)
        wanted = shown_pin(pin)
        if self.mode == "strict":
            raise InvalidInput(f"{what} asks for Python {wanted}, which is not installed{_SUPPORTED} "
                               f"(looked in: {looked}; "
                               f"downloads {'failed' if self.downloads else 'off'}); python_policy strict: "
                               "install it, or pin one of "
                               f"{', '.join(sorted({i.minor for i in found} | {self.server.minor})) or 'none'}")
        nearest = self._nearest(pin, [*found, self.server])
        return Choice(nearest, f"Python {wanted} is not installed{_SUPPORTED} (looked in: {looked}); built on Python "
                               f"{nearest.version}, the nearest found (python_policy nearest)")

    @staticmethod
    def _nearest(pin: str, candidates: list[Interpreter]) -> Interpreter:
        target = _target(pin)
        if target is None:
            return candidates[-1]   # the server's
        return min(candidates, key=lambda i: (abs(_minor(i.version)[1] - target[1]) + 100 * abs(
            _minor(i.version)[0] - target[0]), -_minor(i.version)[1]))

    def _install(self, pin: str) -> Interpreter | None:
        """`uv python install` of the pinned minor version, where the operator allows downloads."""
        target = _target(pin)
        if target is None or target not in SUPPORTED:
            return None
        request = f"{target[0]}.{target[1]}"
        env = {**os.environ, "UV_PYTHON_DOWNLOADS": "automatic"}
        try:
            subprocess.run([uv_binary(), "--no-config", "python", "install", request], capture_output=True,
                           timeout=600, env=env, stdin=subprocess.DEVNULL, check=True)
            out = subprocess.run([uv_binary(), "--no-config", "python", "find", request], capture_output=True,
                                 text=True, timeout=60, env=env, stdin=subprocess.DEVNULL, check=True)
        except (OSError, subprocess.SubprocessError):
            return None
        with self._lock:
            self._found = None
        return _probe(out.stdout.strip())


def _target(pin: str) -> tuple[int, int] | None:
    """The major.minor a pin names first (`==3.12.*`, `>=3.9`), if any."""
    m = re.search(r"(\d+)\.(\d+)", pin or "")
    return (int(m[1]), int(m[2])) if m else None
