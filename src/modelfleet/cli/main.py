"""The `fleet` command (also `modelfleet` and `python -m modelfleet`)."""

from __future__ import annotations

import click

from ..version import __version__
from .computes import compute
from .datastores import datastore
from .deployments import online_deployment
from .endpoints import online_endpoint
from .environments import environment
from .models import model
from .server import server
from .workspaces import workspace


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="modelfleet")
def cli() -> None:
    """modelfleet: register and serve many models on one machine, with the az ml vocabulary."""


for group in (workspace, model, environment, online_endpoint, online_deployment, compute, datastore, server):
    cli.add_command(group)


from .configure import configure  # noqa: E402
from .quickstart import quickstart  # noqa: E402

cli.add_command(quickstart)
cli.add_command(configure)

from .top import top  # noqa: E402
from .data import data  # noqa: E402
from .schedules import schedule  # noqa: E402

cli.add_command(data)
cli.add_command(schedule)

cli.add_command(top)

from .identities import COMMANDS as IDENTITY_COMMANDS  # noqa: E402
from .accounts import COMMANDS as ACCOUNT_COMMANDS  # noqa: E402

for _command in IDENTITY_COMMANDS + ACCOUNT_COMMANDS:
    cli.add_command(_command)

from .fleet import COMMANDS as FLEET_FILE_COMMANDS  # noqa: E402

for _command in FLEET_FILE_COMMANDS:
    cli.add_command(_command)


def main() -> None:
    cli(prog_name="fleet")
