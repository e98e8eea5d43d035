"""A deployment's replica logs as `get-logs` shows them.

Each replica writes logs/<endpoint>/<deployment>/<replica>.log (rotated to .log.1, .log.2; see
runtime/replica_log.py), every line stamped with its time. Here the files of the replicas asked
for are merged in time order, each line prefixed with the replica it came from:

    blue-785dd7-1  2026-11-26T07:37:08.123Z [9f1c2ab0-1a] the line

Lines without a stamp (native output, a traceback's continuation) keep the time of the line
before them. `follow` yields new lines as they are written, across rotations and new replicas.
"""

from __future__ import annotations

import heapq
import os
from pathlib import Path
from typing import Iterator

from ...files.fsutil import tail_lines
from ...files.logfmt import line_time

KEEP_FILES = 20   # replica logs kept per deployment, beyond those of its running replicas
MAX_LINES = 100_000


def _replica(path: Path) -> str:
    return path.name.split(".log", 1)[0]


def _stamped(lines: list[str]) -> list[tuple[str, str]]:
    """(time, line) for each line; a line without a stamp takes the one before it."""
    out, last = [], ""
    for line in lines:
        last = line_time(line) or last
        out.append((last, line))
    return out


def _files(folder: Path) -> dict[str, list[Path]]:
    """Each replica's files, oldest rotation first."""
    by_replica: dict[str, list[Path]] = {}
    if folder.is_dir():
        for f in folder.iterdir():
            if ".log" in f.name:
                by_replica.setdefault(_replica(f), []).append(f)
    for files in by_replica.values():
        files.sort(key=lambda f: -int(f.name.rsplit(".", 1)[1]) if not f.name.endswith(".log") else 1)
    return by_replica


def chosen(folder: Path, current: set[str]) -> list[str]:
    """The replicas whose logs to show: the running ones (`current`, by id) plus the newest
    other one (a failed start or the last crash shows there)."""
    by_replica = _files(folder)
    mtime = {r: max(f.stat().st_mtime for f in files) for r, files in by_replica.items() if files}
    others = sorted((r for r in mtime if r not in current), key=mtime.get)[-1:]
    return [r for r in sorted(mtime, key=mtime.get) if r in current] + others


def read(folder: Path, lines: int, current: set[str], since: str | None = None) -> str:
    """The newest `lines` lines of the chosen replicas, merged by time (only those at or after
    `since`, an ISO timestamp, when given)."""
    lines = min(max(1, lines), MAX_LINES)
    by_replica = _files(folder)
    streams = []
    for replica in chosen(folder, current):
        text: list[str] = []
        for f in reversed(by_replica[replica]):  # the live file first, then rotated ones if needed
            if len(text) >= lines:
                break
            text = tail_lines(f, lines - len(text)) + text
        stamped = _stamped(text)
        if since:
            stamped = [(t, line) for t, line in stamped if t >= since]
        streams.append([(t, i, f"{replica}  {line}") for i, (t, line) in enumerate(stamped)])
    merged = [line for _, _, line in heapq.merge(*streams)]
    return "\n".join(merged[-lines:])


def follow(folder: Path, current: set[str]) -> Iterator[list[str]]:
    """Each call to next() returns the lines written since the last one (maybe none), from the
    files of every replica of the deployment, starting at their ends."""
    offsets: dict[Path, tuple[int, int]] = {}   # file -> (inode, offset)
    pending: dict[Path, bytes] = {}
    first = True
    while True:
        out: list[tuple[str, str]] = []
        for replica, files in _files(folder).items():
            path = files[-1]  # the live file
            try:
                st = path.stat()
            except OSError:
                continue
            inode, offset = offsets.get(path, (st.st_ino, st.st_size if first else 0))
            data = b""
            if inode != st.st_ino or st.st_size < offset:  # rotated (or truncated): a new file
                data = _rest_of_rotated(path, inode, offset)
                inode, offset = st.st_ino, 0
            if st.st_size > offset or data:
                with open(path, "rb") as f:
                    f.seek(offset)
                    data = pending.pop(path, b"") + data + f.read(st.st_size - offset)
                offset = st.st_size
                complete, _, rest = data.rpartition(b"\n")
                if rest:
                    pending[path] = rest
                text = complete.decode("utf-8", "replace").split("\n") if complete else []
                out.extend((t, f"{replica}  {line}") for t, line in _stamped(text))
            offsets[path] = (inode, offset)
        first = False
        out.sort(key=lambda x: x[0])
        yield [line for _, line in out]


def _rest_of_rotated(path: Path, inode: int, offset: int) -> bytes:
    """What was written to a file after we last read it and before it was rotated to .1."""
    rotated = path.with_name(f"{path.name}.1")
    try:
        if rotated.stat().st_ino == inode:
            with open(rotated, "rb") as f:
                f.seek(offset)
                return f.read()
    except OSError:
        pass
    return b""


def prune(folder: Path, keep: int = KEEP_FILES, live: set[str] = frozenset()) -> None:
    """Remove the logs of all but the newest `keep` stopped replicas of a deployment."""
    by_replica = _files(folder)
    stopped = [r for r in by_replica if r not in live]
    stopped.sort(key=lambda r: max(f.stat().st_mtime for f in by_replica[r]))
    for replica in stopped[:-keep] if keep else stopped:
        for f in by_replica[replica]:
            try:
                os.unlink(f)
            except OSError:
                pass
