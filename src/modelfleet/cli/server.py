"""fleet server ..."""

from __future__ import annotations

import sys

import click

from .common import Ctx, command


@click.group("server", help="The workspace server (control API + gateway).")
def server() -> None:
    pass


@command(server, "start", help="Start the server in the background (or --foreground).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=0, help="Default: a free port.")
@click.option("--foreground", is_flag=True, help="Run in this process (for systemd or a container).")
@click.option("--allow-open-endpoints", is_flag=True,
              help="Allow auth_mode none endpoints on a non-loopback address.")
def start(ctx: Ctx, host, port, foreground, allow_open_endpoints):
    from ..server import process
    if foreground:
        sys.exit(process.run_foreground(ctx.fleet.workspace, host=host, port=port, allow_open=allow_open_endpoints))
    info, started = ctx.fleet.server.start(host, port, allow_open_endpoints)
    if not started:
        ctx.notice(f"already running (pid {info['pid']})")
    ctx.emit(info)


@command(server, "stop", help="Stop the server and its replicas.")
def stop(ctx: Ctx):
    info = ctx.fleet.server.stop()
    ctx.emit({"status": "stopped", "pid": info["pid"]} if info else {"status": "not running"})


@command(server, "status", help="Is the server running, and where.")
def status(ctx: Ctx):
    ctx.emit(ctx.fleet.server.status())
