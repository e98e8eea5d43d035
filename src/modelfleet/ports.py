"""Free TCP ports for the listeners modelfleet starts and keeps (a server's kept port, an owned
Ray cluster's ports).

They are taken below the range the OS hands out to bind(0) and to outgoing connections
(Linux: /proc/sys/net/ipv4/ip_local_port_range), where no other process lands by chance: a
server or cluster started again on the port it had finds it still free, however long it was
down and whatever ran meanwhile. Where that range is unknown, the OS picks.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import random
import socket
from collections.abc import Iterator
from pathlib import Path

HANDED_OUT = Path("/proc/sys/net/ipv4/ip_local_port_range")
FLOOR = 10000  # ports are taken between this and the range the OS hands out
PROBES = 256   # random tries before the OS picks: all of them taken means a crowded machine


def handed_out_range() -> range | None:
    """The ports this machine hands out to bind(0) and outgoing connections (Linux), else None."""
    try:
        low, high = (int(x) for x in HANDED_OUT.read_text().split())
    except (OSError, ValueError):
        return None
    return range(low, high + 1)


def candidates() -> Iterator[int]:
    """Ports to try in turn: up to PROBES drawn at random below the handed-out range (most of it
    is free, so the first nearly always is), then 0 (the OS's choice) for ever."""
    handed_out = handed_out_range()
    below = range(FLOOR, handed_out.start) if handed_out else range(0)
    probes = (random.choice(below) for _ in range(PROBES if below else 0))
    return itertools.chain(probes, itertools.repeat(0))


def bind_free(sock: socket.socket, host: str) -> int:
    """Bind `sock` to a free port of `host` (see the module); the port. OSError other than a
    port in use (an address this machine lacks) goes to the caller."""
    for port in candidates():
        try:
            sock.bind((host, port))
        except OSError as e:
            if port == 0 or e.errno not in (errno.EADDRINUSE, errno.EACCES):
                raise
            continue
        return sock.getsockname()[1]
    raise AssertionError("unreachable: candidates() ends with 0 for ever")


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` distinct ports free on `host` now (held open together, so none repeats)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with contextlib.ExitStack() as stack:
        return [bind_free(stack.enter_context(socket.socket(family, socket.SOCK_STREAM)), host)
                for _ in range(count)]
