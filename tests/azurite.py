"""Azurite, Microsoft's Azure Storage emulator, run for a test or a benchmark: the blob service
only, on 127.0.0.1 and a free port, in its own folder, without telemetry; stopped by pid.

The npm package is installed into .tools/ by `make npm-tools` (part of `make test`);
FLEET_AZURITE names another copy of its blob service script (dist/src/blob/main.js).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from .helpers import free_port

ACCOUNT = "devstoreaccount1"  # Azurite's well-known development account and key (public, documented)
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
REPO = Path(__file__).resolve().parents[1]


def command() -> list[str]:
    """node and Azurite's blob service script (FLEET_AZURITE names another)."""
    script = Path(os.environ.get("FLEET_AZURITE") or REPO / ".tools/node_modules/azurite/dist/src/blob/main.js")
    if not script.exists():
        raise RuntimeError(f"Azurite is not installed at {script}: run `make npm-tools` "
                           f"(npm install azurite into .tools/)")
    return ["node", str(script)]


class Azurite:
    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.port = 0
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{ACCOUNT}"

    def start(self, deadline_s: float = 60) -> Azurite:
        """Start (again, on the same port and folder after a `stop`) and wait until it accepts."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        log = open(self.folder / "azurite.log", "ab")
        self.proc = subprocess.Popen(
            [*command(), "--blobHost", "127.0.0.1", "--blobPort", str(self.port),
             "--location", str(self.folder / "data"), "--silent", "--disableTelemetry", "--skipApiVersionCheck"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        deadline = time.monotonic() + deadline_s
        while True:
            if self.proc.poll() is not None:
                tail = (self.folder / "azurite.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"Azurite exited with {self.proc.returncode} before listening:\n{tail}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return self
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"Azurite did not listen on 127.0.0.1:{self.port} within {deadline_s} s")
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM its process group by pid, SIGKILL after a grace period."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def document(self, name: str = "models_store", container: str = "models", **credentials) -> dict:
        """A datastore document for this emulator (the account key unless credentials are given)."""
        return {"name": name, "type": "azure_blob", "account_name": ACCOUNT, "container_name": container,
                "account_url": self.url, "credentials": credentials or {"account_key": KEY}}


def model_file(path: Path, size: int) -> str:
    """A file of `size` bytes (whole MiB) that compresses badly, written a MiB at a time; its sha256."""
    h = hashlib.sha256()
    block = os.urandom(1 << 20)
    with open(path, "wb") as f:
        for i in range(size >> 20):
            chunk = i.to_bytes(8, "little") + block[8:]
            h.update(chunk)
            f.write(chunk)
    return h.hexdigest()


@contextlib.contextmanager
def running(folder: Path):
    """An emulator in `folder` for the block's length, stopped by pid after it."""
    emulator = Azurite(folder).start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def azurite(tmp_path):
    """An emulator of the test's own (import it into a test module to use it)."""
    with running(tmp_path / "azurite") as emulator:
        yield emulator
