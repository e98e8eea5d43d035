"""fleet datastore ..."""

from __future__ import annotations

import click

from .common import Ctx, command, confirm

COLUMNS = ["name", "type", "account_name", "container_name", "is_default", "description"]


@click.group("datastore", help="Where the workspace's bytes live: Azure Blob containers (Azure's datastore YAML).")
def datastore() -> None:
    pass


def _file_options(fn):
    fn = click.option("--default", "default", is_flag=True,
                      help="Make it the workspace's default: model and code uploads go to it.")(fn)
    fn = click.option("--name", "-n", default=None, help="Datastore name (overrides the file's).")(fn)
    return click.option("-f", "--file", required=True, help="A datastore YAML (type: azure_blob).")(fn)


def _document(ctx: Ctx, file, name) -> dict:
    from ..client.datastores import load_document
    return ctx.apply_ops(load_document(file, name))


@command(datastore, "create", help="Add a datastore from its YAML.", properties=True)
@_file_options
def create(ctx: Ctx, file, name, default):
    ctx.emit(ctx.fleet.datastores.create(_document(ctx, file, name), default), kind="datastore")


@command(datastore, "update", help="Replace a datastore's document (credentials included) by a YAML.",
         properties=True)
@_file_options
def update(ctx: Ctx, file, name, default):
    ctx.emit(ctx.fleet.datastores.update(_document(ctx, file, name), default), kind="datastore")


_named = click.option("--name", "-n", required=True, help="The datastore's name.")


@command(datastore, "list", help="List datastores (secrets never shown).")
def list_(ctx: Ctx):
    ctx.emit(ctx.fleet.datastores.list(), columns=COLUMNS, kind="datastore")


@command(datastore, "show", help="Show a datastore (secrets never shown).")
@_named
def show(ctx: Ctx, name):
    ctx.emit(ctx.fleet.datastores.get(name), kind="datastore")


@command(datastore, "set-default", help="Make a datastore the workspace's default (workspaceartifactstore: "
                                        "its own folder).")
@_named
def set_default(ctx: Ctx, name):
    ctx.emit(ctx.fleet.datastores.set_default(name))


@command(datastore, "delete", help="Remove a datastore (its blobs stay in the container).")
@_named
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
def delete(ctx: Ctx, name, yes):
    confirm(yes, f"Remove datastore {name!r}?")
    ctx.fleet.datastores.delete(name)
    ctx.emit({"deleted": name})
