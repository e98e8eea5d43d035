"""The server as the parent of its replicas: a child subreaper that reaps what the kernel re-parents to it.

Replicas forked by the warm zygote are forked twice (runtime/zygote.py), so the kernel hands them
to the nearest ancestor that asked for orphans (PR_SET_CHILD_SUBREAPER): the server. Then a dead
zygote takes no replica with it, and a replica's exit code comes from the server's own waitpid.
Other orphans land here too (an intermediate process whose zygote died, a process a replica
started); `sweep` reaps those, so none stays a zombie. Children started with subprocess.Popen
(the zygote, fresh-interpreter replicas) are reaped by their Popen and left alone.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36
KEEP_CODES = 1000


def become_subreaper() -> bool:
    """Ask the kernel to re-parent this process's orphaned descendants to it (Linux 3.4+)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _zombie_children() -> list[int]:
    pids = []
    for children in Path("/proc/self/task").glob("*/children"):
        with contextlib.suppress(OSError):
            pids += [int(p) for p in children.read_text().split()]
    out = []
    for pid in pids:
        with contextlib.suppress(OSError, IndexError):
            if Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0] == b"Z":
                out.append(pid)
    return out


class Children:
    """Exit codes of this process's children that no Popen owns."""

    def __init__(self):
        self.subreaper = become_subreaper()
        self.owned: set[int] = set()       # pids a subprocess.Popen reaps
        self._codes: dict[int, int] = {}   # reaped by `sweep`, not asked for yet

    def new(self, pid: int) -> None:
        """`pid` is a new process: an exit code kept for an earlier process with that pid is stale."""
        self._codes.pop(pid, None)

    def reap(self, pid: int) -> int | None:
        """The exit code of child `pid` once it has exited; None while it runs (or is not ours)."""
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return self._codes.pop(pid, None)
        return os.waitstatus_to_exitcode(status) if done else None

    def sweep(self, also_owned: set[int] = frozenset()) -> None:
        """Reap every zombie child no Popen owns."""
        for pid in _zombie_children():
            if pid in self.owned or pid in also_owned:
                continue
            with contextlib.suppress(ChildProcessError):
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    self._codes[pid] = os.waitstatus_to_exitcode(status)
        while len(self._codes) > KEEP_CODES:
            del self._codes[next(iter(self._codes))]
