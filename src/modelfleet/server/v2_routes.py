"""Open Inference Protocol v2 REST routes: endpoint = model name, deployment = model version."""

from __future__ import annotations

import orjson

from ..version import __version__
from ..backends.base import RequestKind
from .telemetry import unknown_endpoint


async def dispatch(gw, parts: list[str], method: str, scope, receive, send, rid: str, headers: dict):
    if parts[0] != "v2":
        return await gw._error(send, 404, "not_found", f"no route for {scope['path']}", rid, True)
    rest = parts[1:]
    if rest in ([], [""]):
        return await gw._send(send, 200, orjson.dumps(
            {"name": "modelfleet", "version": __version__, "extensions": []}), rid)
    if rest == ["health", "live"]:
        return await gw._send(send, 200, b'{"live":true}', rid)
    if rest == ["health", "ready"]:
        return await gw._send(send, 200 if gw.ready else 503, orjson.dumps({"ready": gw.ready}), rid)
    if len(rest) < 2 or rest[0] != "models":
        return await gw._error(send, 404, "not_found", f"no route for {scope['path']}", rid, True)
    ep = gw.routes.get(rest[1])
    if ep is None:
        if rest[-1] == "infer":
            unknown_endpoint(scope)
        return await gw._error(send, 404, "not_found", f"model {rest[1]!r} not found", rid, True)
    tail = rest[2:]
    version = None
    if len(tail) >= 2 and tail[0] == "versions":
        version, tail = tail[1], tail[2:]
        if version not in ep.deployments:
            return await gw._error(send, 404, "not_found",
                                   f"version {version!r} of model {ep.name!r} not found", rid, True)
    if tail == ["infer"]:
        if method != "POST":
            return await gw._error(send, 405, "method_not_allowed", "use POST", rid, True)
        return await gw.serve(scope, receive, send, ep, version, RequestKind.V2_INFER, rid, headers)
    if method != "GET":
        return await gw._error(send, 405, "method_not_allowed", "use GET", rid, True)
    if ep.auth_mode == "key" and not gw._authorized(ep, headers.get(b"authorization")):
        return await gw._error(send, 401, "unauthorized", "missing or invalid key", rid, True)
    if tail == ["ready"]:
        deps = [ep.deployments[version]] if version else ep.live
        ready = any(d.replicas for d in deps)
        return await gw._send(send, 200 if ready else 503, orjson.dumps({"name": ep.name, "ready": ready}), rid)
    if tail == []:
        meta = {"name": ep.name, "versions": sorted(ep.deployments), "platform": "modelfleet",
                "inputs": [], "outputs": []}
        return await gw._send(send, 200, orjson.dumps(meta), rid)
    return await gw._error(send, 404, "not_found", f"no route for {scope['path']}", rid, True)
