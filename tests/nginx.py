"""Debian's nginx as the load balancer in front of several fleet servers, for the tests and the
benchmark: a config in a temporary folder, nginx on 127.0.0.1 on a free port with its own pid,
error and access logs, `daemon off` as a child this object owns, stopped by its pid.

A request a dead server cannot take (connection refused, reset, or a timeout) goes to the next
server, POSTs too (`proxy_next_upstream error timeout non_idempotent`): scoring is idempotent for
the servers, so a server killed mid-request costs the client nothing.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import httpx
import psutil

from .helpers import free_port, wait_until

CONFIG = """
daemon off;
master_process on;
worker_processes 1;
{user}
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log {root}/access.log;
    client_body_temp_path {root}/client_body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    upstream fleet {{
{servers}
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 100m;
        location / {{
            proxy_pass http://fleet;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_next_upstream error timeout non_idempotent;
            proxy_next_upstream_tries 4;
            proxy_connect_timeout 2s;
            proxy_read_timeout 120s;
        }}
    }}
}}
"""


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if found is None:
        raise RuntimeError("nginx is not installed: `make test` installs Debian's nginx package")
    return found


class Nginx:
    """nginx balancing over `upstreams` (host:port of each server)."""

    def __init__(self, upstreams: list[str]):
        self.root = Path(tempfile.mkdtemp(prefix="fleet-nginx-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self._stderr = None
        self._write(upstreams)

    def _write(self, upstreams: list[str]) -> None:
        # a server that refused a connection is tried again after a second, not nginx's 10 s
        servers = "\n".join(f"        server {u} max_fails=1 fail_timeout=1s;" for u in upstreams)
        user = "user root;" if os.geteuid() == 0 else ""   # its workers read this folder
        (self.root / "nginx.conf").write_text(CONFIG.format(root=self.root, port=self.port, servers=servers,
                                                            user=user))

    def start(self) -> "Nginx":
        self._stderr = open(self.root / "stderr.log", "wb")
        self.proc = subprocess.Popen([nginx_binary(), "-p", str(self.root), "-c", str(self.root / "nginx.conf"),
                                      "-e", str(self.root / "error.log")],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._stderr,
                                     start_new_session=True)

        def answers() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited: {(self.root / 'stderr.log').read_text()[-500:]}")
            try:
                httpx.get(self.url, timeout=1)
                return True
            except httpx.HTTPError:
                return False
        wait_until(answers, timeout=15)
        return self

    def reload(self, upstreams: list[str]) -> None:
        """New upstreams (SIGHUP: new workers; the old ones finish their requests and close their
        connections). Returns once the old workers are gone, so that no load starts on a connection
        an old worker is about to close."""
        old = {p.pid for p in psutil.Process(self.proc.pid).children()}
        self._write(upstreams)
        os.kill(self.proc.pid, signal.SIGHUP)
        wait_until(lambda: not old & {p.pid for p in psutil.Process(self.proc.pid).children()}, timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)   # graceful: workers finish their requests
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)   # its own group: the master and its workers
                self.proc.wait()
        if self._stderr is not None:
            self._stderr.close()
        shutil.rmtree(self.root, ignore_errors=True)
