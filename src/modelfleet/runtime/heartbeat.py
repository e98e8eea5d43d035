"""The replica's watch thread: proof of life and of progress while the model is busy.

The replica's main thread runs one model call at a time; a `run()` that never returns would
otherwise leave the server no way to tell a hung replica from a slow one. This thread sends a
heartbeat (a PONG frame with id 0) every `PERIOD_S`, carrying the resident memory, how long
the current model call has been running and how long a call usually takes (so the server can
tell a call far older than usual before it times out), and flushes answers the main thread finished before it
got stuck on a later request. It shares the socket's write side with the main thread (one lock);
only the main thread reads.
"""

from __future__ import annotations

import socket
import threading
import time

from . import protocol as p
from .memory import rss_bytes

PERIOD_S = 0.25
STACK_BYTES = 256 * 1024
USUAL_WEIGHT = 0.1   # of the newest call in the moving average of call durations


class Outbox:
    """Frames for the server, written by the main thread and the heartbeat thread."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.lock = threading.Lock()
        self.frames: list[bytes] = []
        self.busy_since = 0.0      # time.monotonic() when the current model call started; 0: idle
        self.usual_s = 0.0         # moving average of finished calls' durations (0: none yet)
        self.serving = threading.Event()

    def add(self, frame: bytes) -> None:
        with self.lock:
            self.frames.append(frame)

    def flush(self, extra: bytes = b"") -> None:
        with self.lock:
            data = b"".join(self.frames) + extra
            self.frames.clear()
            if data:
                self.sock.sendall(data)

    def call_started(self) -> None:
        self.busy_since = time.monotonic()

    def call_done(self) -> None:
        if not self.busy_since:   # a batch that failed and was scored again one by one
            return
        took = time.monotonic() - self.busy_since
        self.busy_since = 0.0
        self.usual_s = took if not self.usual_s else self.usual_s + USUAL_WEIGHT * (took - self.usual_s)

    def pong(self) -> bytes:
        since = self.busy_since
        return p.pong(rss_bytes(), int((time.monotonic() - since) * 1000) if since else 0,
                      int(self.usual_s * 1e6))

    def start_heartbeats(self) -> None:
        """Start the thread now (it waits for `serving`): later, under a memory limit, a new
        thread's stack might not fit."""
        old = threading.stack_size(STACK_BYTES)
        try:
            threading.Thread(target=self._beat, name="mf-heartbeat", daemon=True).start()
        finally:
            threading.stack_size(old)

    def _beat(self) -> None:
        self.serving.wait()
        while True:
            time.sleep(PERIOD_S)
            try:
                self.flush(p.frame(0, p.PONG, self.pong()))
            except OSError:
                return  # the server closed the connection; the main thread sees it too
