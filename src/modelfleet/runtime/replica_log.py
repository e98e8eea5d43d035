"""A replica's own log: every line stamped with the time and the request being scored, the file
rotated by size, and tracebacks of the same error rate-limited, so a client sending bad requests
cannot fill the disk.

The backend points the replica's file descriptors 1 and 2 at its log file. `install` replaces
`sys.stdout` and `sys.stderr` with line writers, so `print`, the `logging` module (whose
handlers write to `sys.stderr`) and tracebacks all come out as

    2026-11-26T07:37:08.123Z [9f1c2ab0-1a] the line

(`[-]` outside a request). When the file passes `MAX_BYTES` it is renamed to `<name>.1` (older
ones shift up to `BACKUPS`) and descriptors 1 and 2 move to a fresh file, so output written by
native code follows too (without a stamp).
"""

from __future__ import annotations

import io
import os
import sys
import threading
import time
import traceback
from pathlib import Path

from ..files.logfmt import iso_time

MAX_BYTES = 16 * 2**20
BACKUPS = 2
TRACEBACK_PERIOD_S = 60.0   # one full traceback per distinct error per period ...
TRACEBACKS_PER_PERIOD = 10  # ... and at most this many of any kind

request_id = "-"   # the request (or "<first>+<n>" for a batch) being scored now


class RotatingFile:
    """Descriptors 1 and 2 of this process, on a log file that rotates by size."""

    def __init__(self, path: Path, max_bytes: int = MAX_BYTES, backups: int = BACKUPS):
        self.path, self.max_bytes, self.backups = path, max_bytes, backups
        self.lock = threading.Lock()

    def write(self, data: bytes) -> None:
        with self.lock:
            try:
                if os.fstat(2).st_size + len(data) > self.max_bytes:
                    self._rotate()
                os.write(2, data)
            except OSError:
                pass  # a full or read-only disk loses log lines, never the replica

    def _rotate(self) -> None:
        shift(self.path, self.backups)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | (0 if self.backups else os.O_TRUNC), 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)


def shift(path: Path, backups: int) -> None:
    """Rotate `path`: <name>.1 becomes <name>.2 (up to `backups`), the file itself <name>.1."""
    for i in range(backups - 1, 0, -1):
        older = path.with_name(f"{path.name}.{i}")
        if older.exists():
            os.replace(older, path.with_name(f"{path.name}.{i + 1}"))
    if backups:
        os.replace(path, path.with_name(f"{path.name}.1"))


def append(path: Path, data: bytes, max_bytes: int = MAX_BYTES, backups: int = BACKUPS) -> None:
    """Add lines to a log file that is not this process's output (one model's log in a shared
    worker), rotated by size like the replica's own."""
    mode = "ab"
    try:
        if path.stat().st_size + len(data) > max_bytes:
            shift(path, backups)
            mode = "ab" if backups else "wb"
    except FileNotFoundError:
        pass
    with open(path, mode) as f:
        f.write(data)


class LineWriter(io.TextIOBase):
    """A text stream that writes whole lines, each with the time and the current request id."""

    def __init__(self, out: RotatingFile, fd: int):
        self.out, self.fd, self.pending = out, fd, ""

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self.fd

    @property
    def encoding(self) -> str:
        return "utf-8"

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        n = len(text)
        *lines, self.pending = (self.pending + text).split("\n")
        if lines:
            stamp = f"{iso_time(time.time())} [{request_id}] "
            self.out.write("".join(f"{stamp}{line}\n" for line in lines).encode("utf-8", "replace"))
        return n

    def close_line(self) -> None:
        """Write a last line that has no newline yet (at exit)."""
        if self.pending:
            self.write("\n")


def install(path: Path, max_bytes: int = MAX_BYTES, backups: int = BACKUPS) -> RotatingFile:
    out = RotatingFile(path, max_bytes, backups)
    sys.stdout.flush()
    sys.stderr.flush()
    sys.stdout = LineWriter(out, 1)
    sys.stderr = LineWriter(out, 2)
    return out


def finish() -> None:
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, LineWriter):
            stream.close_line()


class TracebackLimiter:
    """Prints the traceback of an error the first time it is seen in a period, then only counts
    it; the count comes out with the next traceback of that error."""

    def __init__(self, formatted=lambda exc: "".join(traceback.format_exception(exc)), clock=time.monotonic):
        self.formatted = formatted   # how a traceback reads (the replica shows the user's own frames)
        self.clock = clock
        self.period_start = clock()
        self.printed = 0
        self.seen: dict[tuple, int] = {}      # error -> times suppressed this period
        self.carried: dict[tuple, int] = {}   # suppressed in earlier periods, not reported yet

    @staticmethod
    def _key(exc: BaseException) -> tuple:
        tb = traceback.extract_tb(exc.__traceback__)
        where = (tb[-1].filename, tb[-1].lineno) if tb else ("", 0)
        return (type(exc).__name__, *where)

    def report(self, exc: BaseException) -> None:
        now = self.clock()
        if now - self.period_start >= TRACEBACK_PERIOD_S:
            for key, n in self.seen.items():
                if n:
                    self.carried[key] = self.carried.get(key, 0) + n
            self.period_start, self.printed, self.seen = now, 0, {}
        key = self._key(exc)
        if key in self.seen or self.printed >= TRACEBACKS_PER_PERIOD:
            self.seen[key] = self.seen.get(key, 0) + 1
            return
        self.seen[key] = 0
        self.printed += 1
        earlier = self.carried.pop(key, 0)
        if earlier:
            print(f"({earlier} more {key[0]} errors like the one below were not printed)", file=sys.stderr)
        sys.stderr.write(self.formatted(exc))
