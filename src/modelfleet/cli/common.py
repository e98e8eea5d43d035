"""What every command shares: az's global options, output, notices and error handling.

Every command takes `-w/--workspace-name`, `-o/--output`, `--query`, `--debug`, `--verbose`,
`--only-show-errors`, `--no-wait`, and, so that `az ml` scripts run unchanged, `-g/--resource-group`,
`--subscription` and `--local` (accepted; modelfleet always runs on this machine). Long options may
be shortened to any unambiguous prefix (`--deployment` for `--deployment-name`), as argparse lets
az scripts do, and `--set/--add/--remove/--tags` take several values after one flag.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import traceback

import click

from ..domain.errors import FleetError, InvalidInput
from .output import FORMATS, emit

# Groups whose commands exist in `az ml`: piped output defaults to JSON there, as in az.
AZ_GROUPS = frozenset({"workspace", "model", "online-endpoint", "online-deployment", "compute", "datastore"})

# Flags that take every following value up to the next option: az's nargs='+'.
_GREEDY_OPS = ("--set", "--add", "--remove")
_GREEDY_REPEAT = {"--tags": "--tag", "--defaults": "--defaults"}  # each value becomes one occurrence


class AzCommand(click.Command):
    """A click command that reads its arguments the way az's argparse does."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["az_ops"] = []
        return super().parse_args(ctx, self._rewrite(ctx, list(args)))

    def _long_options(self) -> set[str]:
        return {o for p in self.params for o in (*p.opts, *p.secondary_opts) if o.startswith("--")}

    def _rewrite(self, ctx: click.Context, args: list[str]) -> list[str]:
        names = self._long_options()
        out: list[str] = []
        i = 0
        while i < len(args):
            tok = args[i]
            if tok == "--":
                out += args[i:]
                break
            if not tok.startswith("--") or len(tok) == 2:
                out.append(tok)
                i += 1
                continue
            name, eq, value = tok.partition("=")
            if name not in names:
                matches = [n for n in names if n.startswith(name)]
                name = matches[0] if len(matches) == 1 else name
            greedy = name in _GREEDY_OPS or name in _GREEDY_REPEAT
            if not greedy or name not in names:
                out.append(name + eq + value)
                i += 1
                continue
            values = [value] if eq else []
            i += 1
            while i < len(args) and not args[i].startswith("-"):
                values.append(args[i])
                i += 1
            if name in _GREEDY_OPS:
                ctx.meta["az_ops"].append((name[2:], values))
            else:
                for v in values or [""]:
                    out += [_GREEDY_REPEAT[name], v]
        return out


class Ctx:
    def __init__(self, workspace: str | None, output: str, query: str | None, debug: bool, quiet: bool,
                 no_wait: bool, ops: list, force_string: bool, explicit_output: bool):
        self.workspace_name = workspace
        self.output = output
        self.explicit_output = explicit_output
        self.query = query
        self.debug = debug
        self.quiet = quiet
        self.no_wait = no_wait
        self.ops = ops              # --set/--add/--remove, in command-line order
        self.force_string = force_string
        self._fleet = None

    @property
    def fleet(self):
        if self._fleet is None:
            from ..client import Fleet
            self._fleet = Fleet(self.workspace_name, notice=self.notice)
        return self._fleet

    def notice(self, msg: str) -> None:
        if not self.quiet:
            click.echo(msg, err=True)

    def emit(self, data, columns=None, title=None, kind: str | None = None) -> None:
        """Print a result; `kind` (endpoint, deployment, model, workspace, compute) adds Azure's `id`."""
        if kind is not None:
            from .resource_ids import with_ids
            data = with_ids(data, kind, "" if kind == "workspace" else self.workspace_for_ids())   # names itself
        emit(data, self.output, columns, title, self.query)

    def workspace_for_ids(self) -> str:
        if self._fleet is not None:
            return self._fleet.workspace_name
        from ..schema.workspace import Workspaces
        return self.workspace_name or Workspaces().current_name()

    def apply_ops(self, doc: dict) -> dict:
        """The document with this command's --set/--add/--remove applied."""
        if not self.ops:
            return doc
        from .properties import apply
        return apply(doc, self.ops, self.force_string)

    def refuse_ops(self) -> None:
        if self.ops:
            raise InvalidInput(f"--{self.ops[0][0]} is not available on this command")

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


def default_output(az_command: bool) -> str:
    """-o when not given: $FLEET_OUTPUT, then `fleet configure --defaults output=...`, then a table
    on a terminal and, for az's commands, JSON when piped (what az scripts parse)."""
    value = os.environ.get("FLEET_OUTPUT")
    if not value:
        from ..schema.workspace import Workspaces
        value = Workspaces().defaults().get("output")
    if value:
        if value.lower() not in FORMATS:
            raise InvalidInput(f"default output {value!r} (FLEET_OUTPUT or fleet configure): use one of "
                               f"{', '.join(FORMATS)}")
        return value.lower()
    return "json" if az_command and not sys.stdout.isatty() else "table"


