"""fleet configure: defaults for every command, as `az configure --defaults` sets them."""

from __future__ import annotations

import click

from ..domain.errors import InvalidInput
from .common import Ctx, command
from .output import FORMATS

# key -> what it does; Azure-only keys are accepted so `az configure` lines run unchanged.
KEYS = {
    "output": "default -o for every command",
    "workspace": "the current workspace (as `fleet workspace set -w NAME`)",
    "group": "Azure resource group: accepted, no meaning here",
    "location": "Azure region: accepted, no meaning here",
}


@click.group()
def _holder() -> None:
    pass


@command(_holder, "configure", help="Set defaults: fleet configure --defaults output=table workspace=NAME.")
@click.option("--defaults", "-d", multiple=True, metavar="KEY=VALUE ...",
              help=f"Set defaults ({', '.join(KEYS)}); an empty value removes one.")
@click.option("--list-defaults", "-l", is_flag=True, help="Show the defaults.")
@click.option("--scope", type=click.Choice(["global", "local"]), default="global", hidden=True,
              help="Accepted from az; modelfleet's defaults are per FLEET_HOME.")
def configure(ctx: Ctx, defaults, list_defaults, scope):
    from ..schema.workspace import Workspaces
    wss = Workspaces()
    changes = {}
    for item in defaults:
        key, sep, value = item.partition("=")
        if not sep or key not in KEYS:
            raise InvalidInput(f"--defaults {item!r}: use KEY=VALUE with KEY one of {', '.join(KEYS)}")
        if key == "output" and value and value.lower() not in FORMATS:
            raise InvalidInput(f"--defaults output={value}: use one of {', '.join(FORMATS)}")
        changes[key] = value.lower() if key == "output" else value
    if "workspace" in changes:
        if changes["workspace"]:
            wss.set_current(changes.pop("workspace"))
        else:
            changes.pop("workspace")
    for key in ("group", "location"):
        if changes.pop(key, None):
            ctx.notice(f"notice: {key}: modelfleet has no Azure {key}s; ignored")
    stored = wss.set_defaults(changes) if changes else wss.defaults()
    if list_defaults or not defaults:  # like az configure: setting prints nothing
        ctx.emit([{"name": k, "value": v} for k, v in {**stored, "workspace": wss.current_name()}.items()],
                 columns=["name", "value"])
