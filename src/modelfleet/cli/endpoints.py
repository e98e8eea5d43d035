"""fleet online-endpoint ..."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .. import traffic as traffic_rules
from ..errors import InvalidInput
from .common import Ctx, command, parse_tags

COLUMNS = ["name", "auth_mode", "traffic", "mirror_traffic", "deployments", "scoring_uri"]


@click.group("online-endpoint", help="Endpoints: a stable scoring URL and keys over deployments.")
def online_endpoint() -> None:
    pass


def _spec(file, **flags):
    from .. import documents, specs
    fields = documents.load_one(file) if file else {}
    for k, v in flags.items():
        if v not in (None, {}, ()):
            fields[k] = v
    if not fields.get("name"):
        raise InvalidInput("--name is required (or name in -f FILE)")
    return specs.validate(specs.EndpointSpec, fields, file or "")


@command(online_endpoint, "create", help="Create an endpoint.")
@click.option("--name", "-n", default=None)
@click.option("--auth-mode", type=click.Choice(["key", "none", "aml_token"]), default=None)
@click.option("--compute", default=None,
              help="local (default), or a compute's name (NAME or azureml:NAME; see fleet compute).")
@click.option("--compute-type", default=None,
              help="As az scripts pass it: local or aci (this machine); ray or aks (the workspace's Ray compute).")
@click.option("--description", "-d", default=None)
@click.option("--tag", multiple=True, help="key=value (repeatable).")
@click.option("-f", "--file", default=None, help="An endpoint YAML (Azure ML v2 files work).")
def create(ctx: Ctx, name, auth_mode, compute, compute_type, description, tag, file):
    if compute is None and compute_type is not None:
        compute = ctx.fleet.computes.for_type(compute_type)
    spec = _spec(file, name=name, auth_mode=auth_mode, compute=compute, description=description,
                 tags=parse_tags(tag))
    for n in spec.notices(file or "endpoint"):
        ctx.notice(f"notice: {n}")
    ctx.emit(ctx.fleet.online_endpoints.create(spec.name, spec=spec), columns=None)


@command(online_endpoint, "update", help="Change traffic, mirror traffic, description or tags.")
@click.option("--name", "-n", default=None)
@click.option("--traffic", default=None, help='e.g. "blue=90 green=10"')
@click.option("--mirror-traffic", default=None, help='e.g. "green=10" (at most 50)')
@click.option("--description", "-d", default=None)
@click.option("--tag", multiple=True)
@click.option("-f", "--file", default=None)
def update(ctx: Ctx, name, traffic, mirror_traffic, description, tag, file):
    t = traffic_rules.parse(traffic) if traffic is not None else None
    m = traffic_rules.parse(mirror_traffic, "--mirror-traffic") if mirror_traffic is not None else None
    if file:
        spec = _spec(file, name=name)
        for n in spec.notices(file):
            ctx.notice(f"notice: {n}")
        name = spec.name
        t = t if t is not None else spec.traffic
        m = m if m is not None else spec.mirror_traffic
        description = description if description is not None else spec.description
        tags = {**spec.tags, **parse_tags(tag)}
    else:
        if not name:
            raise InvalidInput("--name is required")
        tags = parse_tags(tag) or None
    ctx.emit(ctx.fleet.online_endpoints.update(name, traffic=t, mirror_traffic=m, description=description,
                                               tags=tags))


@command(online_endpoint, "show", help="Show an endpoint: state, scoring URI, traffic, deployments.")
@click.option("--name", "-n", required=True)
def show(ctx: Ctx, name):
    ctx.emit(ctx.fleet.online_endpoints.get(name))


@command(online_endpoint, "list", help="List endpoints.")
def list_(ctx: Ctx):
    ctx.emit(ctx.fleet.online_endpoints.list(), columns=COLUMNS)


@command(online_endpoint, "delete", help="Delete an endpoint and stop its deployments.")
@click.option("--name", "-n", required=True)
@click.option("-y", "--yes", is_flag=True)
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
    ctx.emit(result) if ctx.output != "table" else click.echo(
        __import__("orjson").dumps(result).decode() if not isinstance(result, str) else result)


@command(online_endpoint, "get-credentials", help="Print the endpoint's keys.")
@click.option("--name", "-n", required=True)
def get_credentials(ctx: Ctx, name):
    ctx.emit(ctx.fleet.online_endpoints.get_keys(name))


@command(online_endpoint, "regenerate-keys", help="Replace the primary or secondary key.")
@click.option("--name", "-n", required=True)
@click.option("--key-type", type=click.Choice(["primary", "secondary"]), default="primary", show_default=True)
def regenerate_keys(ctx: Ctx, name, key_type):
    ctx.fleet.online_endpoints.regenerate_keys(name, key_type)
    ctx.emit({"regenerated": f"{name} {key_type} key", "hint": "fleet online-endpoint get-credentials"})
