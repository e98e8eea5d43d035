"""A warm parent for replicas: imports numpy, scikit-learn and the runtime once, then forks.

A fresh interpreter spends about a second importing the ML stack before it can load a model; a
fork of this process starts in a few milliseconds and shares those pages copy-on-write. The
server talks to it over one socketpair:

    server -> zygote   a JSON spawn request, with the replica's socket passed as a file descriptor
    zygote -> server   one JSON message per event: {"id": n, "pid": p} after a fork,
                       {"exited": p, "code": c} when a child of its own ends

The socketpair is SOCK_SEQPACKET, so every message arrives whole and alone.

The zygote stays single-threaded (BLAS thread pools pinned to one thread before import) so that
forking it is safe, and dies with the server (PR_SET_PDEATHSIG). It is not a single point of
failure: when the server is a child subreaper ($FLEET_SUBREAPER holds its pid), each replica is
forked twice and the intermediate process exits at once, so the kernel re-parents the replica to
the server, which reaps it; the replica then dies with the server, not with the zygote. Killing
the zygote (or the OOM killer choosing it) leaves every replica serving; the server starts a new
zygote when it next needs one.
"""

from __future__ import annotations

import contextlib
import gc
import os
import select
import signal
import socket
import sys

import orjson

WARM_IMPORTS = ("numpy", "joblib", "sklearn", "sklearn.base", "sklearn.utils", "sklearn.linear_model",
                "sklearn.ensemble", "sklearn.tree", "sklearn.pipeline", "sklearn.preprocessing",
                "sklearn.svm", "sklearn.neighbors", "onnxruntime")   # onnxruntime: the fast path (the fast extra)


def _warm() -> None:
    import importlib
    for name in WARM_IMPORTS:
        try:
            importlib.import_module(name)
        except Exception:  # a missing optional module only costs its replicas a slower start
            pass
    # What the imports made is shared with every fork: frozen, a child's collections never walk
    # it, so they neither pause on it nor write to (and so copy) the pages it lies on
    gc.collect()
    gc.freeze()


ZYGOTE_OOM_SCORE_ADJ = 500   # below replicas (800), above the server: a replica is the first to go


def _child(ctl: socket.socket, inherited: tuple[int, ...], cfg: dict, fd: int, server_pid: int) -> None:
    from .replica import die_with_parent, die_with_server, run
    if cfg.get("worker"):  # a shared multi-model worker rather than a replica
        from .worker import run
    code = 0
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for end in inherited:
            os.close(end)
        ctl.close()
        name = f"mf:{cfg.get('deployment', '')}"
        if server_pid:
            if not die_with_server(server_pid, name):
                os._exit(1)  # the server died while we were being forked
        else:
            die_with_parent(name)
        try:
            log = os.open(cfg["log_path"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError:  # a full or read-only disk loses the replica's log, never the replica
            log = os.open(os.devnull, os.O_WRONLY)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        os.environ.clear()
        os.environ.update(cfg["environ"])
        if cfg.get("cwd"):
            os.chdir(cfg["cwd"])
        cfg["fd"] = fd
        run(cfg)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:
        import traceback
        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _reap(ctl: socket.socket) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        ctl.sendall(orjson.dumps({"exited": pid, "code": os.waitstatus_to_exitcode(status)}))


def _fork(ctl: socket.socket, wake: tuple[int, int], req: dict, fd: int, server_pid: int) -> int:
    """Fork a replica; its pid. With a subreaper server, fork twice (see the module's docstring)."""
    if not server_pid:
        pid = os.fork()
        if pid == 0:
            _child(ctl, wake, req, fd, 0)
        return pid
    r, w = os.pipe()
    middle = os.fork()
    if middle == 0:
        try:
            pid = os.fork()
            if pid == 0:
                _child(ctl, (*wake, r, w), req, fd, server_pid)
            os.write(w, pid.to_bytes(4, "big"))
        finally:
            os._exit(0)
    os.close(w)
    try:
        data = os.read(r, 4)
    finally:
        os.close(r)
        os.waitpid(middle, 0)
    if len(data) != 4:
        raise OSError("the replica could not be forked")
    return int.from_bytes(data, "big")


def main() -> None:
    from .replica import die_with_parent, oom_priority
    die_with_parent("mf-zygote")
    oom_priority(ZYGOTE_OOM_SCORE_ADJ)
    server_pid = int(os.environ.pop("FLEET_SUBREAPER", "0") or 0)
    ctl = socket.socket(fileno=int(os.environ["FLEET_ZYGOTE_FD"]))
    ctl.setblocking(True)
    _warm()
    # SIGCHLD writes to a pipe that select watches, so an exit is reported at once.
    wake = os.pipe()
    for end in wake:
        os.set_blocking(end, False)
    signal.set_wakeup_fd(wake[1])
    signal.signal(signal.SIGCHLD, lambda *_: None)
    ctl.sendall(b'{"ready": true}')
    while True:
        readable, _, _ = select.select([ctl, wake[0]], [], [], 1.0)
        if wake[0] in readable:
            with contextlib.suppress(BlockingIOError):
                os.read(wake[0], 4096)
        _reap(ctl)
        if ctl not in readable:
            continue
        msg, fds, _, _ = socket.recv_fds(ctl, 1 << 20, 1)
        if not msg:
            return  # the server is gone
        req = orjson.loads(msg)
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            pid = _fork(ctl, wake, req, fds[0], server_pid)
        except OSError as e:  # out of processes or memory: the server falls back to a fresh interpreter
            print(f"cannot fork a replica: {e}", file=sys.stderr, flush=True)
            pid = 0
        finally:
            os.close(fds[0])
        ctl.sendall(orjson.dumps({"id": req["id"], "pid": pid}))


if __name__ == "__main__":
    main()
