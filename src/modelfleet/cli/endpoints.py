"""fleet online-endpoint ..."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..domain import traffic as traffic_rules
from ..domain.errors import InvalidInput
from .common import Ctx, azure_only, command, parse_tags

COLUMNS = ["name", "auth_mode", "traffic", "mirror_traffic", "deployments", "scoring_uri"]
# What `update` can change, as the document --set/--add/--remove act on.
EDITABLE = ("name", "auth_mode", "compute", "description", "tags", "traffic", "mirror_traffic")


@click.group("online-endpoint", help="Endpoints: a stable scoring URL and keys over deployments.")
def online_endpoint() -> None:
    pass


def _validate(ctx: Ctx, fields: dict, where: str):
    from ..schema import documents, validation
    if not fields.get("name"):
        raise InvalidInput("--name is required (or name in -f FILE)")
    spec = validation.validate(documents.EndpointSpec, fields, where)
    for n in spec.notices(where or "endpoint"):
        ctx.notice(f"notice: {n}")
    return spec


def _name_option(fn):
    return click.option("--name", "-n", default=None, help="Endpoint name.")(fn)


def _tag_option(fn):
    return click.option("--tag", "--tags", "tag", multiple=True,
                        help="key=value (repeatable; --tags takes several).")(fn)


@command(online_endpoint, "create", help="Create an endpoint.", properties=True)
@azure_only("--web")
@_name_option
@click.option("--auth-mode", default=None, help="key (default), aml_token (same as key here) or none.")
@click.option("--compute", default=None,
              help="local (default), or a compute's name (NAME or azureml:NAME; see fleet compute).")
@click.option("--compute-type", default=None,
              help="As az scripts pass it: local or aci (this machine); ray or aks (the workspace's Ray compute).")
@click.option("--description", "-d", default=None)
@_tag_option
@click.option("-f", "--file", default=None, help="An endpoint YAML (Azure ML v2 files work).")
def create(ctx: Ctx, name, auth_mode, compute, compute_type, description, tag, file):
    from ..schema import yaml_files
    if compute is None and compute_type is not None:
        compute = ctx.fleet.computes.for_type(compute_type)
    fields = yaml_files.load_one(file) if file else {}
    for k, v in (("name", name), ("auth_mode", auth_mode), ("compute", compute), ("description", description)):
        if v is not None:
            fields[k] = v
    if tag:
        fields["tags"] = {**(fields.get("tags") or {}), **parse_tags(tag)}
    spec = _validate(ctx, ctx.apply_ops(fields), file or "")
    local = bool(click.get_current_context().params.get("_local"))   # az's --local: no key from this machine
    ctx.emit(ctx.fleet.online_endpoints.create(spec.name, spec=spec, local=local), kind="endpoint")


@command(online_endpoint, "update", help="Change traffic, mirror traffic, description or tags.", properties=True)
@azure_only("--web")
@_name_option
@click.option("--traffic", "-r", default=None, help='e.g. "blue=90 green=10"')
@click.option("--mirror-traffic", default=None, help='e.g. "green=10" (at most 50)')
@click.option("--description", "-d", default=None)
@_tag_option
@click.option("-f", "--file", default=None, help="An endpoint YAML: its fields replace the current ones.")
def update(ctx: Ctx, name, traffic, mirror_traffic, description, tag, file):
    from ..schema import yaml_files
    given = yaml_files.load_one(file) if file else {}
    name = name or given.get("name")
    if not name:
        raise InvalidInput("--name is required (or name in -f FILE)")
    current = ctx.fleet.online_endpoints.get(name)
    doc = {k: current.get(k) for k in EDITABLE}
    doc.update(given)
    if traffic is not None:
        doc["traffic"] = traffic_rules.parse(traffic)
    if mirror_traffic is not None:
        doc["mirror_traffic"] = traffic_rules.parse(mirror_traffic, "--mirror-traffic")
    if description is not None:
        doc["description"] = description
    if tag:
        doc["tags"] = {**(doc.get("tags") or {}), **parse_tags(tag)}
    spec = _validate(ctx, ctx.apply_ops(doc), file or "")
    if spec.name != name:
        raise InvalidInput(f"name {spec.name!r}: an endpoint cannot be renamed (it is {name!r})")
    if spec.compute != current["compute"]:
        raise InvalidInput(f"compute {spec.compute!r}: an endpoint's compute cannot change; create a new endpoint")
    tags = None
    if spec.tags != current["tags"]:  # keys no longer there are removed
        tags = {**{k: None for k in current["tags"]}, **spec.tags}
    ctx.emit(ctx.fleet.online_endpoints.update(
        name, traffic=spec.traffic if spec.traffic != current["traffic"] else None,
        mirror_traffic=spec.mirror_traffic if spec.mirror_traffic != current["mirror_traffic"] else None,
        description=spec.description if spec.description != current["description"] else None,
        auth_mode=spec.auth_mode if spec.auth_mode != current["auth_mode"] else None, tags=tags),
        kind="endpoint")


@command(online_endpoint, "show", help="Show an endpoint: state, scoring URI, traffic, deployments.")
@azure_only("--web")
@click.option("--name", "-n", required=True)
def show(ctx: Ctx, name):
    ctx.emit(ctx.fleet.online_endpoints.get(name), kind="endpoint")


@command(online_endpoint, "list", help="List endpoints.")
def list_(ctx: Ctx):
    ctx.emit(ctx.fleet.online_endpoints.list(), columns=COLUMNS, kind="endpoint")


@command(online_endpoint, "delete", help="Delete an endpoint and stop its deployments.")
@click.option("--name", "-n", required=True)
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
def delete(ctx: Ctx, name, yes):
    if not yes and sys.stdin.isatty():
        click.confirm(f"Delete endpoint {name!r} and all its deployments?", abort=True, default=True)
    ctx.fleet.online_endpoints.delete(name)
    ctx.emit({"deleted": name})


@command(online_endpoint, "invoke", help="Score a request through the gateway.")
@click.option("--name", "-n", required=True)
@click.option("--request-file", "-r", required=True, type=click.Path(dir_okay=False))
@click.option("--deployment-name", "-d", default=None, help="Target one deployment (even at 0% traffic).")
def invoke(ctx: Ctx, name, request_file, deployment_name):
    if not Path(request_file).is_file():
        raise InvalidInput(f"request file {request_file!r} not found")
    result = ctx.fleet.online_endpoints.invoke(name, request_file=request_file, deployment_name=deployment_name)
    if ctx.output == "table" and not ctx.query:  # the model's answer as it came, on one line
        click.echo(__import__("orjson").dumps(result).decode() if not isinstance(result, str) else result)
    else:
        ctx.emit(result)


@command(online_endpoint, "get-credentials", help="Print the endpoint's keys.")
@click.option("--name", "-n", required=True)
def get_credentials(ctx: Ctx, name):
    ctx.emit(ctx.fleet.online_endpoints.get_keys(name))


@command(online_endpoint, "regenerate-keys", help="Replace the primary or secondary key.")
@click.option("--name", "-n", required=True)
@click.option("--key-type", type=click.Choice(["primary", "secondary"], case_sensitive=False), default="primary",
              show_default=True)
def regenerate_keys(ctx: Ctx, name, key_type):
    ctx.fleet.online_endpoints.regenerate_keys(name, key_type.lower())
    # keys are printed by get-credentials only (docs/security.md)
    ctx.emit({"regenerated": f"{name} {key_type.lower()} key", "hint": "fleet online-endpoint get-credentials"})
