"""fleet apply | plan | export | schema: a whole suite of models declared in one place."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import click
import orjson

from ..domain.errors import DeploymentFailed
from .common import Ctx, command

# A holder group: cli/main.py adds each of these commands at the top level (`fleet apply`).
fleet_commands = click.Group("fleet-files")

FILE_HELP = "A fleet YAML, a multi-document YAML, or a directory of single documents."


def _plan(ctx: Ctx, path: str, prune: bool):
    from ..client import load_fleet
    desired = load_fleet(path, ctx.notice)  # all validated before the workspace or server is touched
    return ctx.fleet.plan(desired, prune=prune)


def _show_plan(ctx: Ctx, plan) -> None:
    if ctx.output != "table":
        ctx.emit({"changes": [c.to_dict() for c in plan.changes], "summary": plan.summary()})
        return
    for c in plan.changes:
        click.echo(c.line())
    click.echo(f"Plan: {plan.summary()}." if plan else "no changes")


@command(fleet_commands, "plan", help="Show what `fleet apply` would change: + create, ~ update, - delete.")
@click.option("-f", "--file", "path", required=True, help=FILE_HELP)
@click.option("--prune", is_flag=True, help="Also delete endpoints and deployments the file no longer names.")
def plan(ctx: Ctx, path, prune):
    _show_plan(ctx, _plan(ctx, path, prune))


@contextlib.contextmanager
def _progress(ctx: Ctx):
    """A live line per change on a terminal; nothing otherwise (the results follow anyway)."""
    if not (sys.stderr.isatty() and ctx.output == "table"):
        yield None
        return
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
    marks = {"ok": "[green]ok[/]", "failed": "[red]failed[/]", "skipped": "[yellow]skipped[/]"}
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        tasks: dict = {}

        def report(change, state, text):
            line = change.line()
            if change not in tasks:
                tasks[change] = bar.add_task(line, total=1)
            if state == "running":
                bar.update(tasks[change], description=f"{line} [dim]...[/]")
            else:
                bar.update(tasks[change], completed=1, description=f"{marks[state]} {line} [dim]{text}[/]")
        yield report


@command(fleet_commands, "apply", help="Make the workspace match a fleet file (idempotent).")
@click.option("-f", "--file", "path", required=True, help=FILE_HELP)
@click.option("--prune", is_flag=True, help="Also delete endpoints and deployments the file no longer names.")
@click.option("--dry-run", is_flag=True, help="Only print the plan.")
@click.option("--timeout", type=float, default=600.0, show_default=True,
              help="Seconds to wait for each deployment to become ready.")
def apply(ctx: Ctx, path, prune, dry_run, timeout):
    plan = _plan(ctx, path, prune)
    if dry_run or not plan:
        _show_plan(ctx, plan)
        return
    ctx.notice(f"applying: {plan.summary()}")
    with _progress(ctx) as report:
        outcomes = ctx.fleet.apply(plan, timeout=timeout, progress=report)
    failed = [o for o in outcomes if not o.ok]
    if ctx.output != "table":
        ctx.emit({"changes": [o.to_dict() for o in outcomes], "failed": len(failed)})
    else:
        for o in outcomes:
            click.echo(f"{o.status.upper() if not o.ok else o.status:<8}{o.change.line()} -- {o.message}")
            if o.detail and not o.ok:
                for line in o.detail.rstrip().splitlines()[-10:]:
                    click.echo(f"          {line}")
        click.echo(f"Applied {len(outcomes) - len(failed)} of {len(outcomes)} changes.")
    if failed:
        names = ", ".join(f"{o.change.kind} {o.change.name}" for o in failed if not o.skipped)
        raise DeploymentFailed(f"{len(failed)} of {len(outcomes)} changes failed ({names}); the others were "
                               "applied, and a failed deployment keeps serving its previous version")


@command(fleet_commands, "export", help="Write the workspace's current state as a fleet file.")
@click.option("-f", "--file", "path", default=None, type=click.Path(dir_okay=False),
              help="File to write (default: standard output). -o json writes JSON, else YAML.")
@click.option("--copy-models", is_flag=True,
              help="Copy model files into models/ beside the output file instead of pointing at the "
                   "workspace's snapshots (for use on another machine).")
def export(ctx: Ctx, path, copy_models):
    from ..fleetfile.exporter import dump, export_fleet
    from ..files.fsutil import atomic_write
    out = Path(path) if path else None
    base = out.parent if out else Path(".")
    doc = export_fleet(ctx.fleet, copy_models_to=base / "models" if copy_models else None,
                       relative_to=base if copy_models else None, notice=ctx.notice)
    if ctx.explicit_output and ctx.output in ("json", "jsonc"):
        text = orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n"
    else:  # a fleet file is YAML unless JSON is asked for
        text = dump(doc, ctx.fleet.workspace_name)
    if out is None:
        click.echo(text, nl=False)
    else:
        atomic_write(out, text.encode())
        ctx.notice(f"wrote {len(doc['models'])} models, {len(doc['endpoints'])} endpoints and "
                   f"{len(doc['deployments'])} deployments to {out}")


@command(fleet_commands, "schema", help="Print the JSON Schema of a document kind, for editor completion.")
@click.argument("kind", type=click.Choice(["model", "endpoint", "environment", "deployment", "fleet"]), default="fleet")
def schema(ctx: Ctx, kind):
    from ..schema.documents import KINDS
    doc = {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": f"modelfleet {kind}",
           **{k: v for k, v in KINDS[kind].model_json_schema(by_alias=True).items() if k != "title"}}
    if ctx.output == "yaml":
        ctx.emit(doc)
    else:
        click.echo(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())


COMMANDS = (apply, plan, export, schema)
