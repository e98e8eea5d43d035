"""fleet server ..."""

from __future__ import annotations

import sys

import click

from .common import Ctx, command


@click.group("server", help="The workspace server (control API + gateway).")
def server() -> None:
    pass


def _address_options(fn):
    """Options saved in the workspace settings: every later start (and auto-start) reuses them."""
    for opt in reversed([
        click.option("--host", default=None,
                     help="Address to listen on (default 127.0.0.1); beyond loopback it needs TLS. Saved."),
        click.option("--port", type=click.IntRange(0, 65535), default=None,
                     help="Port (saved; default: a free port chosen at the first start and kept; 0: a new one)."),
        click.option("--ssl-certfile", default=None, help="TLS certificate (PEM); with --ssl-keyfile. '' turns TLS off."),
        click.option("--ssl-keyfile", default=None, help="TLS private key (PEM)."),
        click.option("--allow-open-endpoints/--no-allow-open-endpoints", default=None,
                     help="Allow auth_mode none endpoints beyond loopback."),
        click.option("--allow-plain-http/--no-allow-plain-http", default=None,
                     help="Listen beyond loopback without TLS (only behind a TLS proxy)."),
        click.option("--database-url", default=None,
                     help="Keep the metadata in PostgreSQL: postgresql://USER@HOST[:PORT]/DB (password from "
                          "~/.pgpass or PGPASSWORD). Saved; '' returns to the workspace's SQLite file. "
                          "To move existing metadata there: fleet workspace migrate --to URL."),
    ]):
        fn = opt(fn)
    return fn


def _changes(**options) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in options.items() if v is not None and v != ()}


@command(server, "start", help="Start the server in the background (or --foreground).")
@_address_options
@click.option("--foreground", is_flag=True, help="Run in this process (for systemd or a container).")
@click.option("--join", is_flag=True,
              help="Start another server for this workspace beside the running one (on PostgreSQL; its own "
                   "port, --port or a free one); one of them runs the controller. See fleet server list.")
def start(ctx: Ctx, foreground, join, **options):
    from ..client import launcher
    changes = _changes(**options)
    if join:
        if foreground:
            sys.exit(launcher.run_foreground(ctx.fleet.workspace, {**changes, "join": True}))
        ctx.emit(ctx.fleet.server.join(**changes))
        return
    if foreground:
        if ctx.fleet.workspace is None:
            ctx.fleet.server.start()   # refused: a remote server is started where it runs
        sys.exit(launcher.run_foreground(ctx.fleet.workspace, changes))
    info, started = ctx.fleet.server.start(**changes)
    if not started:
        ctx.notice(f"already running (pid {info['pid']})" +
                   ("; the new settings are saved and apply at the next start (fleet server restart)"
                    if changes else ""))
    ctx.emit(info)


@command(server, "restart", help="Stop the server (draining requests in flight), then start it again.")
@_address_options
def restart(ctx: Ctx, **options):
    ctx.fleet.server.stop()
    info, _ = ctx.fleet.server.start(**_changes(**options))
    ctx.emit(info)


@command(server, "stop", help="Stop the server and its replicas (requests in flight are answered first).")
def stop(ctx: Ctx):
    info = ctx.fleet.server.stop()
    ctx.emit({"status": "stopped", "pid": info["pid"]} if info else {"status": "not running"})


@command(server, "status", help="Is the server running, and where.")
@click.option("--show-token", is_flag=True,
              help="Also print the admin token (FLEET_TOKEN for clients elsewhere); only the owner of the "
                   "workspace folder can read it.")
def status(ctx: Ctx, show_token):
    ctx.emit(ctx.fleet.server.status(show_token=show_token))


@command(server, "list", help="The workspace's servers: address, host/pid, leader or follower and since when, "
                               "last heartbeat.")
def list_servers(ctx: Ctx):
    ctx.emit(ctx.fleet.server.list(), columns=["url", "host", "pid", "role", "since", "last_heartbeat"])


@command(server, "configure", help="Show or change the saved server settings (applied at the next start).")
@_address_options
@click.option("--admin-token-file", default=None,
              help="Read a fixed admin token from this file ('' : a new token per start, the default).")
@click.option("--metrics-auth", type=click.Choice(["auto", "token", "none"]), default=None,
              help="GET /metrics: auto (open on loopback, admin token beyond), token, or none.")
@click.option("--access-log/--no-access-log", default=None, help="Write logs/access.log (JSON lines).")
@click.option("--access-log-max-bytes", type=int, default=None, help="Rotate the access log at this size.")
@click.option("--access-log-backups", type=int, default=None, help="Rotated access logs to keep.")
@click.option("--drain-timeout", "drain_timeout_s", type=float, default=None,
              help="At a stop, how long to wait for requests in flight (seconds).")
@click.option("--idle-timeout", "idle_timeout_s", type=float, default=None,
              help="Close a connection with no request for this long (seconds).")
@click.option("--header-timeout", "header_timeout_s", type=float, default=None,
              help="A request's headers must arrive within this long, and its body may not pause longer.")
@click.option("--max-connections", type=int, default=None,
              help="Beyond this, a new connection closes the oldest one with no request in progress.")
@click.option("--shared-workers", type=int, default=None,
              help="Shared multi-model worker processes (default: one per core, 2 to 8).")
@click.option("--shared-worker-memory", default=None,
              help="Each shared worker's memory budget for loaded models (512Mi, 2Gi; default 1Gi).")
@click.option("--node-cache-size", default=None,
              help="The bound of each Ray node's cache of datastore blobs (50Gi; default 20Gi).")
@click.option("--python-policy", type=click.Choice(["nearest", "strict"]), default=None,
              help="An environment's Python not installed: build on the nearest found (with a warning), or refuse.")
@click.option("--python", "pythons", multiple=True, default=None,
              help="An interpreter environments may use beyond those found (repeatable; '' clears the list).")
@click.option("--lease-duration", "lease_duration_s", type=float, default=None,
              help="Several servers on PostgreSQL: the controller's lease (seconds, default 6); a follower "
                   "takes over within about this long of the leader's death.")
@click.option("--python-downloads/--no-python-downloads", default=None,
              help="Let uv download a Python an environment asks for when none is installed (default: no).")
def configure(ctx: Ctx, **options):
    ctx.emit(ctx.fleet.server.configure(**_changes(**options)))
