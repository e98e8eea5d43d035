"""A replica's memory limit, enforced by the kernel before the replica passes it.

The limit (`resources.limits.memory`) counts resident memory, including what a forked replica
shares with its warm parent, as the server's watch does. Before the model loads, the replica sets
RLIMIT_DATA (the private writable memory it may map: heap, anonymous mmaps, numpy buffers) to
what it maps now plus the room left under the limit, so an allocation that would pass the limit
fails with MemoryError instead of the replica growing past it. (A cgroup would also count page
cache and kernel memory; a process cannot set one up for itself without a delegated cgroup tree.)

A MemoryError alone does not mean the replica is full (one request may ask for an absurd array);
`full()` says whether most of the room is used, in which case the replica answers and exits, so a
fresh one takes its place. Below, what a process uses now: resident memory, and the heap in use
(how a shared worker measures each model it loads).
"""

from __future__ import annotations

import ctypes
import os
import resource
import sys


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


# -- what a process uses now ------------------------------------------------------------------

def rss_bytes() -> int | None:
    """Resident memory now (None: /proc cannot say)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                     "fsmblks", "uordblks", "fordblks", "keepcost")]


def _mallinfo2():
    try:
        fn = ctypes.CDLL("libc.so.6").mallinfo2   # glibc 2.33 and later
    except (OSError, AttributeError):
        return None
    fn.restype = _MallInfo2
    return fn


_MALLINFO2 = _mallinfo2()
SMALL_BLOCK_BYTES = 64   # a typical Python small-object block (pymalloc counts blocks, not bytes)


def heap_bytes() -> int:
    """Bytes in use on the heap: malloc's (numpy arrays, native libraries; 0 without glibc) and
    Python's small-object blocks."""
    in_use = 0
    if _MALLINFO2 is not None:
        info = _MALLINFO2()
        in_use = info.uordblks + info.hblkhd
    return in_use + sys.getallocatedblocks() * SMALL_BLOCK_BYTES


def malloc_trim() -> None:
    """Give freed heap memory back to the system (glibc)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc: freed memory is returned when the allocator decides
