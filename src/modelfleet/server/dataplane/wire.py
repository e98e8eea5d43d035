"""The server's HTTP/1.1 protocol: uvicorn's, with data-plane requests handed straight to the gateway.

uvicorn's httptools protocol turns every request into an ASGI scope, a request-response cycle,
receive and send coroutines, header checks and two writes per answer: most of the gateway's CPU
per request (docs/benchmarks.md). `wire_protocol` subclasses it. Requests for the data plane
(`/endpoints/...`, `/v2...`: `is_scoring`, within a workspace's prefix or not: the app's
`scoring` names what answers them) become a `WireExchange` (exchange.py) that the
gateway reads and answers in one `transport.write`; every other request takes uvicorn's own ASGI
path to the control API, unchanged. Both kinds may share a connection: they are answered in
order (pipelining), through uvicorn's queue of pending requests.

What uvicorn's cycle does, a WireExchange does too: keep-alive (HTTP/1.1; HTTP/1.0 closes),
Content-Length and chunked bodies (httptools decodes them), `Expect: 100-continue` (answered when
the gateway asks for the body), a client that leaves mid-request (ClientGone), write backpressure
(an answer waits while the transport's buffer is full) and read backpressure (reading pauses once
a body outgrows what the gateway will take). An answer given before the whole body arrived (401,
413) closes the connection rather than reading the rest. TLS needs nothing here: uvicorn's
transport decrypts below the protocol.
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import unquote

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from .exchange import JSON, ClientGone

log = logging.getLogger("modelfleet.gateway")

# Body bytes buffered before the gateway asks for the body (it then reads up to the
# deployment's max_body_bytes); uvicorn pauses reading at the same mark.
BUFFER_BYTES = 64 * 1024
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def is_scoring(path: str) -> bool:
    """The gateway's paths (decoded, within a workspace); the control API has the rest."""
    return path.startswith("/endpoints/") or path == "/v2" or path.startswith("/v2/")


