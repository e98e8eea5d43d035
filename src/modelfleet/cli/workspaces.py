"""fleet workspace ..."""

from __future__ import annotations

import os
import sys

import click

from ..domain.errors import Conflict, InvalidInput
from .common import Ctx, command


@click.group("workspace", help="Create, select and remove workspaces: folders on this machine, or with "
                                "fleet login (or FLEET_SERVER) those the server hosts.")
def workspace() -> None:
    pass


def _named(ctx: Ctx, name: str | None, verb: str) -> str:
    """--name, or else -w/--workspace-name as on every other command."""
    if not (name or ctx.workspace_name):
        raise InvalidInput(f"give the workspace: fleet workspace {verb} -w NAME (or --name NAME)")
    return name or ctx.workspace_name


def _remote() -> bool:
    """With FLEET_SERVER or a login, workspaces are those the server hosts (its API); else folders here."""
    from ..client.accounts import Accounts
    return bool(os.environ.get("FLEET_SERVER") or Accounts().current())


def _pick_remote(ctx: Ctx, name: str) -> dict:
    """The login's workspace from now on (FLEET_SERVER keeps nothing: -w or FLEET_WORKSPACE say it)."""
    import dataclasses

    from ..client.accounts import Accounts
    shown = ctx.fleet.workspaces.get(name)   # it exists, and the caller may see it
    accounts = Accounts()
    account = accounts.current()
    if account is not None and not os.environ.get("FLEET_SERVER"):
        accounts.save(dataclasses.replace(account, workspace=name))
    elif name != ctx.fleet.workspace_requested:
        ctx.notice(f"notice: with FLEET_SERVER nothing is remembered: give -w {name} (or FLEET_WORKSPACE) on each command")
    return {**shown, "current": True}


@command(workspace, "create", help="Create a workspace (fleet workspace create -w NAME).")
@click.option("--name", "-n", "name_", default=None, help="Workspace name (or -w NAME).")
@click.option("--path", default=None, help="Directory for it (default: $FLEET_HOME/workspaces/NAME).")
@click.option("--default-datastore", default=None, metavar="FILE",
              help="A datastore YAML (type: azure_blob) that model and code uploads go to "
                   "(default: the workspace's own folder).")
def create(ctx: Ctx, name_, path, default_datastore):
    from ..client.datastores import load_document
    from ..schema.workspace import Workspaces
    remote = _remote()
    if remote and path:
        raise InvalidInput("--path: a workspace on a server lives in the server's folder; give --name "
                           "(and --default-datastore)")
    document = load_document(default_datastore) if default_datastore else None   # read before creating anything
    if remote:
        return ctx.emit(ctx.fleet.workspaces.create(_named(ctx, name_, "create"), document), kind="workspace")
    wss = Workspaces()
    ws = wss.create(_named(ctx, name_, "create"), path)
    shown = ws.to_dict(wss.current_name())
    if document is not None:
        from ..client.fleet import Fleet
        with Fleet(workspace=ws.name) as fleet:
            try:
                shown["default_datastore"] = fleet.datastores.create(document, default=True)["name"]
            except BaseException:   # a refused document leaves no workspace behind
                fleet.server.stop()
                wss.delete(ws.name)
                raise
    ctx.emit(shown, kind="workspace")


@command(workspace, "set", help="Make a workspace the current one (fleet workspace set -w NAME).")
@click.option("--name", "-n", "name_", default=None, help="Workspace name (or -w NAME).")
def set_(ctx: Ctx, name_):
    from ..schema.workspace import Workspaces
    name = _named(ctx, name_, "set")
    if _remote():
        return ctx.emit(_pick_remote(ctx, name), kind="workspace")
    ws = Workspaces().set_current(name)
    ctx.emit(ws.to_dict(ws.name), kind="workspace")


@command(workspace, "show", help="Show a workspace (default: the current one).")
@click.option("--name", "-n", "name_", default=None, help="Workspace name (or -w NAME).")
def show(ctx: Ctx, name_):
    if _remote():
        return ctx.emit(ctx.fleet.workspaces.get(name_ or ctx.fleet.workspace_name), kind="workspace")
    from ..client import launcher as process
    from ..schema.workspace import Workspaces
    wss = Workspaces()
    ws = wss.get(_named(ctx, name_, "show") if (name_ or ctx.workspace_name) else None)
    info = process.read_info(ws)
    out = ws.to_dict(wss.current_name())
    out["server"] = info.url if info else "stopped"
    ctx.emit(out, kind="workspace")


@command(workspace, "list", help="List workspaces.")
def list_(ctx: Ctx):
    from ..schema.workspace import Workspaces
    if _remote():
        return ctx.emit(ctx.fleet.workspaces.list(), columns=["name", "current", "primary", "url"], kind="workspace")
    wss = Workspaces()
    current = wss.current_name()
    ctx.emit([w.to_dict(current) for w in wss.list()], columns=["name", "current", "path"], kind="workspace")


@command(workspace, "delete", help="Delete a workspace and everything in it.")
@click.option("--name", "-n", "name_", default=None, help="Workspace name (or -w NAME).")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
def delete(ctx: Ctx, name_, yes):
    from ..client import launcher as process
    from ..schema.workspace import Workspaces
    name = _named(ctx, name_, "delete")
    if _remote():
        if not yes and sys.stdin.isatty():
            click.confirm(f"Delete workspace {name!r} on {ctx.fleet.connection.server_wide('')} with all its "
                          "models and endpoints?", abort=True)
        return ctx.emit(ctx.fleet.workspaces.delete(name))
    wss = Workspaces()
    ws = wss.get(name)
    if process.read_info(ws) is not None:
        raise Conflict(f"the server of workspace {name!r} is running; stop it first: fleet server stop -w {name}")
    if not yes and sys.stdin.isatty():
        click.confirm(f"Delete workspace {name!r} at {ws.path} with all its models?", abort=True)
    wss.delete(name)
    ctx.emit({"deleted": name})


@command(workspace, "migrate", help="Move the workspace's metadata into another database (its SQLite file into "
                                    "PostgreSQL) and make the server use it; the server must be stopped.")
@click.option("--name", "-n", "name_", default=None, help="Workspace name (default: the current one).")
@click.option("--to", "to_url", required=True,
              help="The target: postgresql://USER@HOST[:PORT]/DB, an empty database (password from ~/.pgpass "
                   "or PGPASSWORD).")
def migrate(ctx: Ctx, name_, to_url):
    from ..server import database_move
    from ..schema.workspace import Workspaces
    ws = Workspaces().get(_named(ctx, name_, "migrate") if (name_ or ctx.workspace_name) else None)
    ctx.emit(database_move.migrate(ws, to_url))
