"""A network namespace with a veth pair to the host, made by the test (ip netns, ip link; root):
a client inside it reaches the host only through the pair's addresses, as from another machine.
Deleting the namespace deletes the pair; processes left inside are killed by pid first."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import uuid
from dataclasses import dataclass

import pytest


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and p.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {p.stderr.strip()}")
    return p


@dataclass
class NetworkNamespace:
    name: str
    host_veth: str
    host_address: str     # the host's end: where the server listens
    inner_address: str    # the namespace's end: where the client's connections come from

    def exec_prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.name]

    def pids(self) -> list[int]:
        out = _ip("netns", "pids", self.name, check=False).stdout
        return [int(p) for p in out.split()]

    def delete(self) -> None:
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _ip("link", "del", self.host_veth, check=False)
        _ip("netns", "del", self.name, check=False)


def _used_subnets() -> set[str]:
    out = _ip("-4", "-o", "addr", "show", check=False).stdout
    return {line.split()[3].rsplit(".", 1)[0] for line in out.splitlines() if len(line.split()) > 3}


def _own_octets() -> range:
    """The third octets this test process may take: pytest-xdist's workers (gw0, gw1, ...) each
    draw from their own residue class, so two workers never pick the same free subnet at once."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    return range(int(worker.removeprefix("gw")), 256, count)


def create() -> NetworkNamespace:
    """A namespace and a /30 veth pair in 10.213.x.0; a skip with the kernel's one-line reason when
    namespaces cannot be made here (not root, a container without CAP_SYS_ADMIN)."""
    if os.geteuid() != 0:
        pytest.skip("creating a network namespace needs root")
    tag = uuid.uuid4().hex[:8]   # names of this namespace alone, whichever worker makes it
    used = _used_subnets()
    prefix = next(p for p in (f"10.213.{random.choice(_own_octets())}" for _ in range(100)) if p not in used)
    ns = NetworkNamespace(f"fleet-{tag}", f"fv{tag}", f"{prefix}.1", f"{prefix}.2")
    made = _ip("netns", "add", ns.name, check=False)
    if made.returncode != 0:
        pytest.skip(f"the kernel refused a network namespace: {made.stderr.strip()}")
    try:
        _ip("link", "add", ns.host_veth, "type", "veth", "peer", "name", f"fi{tag}")
        _ip("link", "set", f"fi{tag}", "netns", ns.name)
        _ip("addr", "add", f"{ns.host_address}/30", "dev", ns.host_veth)
        _ip("link", "set", ns.host_veth, "up")
        inside = ["netns", "exec", ns.name, "ip"]
        _ip(*inside, "addr", "add", f"{ns.inner_address}/30", "dev", f"fi{tag}")
        _ip(*inside, "link", "set", f"fi{tag}", "up")
        _ip(*inside, "link", "set", "lo", "up")
    except RuntimeError as e:
        ns.delete()
        pytest.skip(f"the kernel refused a veth pair: {e}")
    return ns
