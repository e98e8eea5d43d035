"""Frames to one replica or worker socket, gathered over one pass of the event loop and sent
in one write.

Under load the gateway hands a replica many requests in the same pass (one per client socket
that had data); a write each is a system call each. The outbox sends them together once the
pass's callbacks have run: one call for all, in the order they were put. The pass ends within
microseconds, so a lone request waits no longer than that.
"""

from __future__ import annotations

import asyncio


class Outbox:
    __slots__ = ("transport", "_frames", "_loop")

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.transport: asyncio.Transport | None = None
        self._frames: list[bytes] = []
        self._loop = loop

    def put(self, frame: bytes) -> None:
        frames = self._frames
        frames.append(frame)
        if len(frames) == 1:
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        frames, self._frames = self._frames, []
        transport = self.transport
        if frames and transport is not None and not transport.is_closing():
            transport.write(frames[0] if len(frames) == 1 else b"".join(frames))

    def close(self) -> None:
        """Send what is gathered, then close the socket."""
        self.flush()
        if self.transport is not None:
            self.transport.close()
