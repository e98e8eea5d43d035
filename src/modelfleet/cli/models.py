"""fleet model ..."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..domain.errors import InvalidInput
from .common import Ctx, command, parse_tags

COLUMNS = ["name", "version", "type", "labels", "description", "size", "created_at"]


@click.group("model", help="Register and manage model versions.")
def model() -> None:
    pass


def _register(ctx: Ctx, name, version, path, description, tag, type_, file, exist_ok):
    from ..schema import validation, yaml_files
    from ..schema.documents import ModelSpec
    fields: dict = yaml_files.load_one(file) if file else {}
    base = Path(file).parent if file else Path(".")
    for k, v in (("name", name), ("version", version), ("path", path), ("type", type_)):
        if v is not None:
            fields[k] = v
    if description is not None:
        fields["description"] = description
    if tag:
        fields["tags"] = {**(fields.get("tags") or {}), **parse_tags(tag)}
    fields = ctx.apply_ops(fields)
    for k in ("name", "path"):
        if not fields.get(k):
            raise InvalidInput(f"--{k} is required (or give it in -f FILE)")
    spec = validation.validate(ModelSpec, fields, file or "")
    for n in spec.notices(file or "model"):
        ctx.notice(f"notice: {n}")
    if path is not None:
        base = Path(".")  # a --path flag is relative to where the command runs, a file's to the file
    m = ctx.fleet.models.register_spec(spec, base, exist_ok=exist_ok)
    for label in spec.labels:
        m = ctx.fleet.models.label(m.name, m.version, label)
    ctx.emit(m, kind="model")


def _register_options(fn):
    for opt in reversed([
        click.option("--name", "-n", default=None, help="Model name."),
        click.option("--version", "-v", default=None, help="Version (any string; default: next integer)."),
        click.option("--path", "-p", default=None, help="Model file or directory."),
        click.option("--description", "-d", default=None),
        click.option("--tag", "--tags", "tag", multiple=True, help="key=value (repeatable; --tags takes several)."),
        click.option("--type", "-t", "type_", default=None,
                     help="custom_model | mlflow_model | sklearn | onnx (default: detected)."),
        click.option("-f", "--file", default=None, help="A model YAML (Azure ML v2 model files work)."),
        click.option("--exist-ok", is_flag=True, help="Return the existing version when its content is the same."),
    ]):
        fn = opt(fn)
    return fn


@command(model, "register", help="Register files as a new, immutable model version.", properties=True)
@_register_options
def register(ctx: Ctx, **kw):
    _register(ctx, **kw)


@command(model, "create", help="Same as register.", properties=True)
@_register_options
def create(ctx: Ctx, **kw):
    _register(ctx, **kw)


@command(model, "list", help="List model versions.")
@click.option("--name", "-n", default=None, help="Only this model.")
@click.option("--include-archived", is_flag=True, help="Archived versions too.")
@click.option("--archived-only", is_flag=True, help="Archived versions only.")
@click.option("--max-results", "-r", type=click.IntRange(min=1), default=None, help="At most this many versions.")
def list_(ctx: Ctx, name, include_archived, archived_only, max_results):
    found = ctx.fleet.models.list(name, include_archived or archived_only)
    if archived_only:
        found = [m for m in found if m.archived]
    ctx.emit(found[:max_results] if max_results else found, columns=COLUMNS, kind="model")


@command(model, "show", help="Show every field of one version.")
@click.option("--name", "-n", required=True)
@click.option("--version", "-v", default=None)
@click.option("--label", "-l", default=None, help="A label such as champion, or latest.")
def show(ctx: Ctx, name, version, label):
    ctx.emit(ctx.fleet.models.get(name, version, label), kind="model")


def _name_version(fn):
    """--name and --version, both required: the commands that act on one exact version."""
    fn = click.option("--version", "-v", required=True)(fn)
    return click.option("--name", "-n", required=True)(fn)


@command(model, "update", help="Change the description or tags of a version.", properties=True)
@_name_version
@click.option("--description", "-d", default=None)
@click.option("--tag", "--tags", "tag", multiple=True, help="key=value to set (repeatable).")
@click.option("--remove-tag", multiple=True, help="key to remove (repeatable).")
def update(ctx: Ctx, name, version, description, tag, remove_tag):
    models = ctx.fleet.models
    if not ctx.ops:
        ctx.emit(models.update(name, version, description=description, tags=parse_tags(tag),
                               remove_tags=list(remove_tag)), kind="model")
        return
    current = models.get(name, version).to_dict()
    doc = {"name": name, "version": version, "description": current["description"],
           "tags": {k: v for k, v in current["tags"].items() if k not in remove_tag}}
    if description is not None:
        doc["description"] = description
    doc["tags"].update(parse_tags(tag))
    doc = ctx.apply_ops(doc)
    if (doc.get("name"), str(doc.get("version"))) != (name, version):
        raise InvalidInput("name and version of a model version cannot change; register a new version")
    if set(doc) - {"name", "version", "description", "tags"}:
        raise InvalidInput(f"model update changes description and tags only, not "
                           f"{', '.join(sorted(set(doc) - {'name', 'version', 'description', 'tags'}))}")
    tags = {str(k): "" if v is None else str(v) for k, v in (doc.get("tags") or {}).items()}
    ctx.emit(models.update(name, version, description=str(doc.get("description") or ""), tags=tags,
                           remove_tags=[k for k in current["tags"] if k not in tags]), kind="model")


@command(model, "archive", help="Hide a version from list and @latest (still usable by explicit version).")
@_name_version
def archive(ctx: Ctx, name, version):
    ctx.emit(ctx.fleet.models.archive(name, version), kind="model")


@command(model, "restore", help="Undo archive.")
@_name_version
def restore(ctx: Ctx, name, version):
    ctx.emit(ctx.fleet.models.restore(name, version), kind="model")


@command(model, "label", help="Point a label (e.g. champion) at a version.")
@_name_version
@click.option("--label", "-l", required=True)
def label(ctx: Ctx, name, version, label):
    ctx.emit(ctx.fleet.models.label(name, version, label), kind="model")


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
