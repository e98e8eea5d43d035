"""fleet login, fleet logout, fleet account show|list|set: servers elsewhere, as `az login`."""

from __future__ import annotations

import sys

import click

from ..domain.errors import InvalidInput
from .common import Ctx, command

ACCOUNT_COLUMNS = ["server", "user", "workspace", "current", "ca_bundle"]


@click.group()
def _holder() -> None:
    pass


def _read_token(token_file: str | None) -> str:
    """From the file, else one line on standard input (never an argument: it would show in `ps`)."""
    if token_file:
        try:
            with open(token_file) as f:
                text = f.read()
        except OSError as e:
            raise InvalidInput(f"--token-file {token_file!r}: {e.strerror or e}") from None
    else:
        if sys.stdin.isatty():
            click.echo("token: ", err=True, nl=False)
        text = sys.stdin.readline()
    token = text.strip()
    if not token or any(c.isspace() for c in token):
        raise InvalidInput(f"{'--token-file ' + repr(token_file) if token_file else 'standard input'}: "
                           "expected one token (mft_...)")
    return token


@command(_holder, "login", help="Log in to a server with a token (from --token-file or standard input); "
                                "checked by one request, then kept in $FLEET_HOME (0600) and made current.")
@click.option("--server", required=True, help="The server's URL, https://HOST:PORT.")
@click.option("--token-file", default=None, help="A file holding the token (default: read from standard input).")
@click.option("--ca-bundle", default=None, help="CA certificates to trust for this server (PEM); kept with the login.")
def login(ctx: Ctx, server, token_file, ca_bundle):
    from ..client import Fleet
    from ..client.accounts import Account, Accounts, normalize
    url, token = normalize(server), _read_token(token_file)
    accounts = Accounts()
    with Fleet(server=url, token=token, ca_bundle=ca_bundle) as remote:
        me = remote.users.me()   # nothing is saved unless the server accepts the token
    kept = accounts.keep_ca(ca_bundle) if ca_bundle else None
    account = Account(url, token, me["name"], me["workspace"], kept)
    accounts.save(account)
    ctx.emit(account.shown(current=True), columns=ACCOUNT_COLUMNS)


@command(_holder, "logout", help="Forget the current server's login (or --server's); the next is made current.")
@click.option("--server", default=None)
def logout(ctx: Ctx, server):
    from ..client.accounts import Accounts
    ctx.emit({"logged_out": Accounts().remove(server)})


@click.group("account", help="The servers you are logged in to (fleet login).")
def account() -> None:
    pass


@command(account, "show", help="The current login (never its token).")
def account_show(ctx: Ctx):
    from ..client.accounts import Accounts
    current = Accounts().current()
    if current is None:
        raise InvalidInput("not logged in: commands go to this machine's workspace server (fleet login --server URL)")
    ctx.emit(current.shown(current=True))


@command(account, "list", help="Every login.")
def account_list(ctx: Ctx):
    from ..client.accounts import Accounts
    ctx.emit(Accounts().list(), columns=ACCOUNT_COLUMNS)


@command(account, "set", help="Make another login current.")
@click.option("--server", required=True)
def account_set(ctx: Ctx, server):
    from ..client.accounts import Accounts
    ctx.emit(Accounts().set_current(server).shown(current=True))


COMMANDS = [login, logout, account]
