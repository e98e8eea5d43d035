"""The gateway <-> replica wire format: length-prefixed frames over one socket per replica.

Each frame is a 9-byte header ``!IIB`` (payload length, request id, kind) then the payload.
Requests carry the raw HTTP body untouched; many requests are in flight on one connection at
once (matched by id), so there is no connection pool, no HTTP parsing and no copying into
intermediate objects on the hot path.
"""

from __future__ import annotations

import struct

HEADER = struct.Struct("!IIB")
HEADER_SIZE = HEADER.size

# gateway -> replica
SCORE = 1      # payload: the request id, then the request body as received (see request_frame)
PING = 2       # liveness probe
V2_INFER = 3   # payload: the request id, then the JSON header length (4 bytes), then the V2 body

# replica -> gateway
OK = 0             # payload: JSON answer (V2_INFER: a 4-byte JSON length, 0 if all JSON, then the body)
MODEL_ERROR = 1    # the model (or score.py) raised; payload: JSON error
BAD_REQUEST = 2    # the body could not be turned into model input; payload: JSON error
READY = 10         # init finished; payload: JSON {"pid", "metadata": the model's V2 inputs and outputs}
INIT_FAILED = 11   # init raised; payload: the traceback text
PONG = 12          # payload: resident memory (8 bytes), the running model call's age in ms (4 bytes), then
                   # the usual model call's duration in microseconds (4 bytes)
BATCH = 13         # one model call scored several requests; payload: how many (2 bytes)

# The exit code of a replica that ran out of room under its memory limit (runtime/memory.py).
EXIT_MEMORY_LIMIT = 3

# A multi-model worker (runtime/worker.py) speaks the same frames, with a model key in front of
# the payload (see keyed): server -> worker
LOAD = 20          # key, then the model's JSON config: register it and load it; answered LOADED
UNLOAD = 21        # key: forget the model and free its memory; answered UNLOADED
MODEL_SCORE = 22   # key, then as SCORE
MODEL_V2 = 23      # key, then as V2_INFER
# worker -> server (PING is answered with PONG, then WORKER_STATS; heartbeats are PONGs with id 0)
LOADED = 24        # key, then JSON {"ms", "bytes"}: on the LOAD's id, or id 0 for a reload on demand
LOAD_FAILED = 25   # key, then the traceback text
UNLOADED = 26      # key
EVICTED = 27       # key, then the worker's memory as in WORKER_STATS (id 0): unloaded to stay within the budget
UNKNOWN_MODEL = 28 # key: a request for a model that is not registered
WORKER_READY = 29  # JSON {"pid", "rss"} once, when the worker starts
MODEL_BATCH = 30   # key, then as BATCH
WORKER_STATS = 31  # JSON: the worker's memory (rss, baseline, used by loaded models, budget, frees, ...)


def frame(req_id: int, kind: int, payload: bytes = b"") -> bytes:
    return HEADER.pack(len(payload), req_id, kind) + payload


def request_frame(req_id: int, kind: int, request_id: bytes, body: bytes, prefix: bytes = b"") -> bytes:
    """A SCORE or V2_INFER frame: one byte of length and the gateway's request id (for the
    replica's log lines), `prefix`, then the body, joined in one copy."""
    request_id = request_id[:255]
    return b"".join((HEADER.pack(1 + len(request_id) + len(prefix) + len(body), req_id, kind),
                     bytes((len(request_id),)), request_id, prefix, body))


def pong(rss: int | None, busy_ms: int, usual_us: int = 0) -> bytes:
    """A PONG's payload; with id 0 it is a heartbeat the replica sends unasked."""
    return ((rss or 0).to_bytes(8, "big") + min(busy_ms, 0xFFFFFFFF).to_bytes(4, "big")
            + min(usual_us, 0xFFFFFFFF).to_bytes(4, "big"))


def split_pong(payload: bytes) -> tuple[int | None, float, float]:
    """(resident bytes or None, seconds the running model call has taken so far, seconds a model
    call usually takes (0: none yet)) of a PONG."""
    rss = int.from_bytes(payload[:8], "big") or None
    return rss, int.from_bytes(payload[8:12], "big") / 1000.0, int.from_bytes(payload[12:16], "big") / 1e6


def keyed(key: bytes, payload: bytes = b"") -> bytes:
    """A payload with a model key in front: one byte of length, then the key."""
    return bytes((len(key),)) + key + payload


def split_key(payload: bytes) -> tuple[str, bytes]:
    """(model key, the rest) of a keyed payload."""
    n = payload[0] if payload else 0
    return payload[1:1 + n].decode("utf-8", "replace"), payload[1 + n:]


def keyed_request_frame(req_id: int, kind: int, key: bytes, request_id: bytes, body: bytes,
                        prefix: bytes = b"") -> bytes:
    """A MODEL_SCORE or MODEL_V2 frame: the key, then as request_frame, joined in one copy."""
    request_id = request_id[:255]
    return b"".join((HEADER.pack(2 + len(key) + len(request_id) + len(prefix) + len(body), req_id, kind),
                     bytes((len(key),)), key, bytes((len(request_id),)), request_id, prefix, body))


def split_request(payload: bytes) -> tuple[str, bytes]:
    """(request id, the rest) of a request frame's payload."""
    n = payload[0] if payload else 0
    return payload[1:1 + n].decode("ascii", "replace"), payload[1 + n:]


def split_frames(buf: bytearray) -> list[tuple[int, int, bytes]]:
    """Remove and return every complete frame at the start of `buf`."""
    out = []
    pos = 0
    n = len(buf)
    while n - pos >= HEADER_SIZE:
        length, req_id, kind = HEADER.unpack_from(buf, pos)
        end = pos + HEADER_SIZE + length
        if end > n:
            break
        out.append((req_id, kind, bytes(buf[pos + HEADER_SIZE:end])))
        pos = end
    if pos:
        del buf[:pos]
    return out
