"""fleet online-deployment ..."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import click

from ..errors import InvalidInput
from .common import Ctx, command, parse_tags

COLUMNS = ["name", "endpoint_name", "model", "instance_count", "provisioning_state"]


@click.group("online-deployment", help="Deployments: a model running as replicas behind an endpoint.")
def online_deployment() -> None:
    pass


def _spec_options(fn):
    for opt in reversed([
        click.option("--name", "-n", default=None),
        click.option("--endpoint", "--endpoint-name", "-e", "endpoint", default=None),
        click.option("--model", "-m", default=None, help="name:version, name@label or name (latest)."),
        click.option("--code", default=None, help="Directory with the scoring script."),
        click.option("--scoring-script", default=None, help="File in --code with init() and run()."),
        click.option("--instance-count", type=int, default=None),
        click.option("--env", multiple=True, help="K=V environment variable (repeatable)."),
        click.option("--request-timeout-ms", type=int, default=None),
        click.option("--max-concurrent-requests-per-instance", type=int, default=None),
        click.option("--max-queue-size", type=int, default=None),
        click.option("--max-body-bytes", type=int, default=None),
        click.option("--max-batch-size", type=int, default=None, help="Dynamic batching: requests per model call."),
        click.option("--max-batch-wait-ms", type=float, default=None),
        click.option("--all-traffic", is_flag=True, help="Send 100% of the endpoint's traffic here when ready."),
        click.option("--no-wait", is_flag=True, help="Return at once instead of waiting until ready."),
        click.option("-f", "--file", default=None, help="A deployment YAML (Azure ML v2 files work)."),
    ]):
        fn = opt(fn)
    return fn


def _flag_fields(model, code, scoring_script, instance_count, env, request_timeout_ms,
                 max_concurrent_requests_per_instance, max_queue_size, max_body_bytes,
                 max_batch_size, max_batch_wait_ms) -> dict:
    fields: dict = {}
    if model is not None:
        fields["model"] = model
    if code is not None or scoring_script is not None:
        if not (code and scoring_script):
            raise InvalidInput("--code and --scoring-script go together")
        fields["code_configuration"] = {"code": code, "scoring_script": scoring_script}
    if instance_count is not None:
        fields["instance_count"] = instance_count
    if env:
        fields["environment_variables"] = parse_tags(env)
    rs = {k: v for k, v in (("request_timeout_ms", request_timeout_ms),
                            ("max_concurrent_requests_per_instance", max_concurrent_requests_per_instance),
                            ("max_queue_size", max_queue_size), ("max_body_bytes", max_body_bytes)) if v is not None}
    if rs:
        fields["request_settings"] = rs
    b = {k: v for k, v in (("max_batch_size", max_batch_size), ("max_batch_wait_ms", max_batch_wait_ms))
         if v is not None}
    if b:
        fields["batching"] = b
    return fields


@contextlib.contextmanager
def _waiting(ctx: Ctx, what: str, wait: bool):
    if wait and sys.stderr.isatty() and ctx.output == "table":
        from rich.console import Console
        with Console(stderr=True).status(what):
            yield
    else:
        yield


def _apply(ctx: Ctx, create: bool, name, endpoint, file, all_traffic, no_wait, **flags):
    from .. import documents, specs
    fields = _flag_fields(**flags)
    if file:
        doc = documents.load_one(file)
        for k, v in fields.items():
            doc[k] = {**doc.get(k, {}), **v} if isinstance(v, dict) and k != "code_configuration" else v
        fields, base = doc, Path(file).parent
    else:
        base = Path(".")
    if name:
        fields["name"] = name
    if endpoint:
        fields["endpoint_name"] = endpoint
    dep_ops = ctx.fleet.online_deployments
    verb = "Creating" if create else "Updating"
    if file or create:
        if not fields.get("name") or "model" not in fields:
            raise InvalidInput("--name and --model are required (or name and model in -f FILE)")
        spec = specs.validate(specs.DeploymentSpec, fields, file or "")
        for n in spec.notices(file or "deployment"):
            ctx.notice(f"notice: {n}")
        with _waiting(ctx, f"{verb} {spec.endpoint_name}/{spec.name} ...", not no_wait):
            dep = dep_ops.create_or_update(spec, base_dir=base, create=True if create else False,
                                           all_traffic=all_traffic, wait=not no_wait)
    else:
        if not name or not endpoint:
            raise InvalidInput("--name and --endpoint are required")
        with _waiting(ctx, f"{verb} {endpoint}/{name} ...", not no_wait):
            changes = {k: v for k, v in fields.items() if k not in ("name", "endpoint_name")}
            dep = dep_ops.update(name, endpoint, wait=not no_wait, all_traffic=all_traffic, **changes)
    ctx.emit(dep)


@command(online_deployment, "create", help="Create a deployment and wait until it is ready.")
@_spec_options
def create(ctx: Ctx, **kw):
    _apply(ctx, True, **kw)


@command(online_deployment, "update", help="Update a deployment with zero downtime (rolls back on failure).")
@_spec_options
def update(ctx: Ctx, **kw):
    _apply(ctx, False, **kw)


@command(online_deployment, "show", help="Show a deployment and its replicas.")
@click.option("--name", "-n", required=True)
@click.option("--endpoint", "--endpoint-name", "-e", "endpoint", required=True)
def show(ctx: Ctx, name, endpoint):
    ctx.emit(ctx.fleet.online_deployments.get(name, endpoint))


@command(online_deployment, "list", help="List deployments (of one endpoint, or all).")
@click.option("--endpoint", "--endpoint-name", "-e", "endpoint", default=None)
def list_(ctx: Ctx, endpoint):
    ctx.emit(ctx.fleet.online_deployments.list(endpoint), columns=COLUMNS)


@command(online_deployment, "delete", help="Delete a deployment (it must take no traffic unless it is the last).")
@click.option("--name", "-n", required=True)
@click.option("--endpoint", "--endpoint-name", "-e", "endpoint", required=True)
@click.option("-y", "--yes", is_flag=True)
def delete(ctx: Ctx, name, endpoint, yes):
    if not yes and sys.stdin.isatty():
        click.confirm(f"Delete deployment {endpoint}/{name}?", abort=True, default=True)
    ctx.fleet.online_deployments.delete(name, endpoint)
    ctx.emit({"deleted": f"{endpoint}/{name}"})


@command(online_deployment, "get-logs",
         help="Replica logs (output, logging, init errors, exits), merged by time, each line with its replica.")
@click.option("--name", "-n", required=True)
@click.option("--endpoint", "--endpoint-name", "-e", "endpoint", required=True)
@click.option("--lines", "-l", type=int, default=100, show_default=True)
@click.option("--since", default=None, help="Only lines from then on: a duration (90s, 10m, 2h, 1d) or a time.")
@click.option("--follow", is_flag=True, help="Keep printing new lines (Ctrl-C stops).")
def get_logs(ctx: Ctx, name, endpoint, lines, since, follow):
    if follow:
        for chunk in ctx.fleet.online_deployments.follow_logs(name, endpoint, lines, since):
            click.echo(chunk, nl=False)
        return
    text = ctx.fleet.online_deployments.get_logs(name, endpoint, lines, since)
    ctx.emit({"logs": text}) if ctx.output != "table" else click.echo(text)
