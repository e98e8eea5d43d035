"""A TCP proxy the test controls, on 127.0.0.1: put between a server and PostgreSQL, `cut()` is a
network partition with both processes alive. Nothing is refused or reset: bytes stop moving on
every connection, and new connections are accepted and never answered, as behind a dropped link."""

from __future__ import annotations

import contextlib
import socket
import threading


class TcpProxy:
    def __init__(self, host: str, port: int):
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._cut = threading.Event()
        self._stopped = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> "TcpProxy":
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()
        return self

    def _keep(self, *socks: socket.socket) -> None:
        with self._lock:
            self._sockets.extend(socks)

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self._keep(client)
            if self._cut.is_set():
                continue   # held open, never answered
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            self._keep(upstream)
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), name="proxy-pump", daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        src.settimeout(0.1)
        while not self._stopped.is_set():
            if self._cut.is_set():
                self._cut_wait()
                return
            try:
                data = src.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                break
            if not data or self._cut.is_set():
                break
            try:
                dst.sendall(data)
            except OSError:
                break
        if not self._cut.is_set():
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

    def _cut_wait(self) -> None:
        self._stopped.wait()

    def cut(self) -> None:
        """The partition: from now on no byte crosses, either way."""
        self._cut.set()

    def stop(self) -> None:
        self._stopped.set()
        with contextlib.suppress(OSError):
            self.listener.close()
        with self._lock:
            for s in self._sockets:
                with contextlib.suppress(OSError):
                    s.close()
