"""The activity log in the control API: every change, and every refused one, appended before the
caller has its answer; `GET /api/activity-log?since=&caller=&format=json|access-log`.

`ActivityRecorder` wraps the API app (raw ASGI): it gives each request an id (the
`x-request-id` header), lets the authorizer note who asked for which action (auth.Audit), and
when the answer's status is known appends who, when, the action, the resource, the client's
address, the result and the request id. Reads are not changes and are not logged.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

import orjson
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

from ...domain.errors import InvalidInput
from ...files import logfmt
from ...store.activity import Activity, ActivityStore
from ...store.db import utcnow
from ..telemetry.access_log import activity_line
from .auth import AUDIT, PREFIXED, Audit

log = logging.getLogger("modelfleet.activity")

REQUEST_ID = "modelfleet.request_id"
MAX_LISTED = 10_000
RESOURCE_CHARS, MESSAGE_CHARS = 256, 1000


class ActivityRecorder:
    def __init__(self, app, activity: ActivityStore):
        self.app = app
        self.activity = activity

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            return await self.app(scope, receive, send)
        audit = scope[AUDIT] = Audit()
        request_id = scope[REQUEST_ID] = uuid.uuid4().hex[:16]
        held: list[dict] = []

        async def recording_send(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []),
                                                  (b"x-request-id", request_id.encode())]}
                if not _is_change(audit, scope["method"]):
                    return await send(message)
                if message["status"] < 400:
                    await self._append(scope, audit, message["status"], None)
                    return await send(message)
                held.append(message)   # a refusal: its one line comes in the body
                return None
            if held and message["type"] == "http.response.body":
                start = held.pop()
                await self._append(scope, audit, start["status"], _error_message(message.get("body", b"")))
                await send(start)
            return await send(message)

        try:
            await self.app(scope, receive, recording_send)
        except Exception:   # a bug: the 500 the caller gets is logged as a failed change too
            if _is_change(audit, scope["method"]):
                await self._append(scope, audit, 500, f"internal error (request {request_id})")
            raise

    async def _append(self, scope, audit: Audit, status: int, message: str | None) -> None:
        client = scope.get("client")
        entry = Activity(at=utcnow(), caller=audit.caller or "(unauthenticated)",
                         operation=audit.action or f"{scope['method']} (no action declared)",
                         resource=_resource(scope)[:RESOURCE_CHARS],
                         status="Succeeded" if status < 400 else "Failed", http_status=status,
                         client=client[0] if client else "", correlation_id=scope[REQUEST_ID],
                         message=message[:MESSAGE_CHARS] if message else None)
        try:
            await asyncio.to_thread(self.activity.append, entry)
        except Exception:   # the answer still goes out; the gap is in server.log
            log.exception("could not append to the activity log: %s %s by %s", entry.operation, entry.resource,
                          entry.caller)


def _resource(scope) -> str:
    """What was changed: models/iris/versions/3, and workspaces/NAME/... for a request under a
    workspace's prefix."""
    path = scope["path"].removeprefix("/api/")
    return f"workspaces/{scope[PREFIXED]}/{path}" if PREFIXED in scope else path


def _is_change(audit: Audit, method: str) -> bool:
    return (not audit.is_read) if audit.action else method not in ("GET", "HEAD", "OPTIONS")


def _error_message(body: bytes) -> str | None:
    try:
        return orjson.loads(body)["error"]["message"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None


def add_routes(app: FastAPI, activity: ActivityStore) -> None:
    @app.get("/api/activity-log")
    async def activity_log(since: str | None = None, caller: str | None = None, limit: int = 1000,
                           format: str = "json"):
        """Changes and refused changes, oldest first: `since` a duration (1h) or a time; `caller`
        a principal; `format=access-log` the access log's JSON lines (text/plain)."""
        if format not in ("json", "access-log"):
            raise InvalidInput(f"format {format!r}: use json or access-log")
        start = logfmt.since(since) if since else None
        entries = await asyncio.to_thread(activity.list, since=start, caller=caller,
                                          limit=min(max(1, limit), MAX_LISTED))
        if format == "access-log":
            return PlainTextResponse("".join(activity_line(e.to_dict()) + "\n" for e in entries))
        return [e.to_dict() for e in entries]
