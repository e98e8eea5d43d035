"""fleet quickstart"""

from __future__ import annotations

import click

from .common import Ctx, command


@click.group()
def _holder() -> None:
    pass


@command(_holder, "quickstart", help="Train, register, deploy, invoke and update three models, end to end.")
def quickstart(ctx: Ctx):
    from ..quickstart import WORKSPACE, run
    endpoints = run(ctx.notice, ctx.workspace_name if ctx.workspace_name else WORKSPACE)
    ctx.emit(endpoints, columns=["name", "traffic", "scoring_uri"], title="endpoints")
    ws = ctx.workspace_name or WORKSPACE
    click.echo(f"\nTry:  fleet online-endpoint list -w {ws}\n      fleet server stop -w {ws}", err=True)
