"""What every command shares: -w/--workspace-name, -o/--output, --debug, and error handling."""

from __future__ import annotations

import functools
import sys
import traceback

import click

from ..errors import FleetError
from .output import FORMATS, emit


class Ctx:
    def __init__(self, workspace: str | None, output: str, debug: bool):
        self.workspace_name = workspace
        self.output = output
        self.debug = debug
        self._fleet = None

    @property
    def fleet(self):
        if self._fleet is None:
            from ..sdk import Fleet
            self._fleet = Fleet(self.workspace_name, notice=self.notice)
        return self._fleet

    def notice(self, msg: str) -> None:
        click.echo(msg, err=True)

    def emit(self, data, columns=None, title=None) -> None:
        emit(data, self.output, columns, title)

    def close(self) -> None:
        if self._fleet is not None:
            self._fleet.close()


def fail(err: FleetError, debug: bool) -> None:
    click.echo(f"error: {err.message}", err=True)
    if err.detail:
        click.echo(err.detail.rstrip(), err=True)
    if debug:
        traceback.print_exc()
    sys.exit(err.exit_code)


def command(group: click.Group, name: str, **kw):
    """Register a command that gets a `ctx: Ctx` first argument and the common options."""
    def deco(fn):
        @group.command(name, **kw)
        @click.option("-w", "--workspace-name", "workspace", envvar="FLEET_WORKSPACE",
                      help="Workspace to use (default: the current one; env FLEET_WORKSPACE).")
        @click.option("-o", "--output", type=click.Choice(FORMATS), default="table", show_default=True,
                      help="Output format.")
        @click.option("--debug", is_flag=True, help="Show the full traceback on errors.")
        @click.option("-g", "--resource-group", "_resource_group", default=None, hidden=True,
                      help="Accepted so az ml scripts run unchanged; ignored.")
        @functools.wraps(fn)
        def wrapper(workspace, output, debug, _resource_group=None, **params):
            ctx = Ctx(workspace, output, debug)
            try:
                return fn(ctx, **params)
            except FleetError as e:
                fail(e, debug)
            except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
                raise
            except KeyboardInterrupt:
                click.echo("interrupted", err=True)
                sys.exit(130)
            except Exception as e:  # a bug: still one line, the traceback with --debug
                fail(FleetError(f"unexpected {type(e).__name__}: {e}"), debug)
            finally:
                ctx.close()
        return wrapper
    return deco


def parse_tags(values: tuple[str, ...]) -> dict[str, str]:
    from ..errors import InvalidInput
    out = {}
    for v in values:
        k, sep, val = v.partition("=")
        if not sep or not k:
            raise InvalidInput(f"--tag {v!r}: use key=value")
        out[k] = val
    return out
