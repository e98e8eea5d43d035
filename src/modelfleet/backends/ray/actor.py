"""A replica as a Ray actor: what runs on a Ray worker, wherever Ray placed it.

The actor receives its model and code snapshots through Ray's object store (no shared
filesystem), writes them into a node-local cache (temp directory + rename) and checks each
against its sha256, as the local backend does. It then listens on its node's address for one
TCP connection from each modelfleet server of the workspace, which must first send the replica's
secret; from there on it is the same replica as a local process (runtime/replica.py): the same
frames, the same batching, the same score.py contract, the model's calls one at a time whichever
server's gateway sent them. It outlives its connections (a leader that dies leaves it serving the
others, and the next leader adopts it); a stop through Ray ends it. Requests never pass through Ray's task path, so a
Ray replica costs the gateway one TCP hop instead of an actor call.
"""

from __future__ import annotations

import contextlib
import hmac
import os
import shutil
import socket
import tempfile
import threading
import uuid
from pathlib import Path

TOKEN_BYTES = 32
ACCEPT_TIMEOUT_S = 300.0


def cache_root() -> Path:
    return Path(tempfile.gettempdir()) / "modelfleet-ray"


def materialize(kind: str, sha256: str, packed: tuple[str, dict[str, bytes]]) -> Path:
    """A packed snapshot as a directory named by its sha256, checked on arrival against it."""
    from ...files.digests import files_digest
    prefix, files = packed
    final = cache_root() / kind / sha256
    if final.is_dir():
        return final
    found = files_digest({prefix + rel: data for rel, data in files.items()})
    if found != sha256:
        raise RuntimeError(f"{kind} snapshot {sha256[:12]} arrived with sha256 {found[:12]}: refusing it")
    staging = cache_root() / "tmp" / uuid.uuid4().hex
    for rel, data in files.items():
        path = staging / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    final.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(staging, final)
    except OSError:  # another replica on this node got there first
        shutil.rmtree(staging, ignore_errors=True)
    return final


def pack(folder: Path, prefix: str) -> tuple[str, dict[str, bytes]]:
    """A snapshot directory for the object store: (the prefix its paths carry in its sha256,
    {path relative to the directory: bytes})."""
    return prefix, {p.relative_to(folder).as_posix(): p.read_bytes()
                    for p in sorted(folder.rglob("*")) if p.is_file() and "__pycache__" not in p.parts}


class ReplicaActor:
    """Made a Ray actor class by the agent (ray.remote), so that this module imports without Ray."""

    def __init__(self, cfg: dict, env: dict, model_sha256: str, model: tuple, code_sha256: str | None,
                 code: tuple | None, token: bytes):
        import ray
        self.log_path = cache_root() / "logs" / f"{cfg['replica_id']}.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        os.environ.update(env)
        model_dir = materialize("models", model_sha256, model)
        script = None
        if code_sha256 is not None:
            script = materialize("code", code_sha256, code) / cfg["scoring_script"]
            os.chdir(script.parent)
        self.cfg = {**cfg, "model_dir": str(model_dir), "scoring_script": str(script) if script else None,
                    "log_path": str(self.log_path)}  # lines stamped with time and request id
        self.token = token
        self.host = ray.util.get_node_ip_address()
        self.node_id = ray.get_runtime_context().get_node_id()
        self.listener = socket.create_server((self.host, 0))
        self.listener.settimeout(ACCEPT_TIMEOUT_S)
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, name="replica", daemon=True).start()

    def _accept(self) -> socket.socket:
        """The next connection that brings the replica's secret; others are closed unanswered."""
        while True:
            conn, _ = self.listener.accept()
            conn.settimeout(10)
            try:
                given = conn.recv(TOKEN_BYTES, socket.MSG_WAITALL)
            except OSError:
                given = b""
            if hmac.compare_digest(given, self.token):
                conn.settimeout(None)
                return conn
            conn.close()  # not one of the workspace's servers

    def _serve(self) -> None:
        """The first connection (the server that started it) loads the model; every later one
        (another server's gateway, or a new leader adopting it) shares it. The actor outlives its
        connections: only a stop through Ray (the leader's) ends it."""
        from ...runtime.replica import serve_until_closed, start_replica
        try:
            first = self._accept()
        except OSError:  # nobody came: the server gave up on this replica
            os._exit(1)
        self.listener.settimeout(None)
        loaded = start_replica(self.cfg, first)
        if loaded is None:   # its model failed to load: INIT_FAILED said why
            os._exit(1)
        threading.Thread(target=self._serve_others, args=(loaded,), name="accept", daemon=True).start()
        with contextlib.suppress(OSError):
            serve_until_closed(loaded)   # the first server's; the others go on when it leaves

    def _serve_others(self, loaded) -> None:
        from ...runtime.replica import serve_another
        while True:
            try:
                conn = self._accept()
            except OSError:
                return
            threading.Thread(target=serve_another, args=(loaded, conn), name="connection", daemon=True).start()

    def address(self) -> dict:
        return {"host": self.host, "port": self.port, "pid": os.getpid(),
                "node_id": self.node_id}

    def log_tail(self, lines: int) -> str:
        from ...files.fsutil import tail_lines
        return "\n".join(tail_lines(self.log_path, lines))
