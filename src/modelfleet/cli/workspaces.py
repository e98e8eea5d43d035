"""fleet workspace ..."""

from __future__ import annotations

import sys

import click

from ..errors import Conflict
from .common import Ctx, command


@click.group("workspace", help="Create, select and remove workspaces.")
def workspace() -> None:
    pass


@command(workspace, "create", help="Create a workspace.")
@click.option("--name", required=True)
@click.option("--path", default=None, help="Directory for it (default: $FLEET_HOME/workspaces/NAME).")
def create(ctx: Ctx, name, path):
    from ..workspace import Workspaces
    ws = Workspaces().create(name, path)
    ctx.emit(ws.to_dict())


@command(workspace, "set", help="Make a workspace the current one (fleet workspace set -w NAME).")
@click.option("--name", "name_", default=None, help="Workspace name (or -w NAME).")
def set_(ctx: Ctx, name_):
    from ..errors import InvalidInput
    from ..workspace import Workspaces
    if not (name_ or ctx.workspace_name):
        raise InvalidInput("give the workspace: fleet workspace set -w NAME")
    ws = Workspaces().set_current(name_ or ctx.workspace_name)
    ctx.emit(ws.to_dict(ws.name))


@command(workspace, "show", help="Show a workspace (default: the current one).")
@click.option("--name", default=None)
def show(ctx: Ctx, name):
    from ..server import process
    from ..workspace import Workspaces
    wss = Workspaces()
    ws = wss.get(name or ctx.workspace_name)
    info = process.read_info(ws)
    out = ws.to_dict(wss.current_name())
    out["server"] = info.url if info else "stopped"
    ctx.emit(out)


@command(workspace, "list", help="List workspaces.")
def list_(ctx: Ctx):
    from ..workspace import Workspaces
    wss = Workspaces()
    current = wss.current_name()
    ctx.emit([w.to_dict(current) for w in wss.list()], columns=["name", "current", "path"])


@command(workspace, "delete", help="Delete a workspace and everything in it.")
@click.option("--name", required=True)
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
def delete(ctx: Ctx, name, yes):
    from ..server import process
    from ..workspace import Workspaces
    wss = Workspaces()
    ws = wss.get(name)
    if process.read_info(ws) is not None:
        raise Conflict(f"the server of workspace {name!r} is running; stop it first: fleet server stop -w {name}")
    if not yes and sys.stdin.isatty():
        click.confirm(f"Delete workspace {name!r} at {ws.path} with all its models?", abort=True)
    wss.delete(name)
    ctx.emit({"deleted": name})
