"""fleet data ... (Azure's `az ml data`)"""

from __future__ import annotations

from pathlib import Path

import click

from ..domain.errors import InvalidInput
from .common import Ctx, command, parse_tags

COLUMNS = ["name", "version", "type", "path", "description", "created_at"]


@click.group("data", help="Data assets: versioned references to data (reference data for monitors, collected data).")
def data() -> None:
    pass


@command(data, "create", help="Create a data asset version from a file, a folder or an MLTable folder "
                              "(Azure ML v2 data YAML works).")
@click.option("--name", "-n", default=None)
@click.option("--version", "-v", default=None, help="Version (any string; default: next integer).")
@click.option("--type", "-t", "type_", default=None, type=click.Choice(["uri_file", "uri_folder", "mltable"]),
              help="Default: uri_folder.")
@click.option("--path", "-p", default=None, help="A local .csv or .parquet file, a folder, an MLTable folder, or "
                                                 "azureml://datastores/NAME/paths/modelDataCollector/... (collected data).")
@click.option("--description", "-d", default=None)
@click.option("--tag", multiple=True, help="key=value (repeatable).")
@click.option("-f", "--file", default=None, help="A data asset YAML.")
def create(ctx: Ctx, name, version, type_, path, description, tag, file):
    from ..schema import yaml_files as documents
    from ..schema.monitoring import DataAssetSpec
    from ..schema.validation import validate
    fields: dict = documents.load_one(file) if file else {}
    for k, v in (("name", name), ("version", version), ("type", type_), ("path", path), ("description", description)):
        if v is not None:
            fields[k] = v
    if tag:
        fields["tags"] = {**fields.get("tags", {}), **parse_tags(tag)}
    for needed in ("name", "path"):
        if not fields.get(needed):
            raise InvalidInput(f"--{needed} is required (or {needed} in -f FILE)")
    spec = validate(DataAssetSpec, fields, file or "")
    for n in spec.notices(file or "data"):
        ctx.notice(f"notice: {n}")
    base = Path(file).parent if file and path is None else Path(".")
    ctx.emit(ctx.fleet.data.create(spec=spec, base_dir=base))


@command(data, "list", help="List data asset versions.")
@click.option("--name", "-n", default=None, help="Only this data asset.")
def list_(ctx: Ctx, name):
    ctx.emit(ctx.fleet.data.list(name), columns=COLUMNS)


@command(data, "show", help="Show a data asset version (default: the latest).")
@click.option("--name", "-n", required=True)
@click.option("--version", "-v", default=None)
def show(ctx: Ctx, name, version):
    ctx.emit(ctx.fleet.data.get(name, version))
