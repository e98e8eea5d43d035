"""fleet environment ..."""

from __future__ import annotations

from pathlib import Path

import click

from ..domain.errors import InvalidInput
from .common import Ctx, command, parse_tags

COLUMNS = ["name", "version", "requirements", "python", "built", "description", "created_at"]


@click.group("environment", help="Environments: immutable, versioned sets of Python packages that deployments run with.")
def environment() -> None:
    pass


@command(environment, "create", help="Create an environment version from a conda file or a requirements.txt "
                                     "(Azure ML v2 environment files work).")
@click.option("--name", "-n", default=None)
@click.option("--version", "-v", default=None, help="Version (any string; default: next integer).")
@click.option("--conda-file", default=None, help="A conda environment file (dependencies, pip:).")
@click.option("--requirements", "--requirements-file", "requirements", default=None, help="A pip requirements.txt.")
@click.option("--image", default=None, help="Accepted as Azure's base image; not used (no Docker here).")
@click.option("--description", "-d", default=None)
@click.option("--tag", multiple=True, help="key=value (repeatable).")
@click.option("-f", "--file", default=None, help="An environment YAML (Azure ML v2 environment files work).")
@click.option("--exist-ok", is_flag=True, help="Return the existing version when its packages are the same.")
def create(ctx: Ctx, name, version, conda_file, requirements, image, description, tag, file, exist_ok):
    from ..schema import validation, yaml_files
    from ..schema.documents import EnvironmentSpec
    fields: dict = yaml_files.load_one(file) if file else {}
    for k, v in (("name", name), ("version", version), ("conda_file", conda_file), ("requirements", requirements),
                 ("image", image), ("description", description)):
        if v is not None:
            fields[k] = v
    if conda_file is not None:  # a flag replaces the file's packages
        fields.pop("requirements", None)
    if requirements is not None:
        fields.pop("conda_file", None)
    if tag:
        fields["tags"] = {**fields.get("tags", {}), **parse_tags(tag)}
    if not fields.get("name"):
        raise InvalidInput("--name is required (or name in -f FILE)")
    spec = validation.validate(EnvironmentSpec, fields, file or "")
    for n in spec.notices(file or "environment"):
        ctx.notice(f"notice: {n}")
    # a file's paths are relative to the file, a flag's to where the command runs
    base = Path(file).parent if file and conda_file is None and requirements is None else Path(".")
    ctx.emit(ctx.fleet.environments.create(spec=spec, base_dir=base, exist_ok=exist_ok))


@command(environment, "list", help="List environment versions.")
@click.option("--name", "-n", default=None, help="Only this environment.")
@click.option("--include-archived", is_flag=True)
def list_(ctx: Ctx, name, include_archived):
    ctx.emit(ctx.fleet.environments.list(name, include_archived), columns=COLUMNS)


@command(environment, "show", help="Show a version: its packages, its resolution and whether it is built.")
@click.option("--name", "-n", required=True)
@click.option("--version", "-v", default=None, help="Default: the latest.")
def show(ctx: Ctx, name, version):
    ctx.emit(ctx.fleet.environments.get(name, version))


@command(environment, "archive", help="Hide a version from list and @latest; `gc` may then remove its build.")
@click.option("--name", "-n", required=True)
@click.option("--version", "-v", required=True)
def archive(ctx: Ctx, name, version):
    ctx.emit(ctx.fleet.environments.archive(name, version))


@command(environment, "restore", help="Undo archive.")
@click.option("--name", "-n", required=True)
@click.option("--version", "-v", required=True)
def restore(ctx: Ctx, name, version):
    ctx.emit(ctx.fleet.environments.restore(name, version))


@command(environment, "build", help="Build a version now (deployments build theirs themselves), showing progress.")
@click.option("--name", "-n", required=True)
@click.option("--version", "-v", default=None, help="Default: the latest.")
def build(ctx: Ctx, name, version):
    ref = f"{name}:{version}" if version is not None else f"{name}@latest"
    ctx.emit(ctx.fleet.environments.build(ref))


@command(environment, "gc", help="Remove builds that no deployment uses and no named, unarchived version keeps; "
                                 "say how much disk that freed.")
@click.option("--cache", is_flag=True, help="Also empty uv's package cache (packages that environments still "
                                             "hold stay on disk; later builds download again).")
def gc(ctx: Ctx, cache):
    ctx.emit(ctx.fleet.environments.gc(cache=cache))
