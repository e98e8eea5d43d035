"""Connection limits on the server's one port: what uvicorn does not bound by itself.

uvicorn closes a keep-alive connection that stays idle after a response, but not a connection
that never sends a byte, nor one that sends its headers a byte at a time (slowloris), nor one that
stops half way through its body; and it has no cap on connections (its `limit_concurrency`
answers 503 to *new requests* once idle connections fill it, the opposite of what is wanted).
`guarded_protocol` returns uvicorn's httptools protocol (or a subclass of it: the server's own,
wire.py) with:

- an idle timeout from the moment a connection opens, as after each response (`idle_timeout_s`);
- a header timeout: a request's headers must arrive within `header_timeout_s` of its first
  byte, and its body may not pause longer than that (while the server reads it);
- at most `max_header_bytes` of request line and headers;
- at most `max_connections` open at once: a new connection beyond that closes the oldest
  connection with no request in progress (idle, or still sending its headers), or is itself
  closed if every connection has a request in progress.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


@dataclass
class Limits:
    idle_timeout_s: float
    header_timeout_s: float
    max_connections: int
    max_header_bytes: int = 64 * 1024
    open: dict = field(default_factory=dict)   # every open connection, oldest first
    evicted: int = 0                           # closed to make room, since the start
    timed_out: int = 0                         # closed by the header or body timeout


def guarded_protocol(limits: Limits, base: type = HttpToolsProtocol) -> type:
    class GuardedHttpToolsProtocol(base):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.timeout_keep_alive = limits.idle_timeout_s
            self._reading = False     # a request is being read (its head or its body)
            self._in_head = False     # ... and its request line and headers are not complete yet
            self._head_bytes = 0
            self._deadline = 0.0
            self._timer = None

        # -- the cap ------------------------------------------------------------------------

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            limits.open[self] = None
            if len(limits.open) > limits.max_connections and not self._evict_idle():
                transport.close()
                return
            # Until its first request, a new connection is as idle as one after a response.
            self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive,
                                                                self.timeout_keep_alive_handler)

        def _idle(self) -> bool:
            """No request in progress (it may be dribbling the headers of one)."""
            return self.cycle is None or self.cycle.response_complete

        def _evict_idle(self) -> bool:
            for conn in limits.open:
                if conn is not self and conn._idle() and not conn.transport.is_closing():
                    conn.transport.close()
                    limits.evicted += 1
                    return True
            return False

        def connection_lost(self, exc) -> None:
            limits.open.pop(self, None)
            if self._timer is not None:
                self._timer.cancel()
            super().connection_lost(exc)

        # -- reading a request in time ------------------------------------------------------

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            # Only a head still incomplete counts: the rest of a body the app answered before
            # reading (an upload refused at once) is not headers.
            if self._in_head:
                self._head_bytes += len(data)
                if self._head_bytes > limits.max_header_bytes and not self.transport.is_closing():
                    self.send_400_response("Request headers too large.")

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._reading, self._in_head, self._head_bytes = True, True, 0
            self._watch(limits.header_timeout_s)

        def on_headers_complete(self) -> None:
            self._in_head, self._head_bytes = False, 0
            super().on_headers_complete()
            self._deadline = self.loop.time() + limits.header_timeout_s   # now for the body's pauses

        def on_body(self, body: bytes) -> None:
            super().on_body(body)
            self._deadline = self.loop.time() + limits.header_timeout_s

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._reading = False

        def _watch(self, seconds: float) -> None:
            self._deadline = self.loop.time() + seconds
            if self._timer is None:
                self._timer = self.loop.call_at(self._deadline, self._check)

        def _check(self) -> None:
            self._timer = None
            if not self._reading or self.transport.is_closing():
                return
            if self.flow.read_paused:  # the app has not taken the body yet: not the client's fault
                self._deadline = self.loop.time() + limits.header_timeout_s
            if self.loop.time() < self._deadline:
                self._timer = self.loop.call_at(self._deadline, self._check)
                return
            limits.timed_out += 1
            self.transport.close()

    return GuardedHttpToolsProtocol
