"""A replica's memory limit, enforced by the kernel before the replica passes it.

The limit (`resources.limits.memory`) counts resident memory, including what a forked replica
shares with its warm parent, as the server's watch does. Before the model loads, the replica sets
RLIMIT_DATA (the private writable memory it may map: heap, anonymous mmaps, numpy buffers) to
what it maps now plus the room left under the limit, so an allocation that would pass the limit
fails with MemoryError instead of the replica growing past it. (A cgroup would also count page
cache and kernel memory; a process cannot set one up for itself without a delegated cgroup tree.)

A MemoryError alone does not mean the replica is full (one request may ask for an absurd array);
`full()` says whether most of the room is used, in which case the replica answers and exits, so a
fresh one takes its place.
"""

from __future__ import annotations

import resource


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class MemoryBudget:
    def __init__(self, limit_bytes: int):
        rss = _status_kib("VmRSS") * 1024
        self.start = _status_kib("VmData") * 1024
        self.room = limit_bytes - rss
        if self.room <= 0:
            raise MemoryError(f"the memory limit ({limit_bytes >> 20} MiB) is below what the replica uses "
                              f"before loading its model ({rss >> 20} MiB)")
        self.cap = self.start + self.room
        resource.setrlimit(resource.RLIMIT_DATA, (self.cap, self.cap))

    def full(self) -> bool:
        """Less than half of the room left: the replica cannot do useful work any more."""
        try:
            return _status_kib("VmData") * 1024 > self.cap - self.room // 2
        except (OSError, ValueError):
            return True


def apply(limit_bytes: int | None) -> MemoryBudget | None:
    return MemoryBudget(limit_bytes) if limit_bytes else None