class WireExchange:
    """One data-plane request on a WireProtocol connection. It is also the connection's current
    `cycle`, so it has what uvicorn's protocol and the server's drain read of one:
    response_complete, keep_alive, disconnected, and message_event.set() (wakes a body read)."""

    __slots__ = ("method", "path", "headers", "client", "trace", "responded", "response_complete", "keep_alive",
                 "disconnected", "complete", "_conn", "_chunks", "_size", "_limit", "_waiter", "_continue")

    def __init__(self, conn: "HttpToolsProtocol", method: str, path: str, headers: dict, keep_alive: bool,
                 expect_continue: bool):
        self.method, self.path, self.headers, self.client = method, path, headers, conn.client
        self.keep_alive, self._continue, self._conn = keep_alive, expect_continue, conn
        self.trace = None
        self.responded = self.response_complete = self.disconnected = False
        self._chunks: list[bytes] = []
        self._size = 0
        self.complete = False   # the whole body has arrived
        self._limit = BUFFER_BYTES
        self._waiter: asyncio.Future | None = None

    # -- fed by the protocol --------------------------------------------------------------------

    def feed(self, chunk: bytes) -> None:
        if self.response_complete:
            return   # answered already: the connection closes, the rest goes nowhere
        self._chunks.append(chunk)
        self._size += len(chunk)
        if self._size > self._limit:
            self._conn.flow.pause_reading()
            self.set()

    def finish(self) -> None:
        self.complete = True
        self.set()

    @property
    def message_event(self) -> "WireExchange":
        return self

    def set(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- read and answered by the gateway -------------------------------------------------------

    async def body(self, limit: int) -> bytes | None:
        conn = self._conn
        while True:
            if self.disconnected:
                raise ClientGone()
            if self._size > limit:
                return None
            if self.complete:
                return self.received()
            if self._continue:
                self._continue = False
                if not conn.transport.is_closing():
                    conn.transport.write(CONTINUE)
            self._limit = limit
            conn.flow.resume_reading()
            self._waiter = conn.loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def received(self) -> bytes:
        """The whole body, once `complete`."""
        chunks = self._chunks
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    @property
    def writable(self) -> bool:
        """Whether an answer may be written now (the client is not behind on reading)."""
        return not self._conn.flow.write_paused or self.disconnected

    async def respond(self, status: int, body: bytes, rid: str, extra=(), content_type: bytes = JSON) -> None:
        if not self.writable:
            await self._conn.flow.drain()
        self.write(status, body, rid, extra, content_type)

    def write(self, status: int, body: bytes, rid: str, extra=(), content_type: bytes = JSON) -> None:
        """The answer, in one write (`writable`: the client keeps up)."""
        self.responded = True
        conn = self._conn
        transport = conn.transport
        if self.disconnected or transport.is_closing():   # gone (uvicorn marks only the newest request)
            return
        keep = self.keep_alive and self.complete and not conn.server_app.draining
        parts = [STATUS_LINE[status], conn.default_head(), b"content-type: ", content_type,
                 b"\r\ncontent-length: ", str(len(body)).encode(), b"\r\nx-request-id: ", rid.encode(), b"\r\n"]
        for name, value in extra:
            parts += (name, b": ", value, b"\r\n")
        if not keep:
            parts.append(b"connection: close\r\n")
        parts.append(b"\r\n")
        if self.method != "HEAD":
            parts.append(body)
        transport.write(b"".join(parts))
        self.response_complete = True
        if not keep:
            transport.close()
        conn.on_response_complete()


def wire_protocol(app) -> type:
    """uvicorn's httptools protocol, answering a scoring request through the gateway
    `app.scoring(path)` names, with the path within its workspace (None for the control API's
    paths: server/app.py); `app.draining`: answers close their connections."""
    scoring = app.scoring
    head_cache: list = [None, b""]   # uvicorn's default headers (date, server), and their bytes

    class WireProtocol(HttpToolsProtocol):
        server_app = app
        idle_since: float | None = None   # when its last answer went out, while it has no request
        idle_timer = None
        starting = None   # (exchange, gateway) to start once the bytes at hand are parsed

        def default_head(self) -> bytes:
            headers = self.server_state.default_headers
            if headers is not head_cache[0]:   # uvicorn replaces the list when the date changes
                head_cache[:] = [headers, b"".join(b"%s: %s\r\n" % (n, v) for n, v in headers)]
            return head_cache[1]

        def on_message_begin(self) -> None:
            # uvicorn builds the ASGI scope here; it is built in on_headers_complete, and only for
            # the requests that take the ASGI path.
            self.url = b""
            self.expect_100_continue = False
            self.headers = []

        def on_headers_complete(self) -> None:
            parser = self.parser
            url = self.url
            query = url.find(b"?")
            path = (url if query < 0 else url[:query]).decode("ascii")
            if "%" in path:
                path = unquote(path)
            found = None if parser.should_upgrade() else scoring(path)
            if found is None:
                self._asgi_scope()
                return super().on_headers_complete()
            gateway, path = found
            keep_alive = parser.get_http_version() != "1.0" and parser.should_keep_alive()
            ex = WireExchange(self, parser.get_method().decode("ascii"), path, dict(self.headers), keep_alive,
                              self.expect_100_continue)
            current, self.cycle = self.cycle, ex
            if current is None or current.response_complete:
                self.starting = (ex, gateway)   # its body may be in the bytes being parsed
            else:   # pipelined behind a request still being answered
                self.flow.pause_reading()
                self.pipeline.appendleft((ex, gateway))

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            starting = self.starting
            if starting is not None:
                self.starting = None
                if not self.transport.is_closing():
                    self._start_wire(*starting)

        def _asgi_scope(self) -> None:
            """uvicorn's scope for this request, its headers and URL as parsed."""
            headers, url, expect = self.headers, self.url, self.expect_100_continue
            HttpToolsProtocol.on_message_begin(self)
            self.headers = self.scope["headers"] = headers
            self.url, self.expect_100_continue = url, expect

        def on_body(self, body: bytes) -> None:
            cycle = self.cycle
            if cycle.__class__ is WireExchange:
                cycle.feed(body)
            else:
                super().on_body(body)

        def on_message_complete(self) -> None:
            cycle = self.cycle
            if cycle.__class__ is WireExchange:
                cycle.finish()
            else:
                super().on_message_complete()

        # -- the idle timeout: one timer per connection, moved on lazily ----------------------
        # uvicorn arms a timer after every answer and cancels it at the next request's first
        # bytes: two timer operations per request, where a timer that finds the connection
        # busy when it fires costs nothing per request.

        def on_response_complete(self) -> None:
            self.server_state.total_requests += 1
            if self.transport.is_closing():
                return
            self.flow.resume_reading()
            if self.pipeline:
                cycle, app = self.pipeline.pop()
                self._start_asgi_task(cycle, app)
                return
            self.idle_since = now = self.loop.time()
            if self.idle_timer is None:
                self.idle_timer = self.loop.call_at(now + self.timeout_keep_alive, self._idle_check)

        def _unset_keepalive_if_required(self) -> None:
            self.idle_since = None
            super()._unset_keepalive_if_required()   # the timer of a new connection (connections.py)

        def _idle_check(self) -> None:
            self.idle_timer = None
            if self.idle_since is None or self.transport.is_closing():
                return
            due = self.idle_since + self.timeout_keep_alive
            if self.loop.time() >= due:
                self.transport.close()
            else:
                self.idle_timer = self.loop.call_at(due, self._idle_check)

        def connection_lost(self, exc) -> None:
            if self.idle_timer is not None:
                self.idle_timer.cancel()
            super().connection_lost(exc)

        # -- requests ----------------------------------------------------------------------------

        def _start_asgi_task(self, cycle, app) -> None:
            # uvicorn starts the next pipelined request here; a WireExchange is queued with its gateway
            if cycle.__class__ is WireExchange:
                self._start_wire(cycle, app)
            else:
                super()._start_asgi_task(cycle, app)

        def _start_wire(self, ex: WireExchange, gateway) -> None:
            # the inline lane when the whole body is here (and no 100 Continue is owed), else a task
            if ex.complete and not ex._continue and gateway.inline.start(ex):
                return
            task = self.loop.create_task(self._answer(ex, gateway), context=gateway.context.copy())
            task.add_done_callback(self.tasks.discard)
            self.tasks.add(task)

        async def _answer(self, ex: WireExchange, gateway) -> None:
            await gateway.handle(ex)
            if not ex.responded and not ex.disconnected:   # handle answers every request it keeps
                log.error("the gateway gave no answer to %s %s", ex.method, ex.path)
                self.transport.close()

    return WireProtocol
