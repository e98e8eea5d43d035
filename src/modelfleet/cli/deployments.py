"""fleet online-deployment ..."""

from __future__ import annotations

import contextlib
import copy
import sys
from pathlib import Path

import click

from ..domain.errors import InvalidInput
from .common import Ctx, azure_only, command, parse_tags

COLUMNS = ["name", "endpoint_name", "model", "instance_count", "provisioning_state"]


@click.group("online-deployment", help="Deployments: a model running as replicas behind an endpoint.")
def online_deployment() -> None:
    pass


def _spec_options(fn):
    for opt in reversed([
        click.option("--name", "-n", default=None),
        click.option("--endpoint-name", "--endpoint", "-e", "endpoint", default=None),
        click.option("--model", "-m", default=None, help="name:version, name@label or name (latest)."),
        click.option("--code", default=None, help="Directory with the scoring script."),
        click.option("--scoring-script", default=None, help="File in --code with init() and run()."),
        click.option("--environment", default=None,
                     help="azureml:NAME:VERSION (or NAME@latest): the packages its replicas run with."),
        click.option("--env-manager", type=click.Choice(["local", "virtualenv", "uv", "conda"]), default=None,
                     help="MLflow models: build the environment the model logged (local: the server's own)."),
        click.option("--instance-count", type=int, default=None),
        click.option("--env", multiple=True, help="K=V environment variable (repeatable)."),
        click.option("--placement", type=click.Choice(["shared", "dedicated"]), default=None,
                     help="A shared multi-model worker or a process of its own (default: shared for "
                          "sklearn, onnx and mlflow models without a scoring script, --env or environment)."),
        click.option("--request-timeout-ms", type=int, default=None),
        click.option("--max-concurrent-requests-per-instance", type=int, default=None),
        click.option("--max-queue-size", type=int, default=None),
        click.option("--max-body-bytes", type=int, default=None),
        click.option("--max-batch-size", type=int, default=None, help="Dynamic batching: requests per model call."),
        click.option("--max-batch-wait-ms", type=float, default=None),
        click.option("--all-traffic", is_flag=True, help="Send 100% of the endpoint's traffic here when ready."),
        click.option("-f", "--file", default=None, help="A deployment YAML (Azure ML v2 files work)."),
    ]):
        fn = opt(fn)
    return azure_only("--web", "--skip-script-validation", "--local-enable-gpu", "--vscode-debug",
                      "--package-model")(fn)


def _flag_fields(model, code, scoring_script, environment, env_manager, instance_count, env, placement,
                 request_timeout_ms, max_concurrent_requests_per_instance, max_queue_size, max_body_bytes,
                 max_batch_size, max_batch_wait_ms) -> dict:
    fields: dict = {}
    if model is not None:
        fields["model"] = model
    if environment is not None and env_manager is not None:
        raise InvalidInput("give --environment or --env-manager, not both")
    if environment is not None:
        fields["environment"] = environment
    if env_manager is not None:
        fields["env_manager"] = env_manager
    if code is not None or scoring_script is not None:
        if not (code and scoring_script):
            raise InvalidInput("--code and --scoring-script go together")
        fields["code_configuration"] = {"code": code, "scoring_script": scoring_script}
    if instance_count is not None:
        fields["instance_count"] = instance_count
    if env:
        fields["environment_variables"] = parse_tags(env)
    if placement is not None:
        fields["placement"] = placement
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


def _merge(doc: dict, fields: dict) -> dict:
    """Flags over a document: settings objects are merged key by key, other fields replaced; an
    environment flag replaces the document's environment and env_manager both."""
    for k, v in fields.items():
        doc[k] = {**(doc.get(k) or {}), **v} if isinstance(v, dict) and k != "code_configuration" else v
    for flag, other in (("environment", "env_manager"), ("env_manager", "environment")):
        if flag in fields:
            doc.pop(other, None)
    return doc


@contextlib.contextmanager
def _waiting(ctx: Ctx, what: str, wait: bool):
    if wait and sys.stderr.isatty() and ctx.output == "table":
        from rich.console import Console
        with Console(stderr=True).status(what):
            yield
    else:
        yield


def _validate(ctx: Ctx, doc: dict, where: str):
    from ..schema import documents, validation
    if not doc.get("name") or "model" not in doc:
        raise InvalidInput("--name and --model are required (or name and model in -f FILE)")
    spec = validation.validate(documents.DeploymentSpec, doc, where)
    for n in spec.notices(where or "deployment"):
        ctx.notice(f"notice: {n}")
    return spec


def _create_or_replace(ctx: Ctx, create: bool, name, endpoint, file, all_traffic, **flags) -> dict:
    from ..schema import yaml_files
    doc = yaml_files.load_one(file) if file else {}
    _merge(doc, _flag_fields(**flags))
    if name:
        doc["name"] = name
    if endpoint:
        doc["endpoint_name"] = endpoint
    spec = _validate(ctx, ctx.apply_ops(doc), file or "")
    verb = "Creating" if create else "Updating"
    with _waiting(ctx, f"{verb} {spec.endpoint_name}/{spec.name} ...", not ctx.no_wait):
        return ctx.fleet.online_deployments.create_or_update(
            spec, base_dir=Path(file).parent if file else Path("."), create=create, all_traffic=all_traffic,
            wait=not ctx.no_wait)


# What `update` can change, as the document --set/--add/--remove act on.
def _editable() -> tuple[str, ...]:
    from ..schema.deployment_settings import SETTINGS_FIELDS
    return ("name", "endpoint_name", "model", "code_configuration", "environment", *SETTINGS_FIELDS)


