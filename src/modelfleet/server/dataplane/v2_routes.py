"""Open Inference Protocol v2 REST routes: endpoint = model name, deployment = model version.

Every route answers one method (GET, or POST for infer) and any other with 405 and `Allow`.
Model metadata lists the tensors the replica found in its model when it loaded (READY frame),
carried on the deployment's route as `metadata`.
"""

from __future__ import annotations

import orjson

from ...version import __version__
from ...backends.base import RequestKind
from ..telemetry.hooks import unknown_endpoint

EXTENSIONS = ["binary_tensor_data"]


async def _not_allowed(gw, ex, allowed: bytes, rid: str):
    return await gw._error(ex, 405, "method_not_allowed", f"use {allowed.decode()}", rid, True,
                           extra=[(b"allow", allowed)])


def unframe(payload: bytes) -> tuple[bytes, bytes, tuple]:
    """A replica frames a V2 answer as a 4-byte JSON length and the body (runtime/v2.py): (the
    body, its content type, extra headers), naming the length in Inference-Header-Content-Length
    when binary tensors follow."""
    hlen, body = int.from_bytes(payload[:4], "big"), payload[4:]
    if hlen:
        return body, b"application/octet-stream", ((b"inference-header-content-length", str(hlen).encode()),)
    return body, b"application/json", ()


def header_length(headers: dict) -> int:
    """The JSON header length of an infer request with binary tensors (0: none)."""
    hlen = headers.get(b"inference-header-content-length", b"0")
    return int(hlen) if hlen.isdigit() and len(hlen) < 10 else 0


def _metadata(ep, version: str | None) -> dict:
    """The tensors of one version, or of the deployment taking the largest share of traffic."""
    if version is not None:
        dep = ep.deployments[version]
    elif ep.live:
        shares = [w - (ep.weights[i - 1] if i else 0) for i, w in enumerate(ep.weights)]
        dep = ep.live[shares.index(max(shares))]
    else:
        dep = ep.deployments[min(ep.deployments)] if ep.deployments else None
    meta = dep.metadata if dep is not None else {}
    return {"inputs": meta.get("inputs", []), "outputs": meta.get("outputs", [])}


async def dispatch(gw, parts: list[str], ex, rid: str):
    method = ex.method
    if parts[0] != "v2":
        return await gw._error(ex, 404, "not_found", f"no route for {ex.path}", rid, True)
    rest = parts[1:]
    if rest in ([], [""], ["health", "live"], ["health", "ready"]):
        if method != "GET":
            return await _not_allowed(gw, ex, b"GET", rid)
        if rest == ["health", "live"]:
            return await gw._send(ex, 200, b'{"live":true}', rid)
        if rest == ["health", "ready"]:
            return await gw._send(ex, 200 if gw.ready else 503, orjson.dumps({"ready": gw.ready}), rid)
        return await gw._send(ex, 200, orjson.dumps(
            {"name": "modelfleet", "version": __version__, "extensions": EXTENSIONS}), rid)
    if len(rest) < 2 or rest[0] != "models":
        return await gw._error(ex, 404, "not_found", f"no route for {ex.path}", rid, True)
    ep = gw.endpoint(rest[1], ex)
    if ep is None:
        if rest[-1] == "infer":
            unknown_endpoint(ex.trace)
        return await gw._error(ex, 404, "not_found", f"model {rest[1]!r} not found", rid, True)
    tail = rest[2:]
    version = None
    if len(tail) >= 2 and tail[0] == "versions":
        version, tail = tail[1], tail[2:]
        if version not in ep.deployments:
            return await gw._error(ex, 404, "not_found",
                                   f"version {version!r} of model {ep.name!r} not found", rid, True)
    if tail not in ([], ["ready"], ["infer"]):
        return await gw._error(ex, 404, "not_found", f"no route for {ex.path}", rid, True)
    if tail == ["infer"]:
        if method != "POST":
            return await _not_allowed(gw, ex, b"POST", rid)
        return await gw.serve(ex, ep, version, RequestKind.V2_INFER, rid)
    if method != "GET":
        return await _not_allowed(gw, ex, b"GET", rid)
    if not gw.hides_endpoints and not gw.admits(ep, ex):   # else gw.endpoint() checked it
        return await gw._error(ex, 401, "unauthorized", "missing or invalid key", rid, True)
    if tail == ["ready"]:
        deps = [ep.deployments[version]] if version else ep.live
        ready = any(d.replicas for d in deps)
        return await gw._send(ex, 200 if ready else 503, orjson.dumps({"name": ep.name, "ready": ready}), rid)
    meta = {"name": ep.name, "versions": sorted(ep.deployments), "platform": "modelfleet", **_metadata(ep, version)}
    return await gw._send(ex, 200, orjson.dumps(meta), rid)