_AZURE_ONLY_NOTICE = ("{flag}: modelfleet always runs on this machine; an endpoint created with it answers "
                      "requests from this machine without a key, as Azure's local endpoints do")


def _global_options(fn, properties: bool):
    opts = [
        click.option("-w", "--workspace-name", "workspace", envvar="FLEET_WORKSPACE",
                     help="Workspace to use (default: the current one; env FLEET_WORKSPACE)."),
        click.option("-o", "--output", type=click.Choice(FORMATS, case_sensitive=False), default=None,
                     help="Output format (default: FLEET_OUTPUT, `fleet configure --defaults output=...`, "
                          "else table on a terminal and json when piped)."),
        click.option("--query", default=None, metavar="JMESPATH", help="JMESPath query applied to the result."),
        click.option("--debug", is_flag=True, help="Show the full traceback on errors."),
        click.option("--verbose", is_flag=True, help="Log progress to standard error."),
        click.option("--only-show-errors", "only_errors", is_flag=True, help="Print no notices, only errors."),
        click.option("--no-wait", is_flag=True, help="Do not wait for long-running operations to finish."),
        click.option("--local", "_local", is_flag=True, help="Accepted from az ml scripts: modelfleet is local."),
        click.option("-g", "--resource-group", "_resource_group", default=None, hidden=True,
                     help="Accepted so az ml scripts run unchanged; ignored."),
        click.option("--subscription", "_subscription", default=None, hidden=True,
                     help="Accepted so az ml scripts run unchanged; ignored."),
    ]
    if properties:
        opts += [
            click.option("--set", "_set", multiple=True, expose_value=False, metavar="KEY=VALUE ...",
                         help="Set a property by path: --set instance_count=2 tags.team=risk."),
            click.option("--add", "_add", multiple=True, expose_value=False, metavar="PATH VALUE ...",
                         help="Append to a list property."),
            click.option("--remove", "_remove", multiple=True, expose_value=False, metavar="PATH [INDEX]",
                         help="Remove a property, or one item of a list property."),
            click.option("--force-string", is_flag=True, help="Keep --set/--add values as strings (no JSON)."),
        ]
    before = len(getattr(fn, "__click_params__", []))
    for opt in reversed(opts):
        fn = opt(fn)
    params = fn.__click_params__  # click lists these in reverse: put the shared ones after the command's own
    fn.__click_params__ = params[before:] + params[:before]
    return fn


def confirm(yes: bool, question: str) -> None:
    """Ask on a terminal unless --yes was given; a script or a pipe is never asked."""
    if not yes and sys.stdin.isatty():
        click.confirm(question, abort=True, default=True)


def command(group: click.Group, name: str, *, properties: bool = False, **kw):
    """Register a command that gets a `ctx: Ctx` first argument and the common options;
    `properties` gives it az's --set/--add/--remove."""
    az_command = group.name in AZ_GROUPS

    def deco(fn):
        @group.command(name, cls=AzCommand, **kw)
        @functools.partial(_global_options, properties=properties)
        @functools.wraps(fn)
        def wrapper(workspace, output, query, debug, verbose, only_errors, no_wait, _local,
                    _resource_group=None, _subscription=None, force_string=False, **params):
            ops = click.get_current_context().meta.get("az_ops", [])
            ctx = None
            try:
                explicit = output is not None
                ctx = Ctx(workspace, output.lower() if explicit else default_output(az_command), query, debug,
                          only_errors, no_wait, ops, force_string, explicit)
                if verbose or debug:
                    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO, stream=sys.stderr,
                                        format="%(levelname)s: %(name)s: %(message)s")
                if _local and not only_errors:
                    from ..schema.workspace import Workspaces
                    if Workspaces().first_time("--local"):
                        ctx.notice(f"notice: {_AZURE_ONLY_NOTICE.format(flag='--local')}")
                if not properties and force_string:
                    raise InvalidInput("--force-string goes with --set/--add")
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
                if ctx is not None:
                    ctx.close()
        return wrapper
    return deco


def azure_only(*flags: str):
    """Flags of az ml that mean nothing here (--web, --vscode-debug, ...): accepted, with a notice."""
    def deco(fn):
        for flag in flags:
            dest = "_az_" + flag.lstrip("-").replace("-", "_")
            fn = click.option(flag, dest, is_flag=True, hidden=True, expose_value=True)(fn)

        @functools.wraps(fn)
        def wrapper(ctx: Ctx, **params):
            for flag in flags:
                if params.pop("_az_" + flag.lstrip("-").replace("-", "_"), False):
                    ctx.notice(f"notice: {flag} has no meaning on modelfleet; ignored")
            return fn(ctx, **params)
        return wrapper
    return deco


def parse_tags(values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for v in values:
        k, sep, val = v.partition("=")
        if not sep or not k:
            raise InvalidInput(f"--tag {v!r}: use key=value")
        out[k] = val
    return out
