"""Building environments: one virtualenv per distinct resolution, made by uv from a shared cache.

    resolve(requirements)   `uv pip compile`: exact versions for this Python and platform (the lock)
    key(lock)               sha256 of the lock, the interpreter and the platform: names the venv
    build(key, lock)        `uv venv` + `uv pip sync` into a temporary directory, renamed into place

Layout (`root` is a workspace's environments/ directory, `cache` uv's cache under FLEET_HOME):

    <root>/<key[:16]>/               a complete virtualenv (modelfleet-env.json is written last)
    <root>/.tmp-<key[:16]>-<random>/ a build under way (removed when it fails)
    <cache>/                         shared by every workspace under FLEET_HOME

uv installs by hard-linking files out of its cache, so environments that share packages share
their bytes (when the cache and the environments are on one filesystem; otherwise uv copies).
Only wheels are installed, so no compiler runs on the server, and no interpreter is downloaded
here: a venv's Python is the server's own or one found on the machine (interpreters.py), named by
its path (`--python PATH`, UV_PYTHON_DOWNLOADS=never).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import re
import secrets
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import orjson

from ..domain.errors import BuildFailed
from ..files.fsutil import atomic_write, file_lock

Progress = Callable[[str], None]

# What modelfleet's replica runtime imports inside every environment (runtime/replica.py and the
# no-code loaders), added to each environment's own requirements.
RUNTIME_REQUIREMENTS = ("orjson>=3.9", "numpy")
LAYOUT = 1        # bump when the way venvs are built changes: every key changes with it
MARKER = "modelfleet-env.json"
LOCK_FILE = "modelfleet-lock.txt"


def _quiet(_line: str) -> None:
    pass


@dataclass(frozen=True)
class Interpreter:
    """A Python an environment is built on: the server's own, or one found on the machine."""
    executable: str
    version: str     # 3.11.7
    platform: str    # linux-x86_64

    @property
    def minor(self) -> str:
        return ".".join(self.version.split(".")[:2])

    @classmethod
    def current(cls) -> Interpreter:
        return cls(sys.executable, platform.python_version(), sysconfig.get_platform())


def uv_binary() -> str:
    """uv from the `uv` package (a dependency of modelfleet), else the one on PATH."""
    try:
        from uv import find_uv_bin
        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if found:
            return found
    raise BuildFailed("uv is not installed: pip install uv")


def explain(lines: list[str], what: str, interpreter: Interpreter, from_conda: tuple[str, ...] = ()) -> str:
    """uv's failure as one line that names the package (uv wraps its messages: they are joined)."""
    text = re.sub(r"\s+", " ", " ".join(lines))
    m = re.search(r"Because (\S+?) was not found in the package registry", text)
    if m:
        name = re.split(r"[=<>!~\[;]", m[1])[0]
        hint = (" (it comes from the conda dependencies: conda-only packages cannot be installed here)"
                if name.lower().replace("_", "-") in from_conda else "")
        return f"{what}: package {name!r} was not found in the package index{hint}"
    m = re.search(r"Because (\S+) has no usable wheels", text)
    if m:
        return (f"{what}: {m[1]} has no wheel for Python {interpreter.minor} on {interpreter.platform} "
                "(environments install wheels only: no compiler runs on the server)")
    m = re.search(r"Because there is no version of (\S+)", text)
    if m:
        return f"{what}: there is no version {m[1]} in the package index"
    m = (re.search(r"cause: (.*?)(?:, we can conclude that your requirements are unsatisfiable\.| hint:|$)", text)
         or re.search(r"error: (.*?)(?: cause:| hint:|$)", text))
    return f"{what}: {m[1].strip() if m else (lines[-1] if lines else 'uv failed')}"


def _inodes(paths: list[Path]) -> dict[tuple[int, int], list[int]]:
    """Every file, link and directory under `paths`: inode -> [links, bytes on disk, times seen]."""
    found: dict[tuple[int, int], list[int]] = {}
    for top in paths:
        for root, dirs, names in os.walk(top):
            linked = [d for d in dirs if os.path.islink(os.path.join(root, d))]  # not walked into
            for entry in [root, *(os.path.join(root, n) for n in [*names, *linked])]:
                with contextlib.suppress(OSError):
                    st = os.lstat(entry)
                    seen = found.setdefault((st.st_dev, st.st_ino), [st.st_nlink, st.st_blocks * 512, 0])
                    seen[2] += 1
    return found


def bytes_only_in(paths: list[Path]) -> int:
    """The disk space removing `paths` would free: files hard-linked from elsewhere (uv's cache,
    another environment) stay on disk and are not counted."""
    return sum(size for links, size, seen in _inodes(paths).values() if seen >= links)


def disk_usage(paths: list[Path]) -> int:
    """Bytes on disk under `paths`, each hard-linked file counted once (as `du` does)."""
    return sum(size for _, size, _ in _inodes(paths).values())


