"""One request and its answer, as the gateway sees them, whatever carried them.

The gateway's logic (gateway.py) reads a request and writes its answer through an exchange, so it
lives once for both ways a request arrives: `AsgiExchange` over ASGI's scope/receive/send (the
in-process tests, and any ASGI server), and the server's own HTTP protocol (wire.py), which hands
the data plane its requests without ASGI's messages.

An exchange has `method`, `path` (decoded), `headers` (lower-case name -> value, bytes), `client`
((host, port) or None), `trace` (the gateway's RequestTrace, or None), and:

- `await body(limit)`: the whole body; None once it grows past `limit` bytes; ClientGone if the
  client left before sending all of it (a partial body must never reach a model);
- `await respond(status, body, rid, extra=(), content_type=JSON)`: the answer, with its length and
  request id; `responded` tells whether it was given.
"""

from __future__ import annotations

from ...backends.base import ReplyStatus

JSON = b"application/json"
HTTP_STATUS = {ReplyStatus.OK: 200, ReplyStatus.BAD_REQUEST: 400, ReplyStatus.MODEL_ERROR: 424}   # of a reply


class ClientGone(Exception):
    """The client disconnected before its request was complete."""


class AsgiExchange:
    __slots__ = ("method", "path", "headers", "client", "trace", "responded", "_receive", "_send")

    def __init__(self, scope, receive, send):
        self.method = scope["method"]
        self.path = scope["path"]
        self.headers = dict(scope["headers"])
        self.client = scope.get("client")
        self.trace = None
        self.responded = False
        self._receive = receive
        self._send = send

    async def body(self, limit: int) -> bytes | None:
        msg = await self._receive()
        if msg["type"] == "http.disconnect":
            raise ClientGone()
        body = msg.get("body", b"")
        if not msg.get("more_body"):
            return body if len(body) <= limit else None
        parts, size = [body], len(body)
        while True:
            msg = await self._receive()
            if msg["type"] == "http.disconnect":
                raise ClientGone()
            chunk = msg.get("body", b"")
            parts.append(chunk)
            size += len(chunk)
            if size > limit:
                return None
            if not msg.get("more_body"):
                return b"".join(parts)

    async def respond(self, status: int, body: bytes, rid: str, extra=(), content_type: bytes = JSON) -> None:
        self.responded = True
        # An explicit length spares the client chunked decoding.
        headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode()),
                   (b"x-request-id", rid.encode()), *extra]
        await self._send({"type": "http.response.start", "status": status, "headers": headers})
        await self._send({"type": "http.response.body", "body": body})
