"""A replica as a Ray actor: what runs on a Ray worker, wherever Ray placed it.

The actor reads its model and code from the workspace's default datastore into the node's cache
(datastores/trees.py: every blob checked against its sha256, pinned while the actor lives,
nothing read remotely when the node holds it already): the server is not on the path. While
the workspace's own folder is its datastore, the snapshots come through Ray's object store
instead (no shared filesystem), written into a node-local folder (temp directory + rename) and
checked against their sha256, as the local backend does. It then listens on its node's address
for one TCP connection from each modelfleet server of the workspace, which must first send the
replica's secret; from there on it is the same replica as a local process (runtime/replica.py):
the same frames, the same batching, the same score.py contract, the model's calls one at a time
whichever server's gateway sent them. It outlives its connections (a leader that dies leaves it
serving the others, and the next leader adopts it); a stop through Ray ends it. Requests never pass through Ray's task path, so a
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


NODE_CACHE_ENV = "FLEET_NODE_CACHE"   # the node cache's folder on this node, when not the default


def cache_root() -> Path:
    return Path(tempfile.gettempdir()) / "modelfleet-ray"


def node_cache_root() -> Path:
    """The node cache every replica and worker on this node shares ($FLEET_NODE_CACHE in the
    node's environment, else a folder in its temporary directory)."""
    return Path(os.environ.get(NODE_CACHE_ENV) or cache_root() / "cache")


def from_datastore(kind: str, sha256: str, source: dict):
    """A snapshot read from its datastore into the node cache: a `Tree`, pinned until released."""
    from ...datastores import NodeCache, open_datastore, parse_document, trees
    cache = NodeCache(node_cache_root(), source["cache_bytes"])
    cache.sweep_tmp()   # downloads a crashed replica left on this node
    store = open_datastore(parse_document(source["document"], "the workspace's default datastore"))
    return trees.build(cache, store, kind, sha256, source["files"])


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

    def __init__(self, cfg: dict, env: dict, model_sha256: str, model: tuple | dict, code_sha256: str | None,
                 code: tuple | dict | None, token: bytes):
        """`model` and `code`: a packed snapshot (pack), or {document, files, cache_bytes, root}:
        read it from that datastore."""
        import ray
        self.log_path = cache_root() / "logs" / f"{cfg['endpoint']}.{cfg['replica_id']}.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        os.environ.update(env)
        self.tree = None
        if isinstance(model, dict):
            self.tree = from_datastore("models", model_sha256, model)
            model_dir = self.tree.path
        else:
            model_dir = materialize("models", model_sha256, model)
        script = None
        if isinstance(code, dict):
            self.code_tree = from_datastore("code", code_sha256, code)
            script = self.code_tree.path / code["root"] / cfg["scoring_script"]
            os.chdir(script.parent)
        elif code_sha256 is not None:
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
        return {"host": self.host, "port": self.port, "pid": os.getpid(), "node_id": self.node_id,
                "fetched_bytes": self.tree.fetched_bytes if self.tree else None}

    def log_tail(self, lines: int) -> str:
        from ...files.fsutil import tail_lines
        return "\n".join(tail_lines(self.log_path, lines))