def _update(ctx: Ctx, name, endpoint, all_traffic, **flags) -> dict:
    """Change some fields of a running deployment: flags and --set/--add/--remove on its current spec."""
    from ..fleetfile.planner import deployment_settings
    from ..domain.placement import written_placement
    if not name or not endpoint:
        raise InvalidInput("--name and --endpoint-name are required")
    dep_ops = ctx.fleet.online_deployments
    current = dep_ops.get(name, endpoint)
    # an env_manager's environment is derived from the model: the env_manager is what to keep
    derived = {"environment"} if current.get("env_manager") else set()
    written = {**current, "placement": written_placement(current)}   # the default follows the model
    doc = _merge({k: copy.deepcopy(written[k]) for k in _editable() if written.get(k) is not None
                  and k not in derived}, _flag_fields(**flags))
    spec = _validate(ctx, ctx.apply_ops(doc), "")
    if (spec.name, spec.endpoint_name) != (name, endpoint):
        raise InvalidInput("name and endpoint_name cannot change; create a new deployment instead")
    if not isinstance(spec.model, str):
        raise InvalidInput("model: update takes a registered model (name:version); register it first")
    before, after = deployment_settings(current), deployment_settings(spec)
    changes = {}
    for k, v in after.items():
        if v != before[k]:  # a key left out of a mapping is removed
            changes[k] = {**{x: None for x in before[k]}, **v} if isinstance(v, dict) else v
    if spec.model != current["model"]:
        changes["model"] = spec.model
    if spec.env_manager is None and current.get("env_manager"):
        changes["env_manager"] = "local"   # back to the server's interpreter, or on to a named environment
    if spec.environment is not None and str(spec.environment).removeprefix("azureml:") != current.get("environment"):
        changes["environment"] = spec.environment
    cc = spec.code_configuration
    if cc is not None and cc.model_dump(exclude={"schema_"}) != current.get("code_configuration"):
        # `sha256:...`: the code it runs now, with another scoring script
        changes["code_configuration"] = {"code": cc.code, "scoring_script": cc.scoring_script}
    with _waiting(ctx, f"Updating {endpoint}/{name} ...", not ctx.no_wait):
        return dep_ops.update(name, endpoint, wait=not ctx.no_wait, all_traffic=all_traffic,
                              etag=current["etag"], **changes)   # based on what was read above


@command(online_deployment, "create", help="Create a deployment and wait until it is ready.", properties=True)
@_spec_options
def create(ctx: Ctx, **kw):
    ctx.emit(_create_or_replace(ctx, True, **kw), kind="deployment")


@command(online_deployment, "update", help="Update a deployment with zero downtime (rolls back on failure).",
         properties=True)
@_spec_options
def update(ctx: Ctx, file, **kw):
    if file:
        dep = _create_or_replace(ctx, False, file=file, **kw)
    else:
        dep = _update(ctx, **kw)
    ctx.emit(dep, kind="deployment")


@command(online_deployment, "show", help="Show a deployment and its replicas.")
@click.option("--name", "-n", required=True)
@click.option("--endpoint-name", "--endpoint", "-e", "endpoint", required=True)
def show(ctx: Ctx, name, endpoint):
    ctx.emit(ctx.fleet.online_deployments.get(name, endpoint), kind="deployment")


@command(online_deployment, "list", help="List deployments (of one endpoint, or all).")
@click.option("--endpoint-name", "--endpoint", "-e", "endpoint", default=None)
def list_(ctx: Ctx, endpoint):
    ctx.emit(ctx.fleet.online_deployments.list(endpoint), columns=COLUMNS, kind="deployment")


@command(online_deployment, "delete", help="Delete a deployment (it must take no traffic unless it is the last).")
@click.option("--name", "-n", required=True)
@click.option("--endpoint-name", "--endpoint", "-e", "endpoint", required=True)
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
def delete(ctx: Ctx, name, endpoint, yes):
    if not yes and sys.stdin.isatty():
        click.confirm(f"Delete deployment {endpoint}/{name}?", abort=True, default=True)
    ctx.fleet.online_deployments.delete(name, endpoint)
    ctx.emit({"deleted": f"{endpoint}/{name}"})


@command(online_deployment, "get-logs",
         help="Replica logs (output, logging, init errors, exits), merged by time, each line with its replica.")
@click.option("--name", "-n", required=True)
@click.option("--endpoint-name", "--endpoint", "-e", "endpoint", required=True)
@click.option("--lines", "-l", type=int, default=100, show_default=True)
@click.option("--since", default=None, help="Only lines from then on: a duration (90s, 10m, 2h, 1d) or a time.")
@click.option("--follow", is_flag=True, help="Keep printing new lines (Ctrl-C stops).")
@click.option("--container", "-c", type=click.Choice(["inference-server", "storage-initializer"]),
              default="inference-server", help="Azure's container: every log here is the inference server's.")
def get_logs(ctx: Ctx, name, endpoint, lines, since, follow, container):
    if container != "inference-server":
        ctx.notice(f"notice: --container {container}: modelfleet has no such container; "
                   "showing the replicas' logs")
    if follow:
        for chunk in ctx.fleet.online_deployments.follow_logs(name, endpoint, lines, since):
            click.echo(chunk, nl=False)
        return
    text = ctx.fleet.online_deployments.get_logs(name, endpoint, lines, since)
    if ctx.query or (ctx.explicit_output and ctx.output != "table"):
        ctx.emit({"logs": text})
    else:  # as az prints them: plain text, whatever the default output
        click.echo(text)
