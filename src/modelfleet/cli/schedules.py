"""fleet schedule ... (Azure's `az ml schedule` with model monitor documents)"""

from __future__ import annotations

import click

from .common import Ctx, command

COLUMNS = ["name", "enabled", "next_run_at", "updated_at"]
RESULT_COLUMNS = ["signal", "feature", "metric", "value", "threshold", "result"]


@click.group("schedule", help="Model monitors: compare what a deployment receives and answers with reference "
                              "data on a schedule (Azure's monitor schedule YAML).")
def schedule() -> None:
    pass


def _results(run: dict | None) -> list[dict]:
    """One row per (signal, feature, metric): pass, fail, or n/a (no production data)."""
    return [{**r, "result": {True: "pass", False: "fail", None: "n/a"}[r["passed"]]}
            for r in (run or {}).get("results", [])]


def _emit_run(ctx: Ctx, run: dict | None, head: dict) -> None:
    if ctx.output == "table":
        if run is None:
            ctx.notice(f"schedule {head['name']}: no run yet (fleet schedule run --name {head['name']})")
            return
        title = (f"{head['name']}: run {run['id']} at {run['started_at']}, {run['status']}"
                 + (f" ({run['error']})" if run.get("error") else ""))
        ctx.emit(_results(run), columns=RESULT_COLUMNS, title=title)
    else:
        ctx.emit({**head, "latest_run": run and {**run, "results": _results(run)}})


@command(schedule, "create", help="Create (or replace) a monitor schedule from a YAML file.")
@click.option("-f", "--file", required=True, help="A monitor schedule YAML (create_monitor, trigger).")
@click.option("--name", "-n", default=None, help="Overrides name in the file.")
def create(ctx: Ctx, file, name):
    from ..schema import yaml_files as documents
    from ..schema.monitoring import MonitorScheduleSpec
    from ..schema.validation import validate
    fields = documents.load_one(file)
    if name:
        fields["name"] = name
    spec = validate(MonitorScheduleSpec, fields, file)
    for n in spec.notices(file):
        ctx.notice(f"notice: {n}")
    ctx.emit(ctx.fleet.schedules.create_or_update(spec))


@command(schedule, "list", help="List schedules.")
def list_(ctx: Ctx):
    ctx.emit(ctx.fleet.schedules.list(), columns=COLUMNS)


@command(schedule, "show", help="Show a schedule and its latest result per feature, with pass or fail.")
@click.option("--name", "-n", required=True)
def show(ctx: Ctx, name):
    out = ctx.fleet.schedules.get(name)
    run = out.pop("latest_run")
    _emit_run(ctx, run, out)


@command(schedule, "run", help="Run a monitor now (for CI and tests); prints its results.")
@click.option("--name", "-n", required=True)
def run_(ctx: Ctx, name):
    run = ctx.fleet.schedules.run(name)
    _emit_run(ctx, run, {"name": name})


def _switch(verb: str, help: str) -> None:
    @command(schedule, verb, help=help)
    @click.option("--name", "-n", required=True)
    def switch(ctx: Ctx, name):
        ctx.emit(getattr(ctx.fleet.schedules, verb)(name))


_switch("enable", "Run the schedule on its trigger again.")
_switch("disable", "Stop running the schedule on its trigger (`run` still runs it).")


@command(schedule, "delete", help="Delete a schedule and its runs.")
@click.option("--name", "-n", required=True)
@click.option("--yes", "-y", is_flag=True, help="Accepted for az compatibility; nothing asks.")
def delete(ctx: Ctx, name, yes):
    ctx.fleet.schedules.delete(name)
    ctx.emit({"name": name, "deleted": True})
