"""fleet compute ..."""

from __future__ import annotations

import sys

import click

from .common import Ctx, command

COLUMNS = ["name", "type", "address", "owned", "auth", "num_cpus", "created_at"]
NODE_COLUMNS = ["node_id", "address", "alive", "cpus", "memory"]


@click.group("compute", help="Compute targets: Ray clusters that endpoints run on (`compute: azureml:NAME`).")
def compute() -> None:
    pass


def _gib(n: int) -> str:
    return f"{n / 1024**3:.1f} GiB"


@command(compute, "create", help="Start a Ray cluster on this machine (127.0.0.1, token auth) that this "
                                 "workspace owns.")
@click.option("--name", "-n", required=True)
@click.option("--type", "type_", default="ray", show_default=True, help="ray")
@click.option("--num-cpus", type=click.IntRange(min=1), default=None,
              help="CPUs the cluster offers (default: this machine's count).")
def create(ctx: Ctx, name, type_, num_cpus):
    ctx.emit(ctx.fleet.computes.create(name, type_, num_cpus=num_cpus), kind="compute")


@command(compute, "attach", help="Record a Ray cluster that runs elsewhere, by the address of its head.")
@click.option("--name", "-n", required=True)
@click.option("--type", "type_", default="ray", show_default=True, help="ray")
@click.option("--address", required=True, help="HOST:PORT of the cluster's head (its GCS), e.g. 10.0.0.5:6379.")
@click.option("--auth-token", default=None, envvar="RAY_AUTH_TOKEN", show_envvar=True,
              help="The cluster's Ray auth token, when it has token auth on.")
def attach(ctx: Ctx, name, type_, address, auth_token):
    ctx.emit(ctx.fleet.computes.attach(name, address, type_, auth_token=auth_token), kind="compute")


@command(compute, "list", help="List computes.")
def list_(ctx: Ctx):
    ctx.emit(ctx.fleet.computes.list(), columns=COLUMNS, kind="compute")


@command(compute, "show", help="Show a compute and its cluster now: nodes, CPUs, memory, health.")
@click.option("--name", "-n", required=True)
def show(ctx: Ctx, name):
    info = ctx.fleet.computes.show(name)
    if ctx.output != "table" or ctx.query:
        ctx.emit(info, kind="compute")
        return
    summary = {k: v for k, v in info.items() if k not in ("nodes", "memory_bytes")}
    summary["memory"] = _gib(info["memory_bytes"])
    ctx.emit(summary)
    nodes = [{**n, "memory": _gib(n["memory_bytes"])} for n in info["nodes"]]
    if nodes:
        ctx.emit(nodes, columns=NODE_COLUMNS, title="nodes")


@command(compute, "detach", help="Forget an attached cluster (it keeps running).")
@click.option("--name", "-n", required=True)
def detach(ctx: Ctx, name):
    ctx.fleet.computes.detach(name)
    ctx.emit({"detached": name})


@command(compute, "delete", help="Stop a cluster this workspace created and remove it.")
@click.option("--name", "-n", required=True)
@click.option("-y", "--yes", is_flag=True)
def delete(ctx: Ctx, name, yes):
    if not yes and sys.stdin.isatty():
        click.confirm(f"Stop the Ray cluster of compute {name!r} and remove it?", abort=True, default=True)
    deleted = ctx.fleet.computes.delete(name)
    ctx.emit({"deleted": name, "stopped_pids": deleted["stopped_pids"]})