class Builder:
    def __init__(self, root: Path, cache: Path, interpreter: Interpreter | None = None):
        self.root = root
        self.cache = cache
        self.interpreter = interpreter or Interpreter.current()

    # -- naming --------------------------------------------------------------------------------

    def key(self, lock: dict, interpreter: Interpreter | None = None) -> str:
        it = interpreter or self.interpreter
        return hashlib.sha256(orjson.dumps({
            "layout": LAYOUT, "python": it.version, "executable": os.path.realpath(it.executable),
            "platform": it.platform, "options": lock.get("options", []), "requirements": lock["requirements"]},
            option=orjson.OPT_SORT_KEYS)).hexdigest()

    def path(self, key: str) -> Path:
        return self.root / key[:16]

    def python(self, key: str) -> Path:
        return self.path(key) / "bin" / "python"

    def is_built(self, key: str) -> bool:
        return (self.path(key) / MARKER).is_file()

    def built(self) -> dict[str, Path]:
        """Complete environments on disk, by the start of their key."""
        if not self.root.is_dir():
            return {}
        return {p.name: p for p in self.root.iterdir() if p.is_dir() and (p / MARKER).is_file()}

    def leftovers(self, older_than_s: float = 3600.0) -> list[Path]:
        """Builds that never finished (a killed server), old enough not to be under way."""
        if not self.root.is_dir():
            return []
        now = time.time()
        return [p for p in self.root.iterdir() if p.is_dir() and (
            (p.name.startswith((".tmp-", ".resolve-")) and now - p.stat().st_mtime > older_than_s)
            or (not p.name.startswith(".") and not (p / MARKER).is_file()))]

    # -- running uv ----------------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONHOME")}
        return {**env, "UV_CACHE_DIR": str(self.cache), "UV_PYTHON_DOWNLOADS": "never", "NO_COLOR": "1",
                "UV_NO_PROGRESS": "1"}

    def _run(self, args: list[str], progress: Progress) -> tuple[int, list[str]]:
        """Run uv, passing each line it prints to `progress`; (exit code, every line)."""
        self.root.mkdir(parents=True, exist_ok=True)
        lines: list[str] = []
        with subprocess.Popen([uv_binary(), "--no-config", *args], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, errors="replace",
                              env=self._env(), cwd=self.root) as proc:
            for line in proc.stderr:
                line = line.rstrip()
                if line:
                    lines.append(line)
                    progress(line)
        return proc.returncode, lines

    # -- resolving and building ----------------------------------------------------------------

    def resolve(self, requirements: list[str], options: list[str], what: str,
                progress: Progress = _quiet, from_conda: tuple[str, ...] = (),
                interpreter: Interpreter | None = None) -> dict:
        """The lock: exact versions of `requirements` (plus what the runtime needs) for `interpreter`
        (default: the server's)."""
        it = interpreter or self.interpreter
        self.root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".resolve-", dir=self.root) as tmp:
            src, out = Path(tmp) / "requirements.in", Path(tmp) / "lock.txt"
            src.write_text("\n".join([*options, *requirements, *RUNTIME_REQUIREMENTS]) + "\n")
            code, lines = self._run(["pip", "compile", str(src), "-o", str(out), "--python",
                                     it.executable, "--no-header", "--no-annotate", "--no-build"], progress)
            if code != 0:
                raise BuildFailed(explain(lines, what, it, from_conda), detail="\n".join(lines))
            pins = [ln.strip() for ln in out.read_text().splitlines() if ln.strip() and not ln.startswith(("#", "-"))]
        return {"python": it.minor, "platform": it.platform, "options": options, "requirements": pins}

    def build(self, key: str, lock: dict, what: str, progress: Progress = _quiet,
              interpreter: Interpreter | None = None) -> Path:
        """The venv of `key`, built from `lock` on `interpreter` (default: the server's) unless it is
        already there; builds of one key wait for each other (across processes), builds of
        different keys run side by side."""
        it = interpreter or self.interpreter
        final = self.path(key)
        if self.is_built(key):
            return final
        with file_lock(self.root / ".locks" / key[:16]):
            if self.is_built(key):
                return final
            started = time.monotonic()
            tmp = self.root / f".tmp-{key[:16]}-{secrets.token_hex(4)}"
            try:
                code, lines = self._run(["venv", str(tmp), "--python", it.executable,
                                         "--relocatable", "--quiet"], progress)
                if code == 0:
                    (tmp / LOCK_FILE).write_text("\n".join([*lock.get("options", []), *lock["requirements"]]) + "\n")
                    more, out = self._run(["pip", "sync", str(tmp / LOCK_FILE), "--python", str(tmp / "bin" / "python"),
                                           "--link-mode", "hardlink", "--no-build"], progress)
                    code, lines = more, lines + out
                if code != 0:
                    raise BuildFailed(explain(lines, what, it), detail="\n".join(lines))
                atomic_write(tmp / MARKER, orjson.dumps({
                    "key": key, "what": what, "python": it.version, "interpreter": it.executable, "lock": lock,
                    "seconds": round(time.monotonic() - started, 3)}, option=orjson.OPT_INDENT_2))
                if final.exists():  # an incomplete leftover of a killed build
                    shutil.rmtree(final, ignore_errors=True)
                os.rename(tmp, final)
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp, ignore_errors=True)
        return final

    # -- collecting ----------------------------------------------------------------------------

    def remove(self, dirs: list[Path]) -> int:
        """Delete environments; the bytes that freed."""
        freed = bytes_only_in(dirs)
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)
        return freed

    def clean_cache(self, progress: Progress = _quiet) -> int:
        """Empty uv's cache (`uv cache clean`); the bytes that freed. Packages that environments
        still hold stay on disk through their hard links (and are not counted)."""
        if not self.cache.is_dir():
            return 0
        freed = bytes_only_in([self.cache])
        code, lines = self._run(["cache", "clean"], progress)
        if code != 0:
            raise BuildFailed(f"uv cache clean failed: {lines[-1] if lines else code}", detail="\n".join(lines))
        return freed
