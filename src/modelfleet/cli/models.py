"""fleet model ..."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import InvalidInput
from .common import Ctx, command, parse_tags

COLUMNS = ["name", "version", "type", "labels", "description", "size", "created_at"]


@click.group("model", help="Register and manage model versions.")
def model() -> None:
    pass


def _register(ctx: Ctx, name, version, path, description, tag, type_, file, exist_ok):
    from .. import documents, specs
    fields: dict = {}
    base = Path(".")
    if file:
        fields = documents.load_one(file)
        base = Path(file).parent
    for k, v in (("name", name), ("version", version), ("path", path), ("type", type_)):
        if v is not None:
            fields[k] = v
    if description is not None:
        fields["description"] = description
    if tag:
        fields["tags"] = {**fields.get("tags", {}), **parse_tags(tag)}
    for k in ("name", "path"):
        if not fields.get(k):
            raise InvalidInput(f"--{k} is required (or give it in -f FILE)")
    spec = specs.validate(specs.ModelSpec, fields, file or "")
    for n in spec.notices(file or "model"):
        ctx.notice(f"notice: {n}")
    if path is not None:
        base = Path(".")  # a --path flag is relative to where the command runs, a file's to the file
    m = ctx.fleet.models.register_spec(spec, base, exist_ok=exist_ok)
    ctx.emit(m)


def _register_options(fn):
    for opt in reversed([
        click.option("--name", "-n", default=None, help="Model name."),
        click.option("--version", "-v", default=None, help="Version (any string; default: next integer)."),
        click.option("--path", "-p", default=None, help="Model file or directory."),
        click.option("--description", "-d", default=None),
        click.option("--tag", multiple=True, help="key=value (repeatable)."),
        click.option("--type", "type_", default=None, help="custom | sklearn | onnx | mlflow (default: detected)."),
        click.option("-f", "--file", default=None, help="A model YAML (Azure ML v2 model files work)."),
        click.option("--exist-ok", is_flag=True, help="Return the existing version when its content is the same."),
    ]):
        fn = opt(fn)
    return fn


@command(model, "register", help="Register files as a new, immutable model version.")
@_register_options
def register(ctx: Ctx, **kw):
    _register(ctx, **kw)


@command(model, "create", help="Same as register.")
@_register_options
def create(ctx: Ctx, **kw):
    _register(ctx, **kw)


@command(model, "list", help="List model versions.")
@click.option("--name", "-n", default=None, help="Only this model.")
@click.option("--include-archived", is_flag=True)
def list_(ctx: Ctx, name, include_archived):
    ctx.emit(ctx.fleet.models.list(name, include_archived), columns=COLUMNS)


@command(model, "show", help="Show every field of one version.")
@click.option("--name", "-n", required=True)
@click.option("--version", "-v", default=None)
@click.option("--label", "-l", default=None, help="A label such as champion, or latest.")
def show(ctx: Ctx, name, version, label):
    ctx.emit(ctx.fleet.models.get(name, version, label))


def _name_version(fn):
    """--name and --version, both required: the commands that act on one exact version."""
    fn = click.option("--version", "-v", required=True)(fn)
    return click.option("--name", "-n", required=True)(fn)


@command(model, "update", help="Change the description or tags of a version.")
@_name_version
@click.option("--description", "-d", default=None)
@click.option("--tag", multiple=True, help="key=value to set (repeatable).")
@click.option("--remove-tag", multiple=True, help="key to remove (repeatable).")
def update(ctx: Ctx, name, version, description, tag, remove_tag):
    ctx.emit(ctx.fleet.models.update(name, version, description=description, tags=parse_tags(tag),
                                     remove_tags=list(remove_tag)))


@command(model, "archive", help="Hide a version from list and @latest (still usable by explicit version).")
@_name_version
def archive(ctx: Ctx, name, version):
    ctx.emit(ctx.fleet.models.archive(name, version))


@command(model, "restore", help="Undo archive.")
@_name_version
def restore(ctx: Ctx, name, version):
    ctx.emit(ctx.fleet.models.restore(name, version))


@command(model, "label", help="Point a label (e.g. champion) at a version.")
@_name_version
@click.option("--label", "-l", required=True)
def label(ctx: Ctx, name, version, label):
    ctx.emit(ctx.fleet.models.label(name, version, label))


@command(model, "download", help="Copy a version's files to DIR/NAME.")
@click.option("--name", "-n", required=True)
@click.option("--version", "-v", default=None)
@click.option("--label", "-l", default=None)
@click.option("--download-path", "-p", default=".", show_default=True)
def download(ctx: Ctx, name, version, label, download_path):
    out = ctx.fleet.models.download(name, version, label, download_path)
    ctx.emit({"downloaded": str(out)})


@command(model, "delete", help="Delete a version (refused while a deployment uses it).")
@_name_version
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
def delete(ctx: Ctx, name, version, yes):
    if not yes and sys.stdin.isatty():
        click.confirm(f"Delete model {name}:{version}?", abort=True, default=True)
    ctx.fleet.models.delete(name, version)
    ctx.emit({"deleted": f"{name}:{version}"})
