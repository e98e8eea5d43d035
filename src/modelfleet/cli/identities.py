"""fleet user ..., fleet token ..., fleet role assignment ..., fleet activity-log list."""

from __future__ import annotations

import click

from .common import Ctx, command

USER_COLUMNS = ["name", "kind", "description", "created_at", "created_by"]
TOKEN_COLUMNS = ["name", "principal", "created_at", "expires_at", "last_used_at"]
ASSIGNMENT_COLUMNS = ["principalName", "roleDefinitionName", "scope", "createdOn", "createdBy"]
ACTIVITY_COLUMNS = ["at", "caller", "operation", "resource", "status", "http_status", "client", "correlation_id"]

name_option = click.option("--name", "-n", required=True)
expires_in_option = click.option("--expires-in", default=None,
                                 help="The token's lifetime: 90m, 12h, 30d (default: until revoked).")
principal_option = click.option("--user", "principal", default=None,
                                help="Another user's or service principal's (needs Owner at /).")


@click.group("user", help="Users and service principals of the server (no sign-up: an Owner makes them).")
def user() -> None:
    pass


@command(user, "create", help="Create a user (or a service principal) and print its first token, once.")
@name_option
@click.option("--service-principal", is_flag=True, help="A service principal (a pipeline), not a person.")
@click.option("--description", default="")
@click.option("--token-name", default="default", show_default=True, help="Name of the first token.")
@expires_in_option
def user_create(ctx: Ctx, name, service_principal, description, token_name, expires_in):
    ctx.emit(ctx.fleet.users.create(name, kind="service_principal" if service_principal else "user",
                                    description=description, token_name=token_name, expires_in=expires_in))


@command(user, "list", help="List users and service principals.")
@click.option("--kind", type=click.Choice(["user", "service_principal"]), default=None)
def user_list(ctx: Ctx, kind):
    ctx.emit(ctx.fleet.users.list(kind), columns=USER_COLUMNS)


@command(user, "show", help="Show a user: role assignments and tokens (never the tokens themselves). "
                            "Without --name: who this client is.")
@click.option("--name", "-n", default=None)
def user_show(ctx: Ctx, name):
    ctx.emit(ctx.fleet.users.get(name) if name else ctx.fleet.users.me())


@command(user, "delete", help="Delete a user; its tokens and role assignments go at once.")
@name_option
@click.option("--yes", "-y", is_flag=True, help="Accepted from az scripts (nothing asks).")
def user_delete(ctx: Ctx, name, yes):
    ctx.emit(ctx.fleet.users.delete(name))


@click.group("token", help="API tokens: yours, or (an Owner) another principal's with --user.")
def token() -> None:
    pass


@command(token, "create", help="Create a token and print it, once.")
@name_option
@expires_in_option
@principal_option
def token_create(ctx: Ctx, name, expires_in, principal):
    ctx.emit(ctx.fleet.tokens.create(name, expires_in=expires_in, principal=principal))


@command(token, "list", help="List tokens (names and dates; a token is shown only when made).")
@principal_option
def token_list(ctx: Ctx, principal):
    ctx.emit(ctx.fleet.tokens.list(principal), columns=TOKEN_COLUMNS)


@command(token, "revoke", help="Revoke a token: its next request is refused.")
@name_option
@principal_option
def token_revoke(ctx: Ctx, name, principal):
    ctx.emit(ctx.fleet.tokens.revoke(name, principal))


@click.group("role", help="Role assignments, as `az role assignment`.")
def role() -> None:
    pass


@role.group("assignment", help="Give, list and take back built-in roles at a scope.")
def assignment() -> None:
    pass


SCOPE_HELP = ("/ (every workspace of the server) or /workspaces/NAME, or a workspace's Azure-shaped id "
              "(default: this workspace).")


@command(assignment, "create", help="Give a principal a built-in role (Reader, Contributor, Owner, "
                                    "AzureML Data Scientist, AzureML Compute Operator).")
@click.option("--assignee", required=True)
@click.option("--role", "role_name", required=True)
@click.option("--scope", default=None, help=SCOPE_HELP)
def assignment_create(ctx: Ctx, assignee, role_name, scope):
    ctx.emit(ctx.fleet.role_assignments.create(assignee, role_name, scope))


@command(assignment, "list", help="Role assignments that apply to this workspace.")
@click.option("--assignee", default=None)
@click.option("--scope", default=None, help=SCOPE_HELP)
def assignment_list(ctx: Ctx, assignee, scope):
    ctx.emit(ctx.fleet.role_assignments.list(assignee, scope), columns=ASSIGNMENT_COLUMNS)


@command(assignment, "delete", help="Take a role back (the last Owner at / stays).")
@click.option("--assignee", required=True)
@click.option("--role", "role_name", required=True)
@click.option("--scope", default=None, help=SCOPE_HELP)
@click.option("--yes", "-y", is_flag=True, help="Accepted from az scripts (nothing asks).")
def assignment_delete(ctx: Ctx, assignee, role_name, scope, yes):
    ctx.emit(ctx.fleet.role_assignments.delete(assignee, role_name, scope))


@role.group("definition", help="The built-in roles.")
def definition() -> None:
    pass


@command(definition, "list", help="The built-in roles and the actions each grants and takes back.")
def definition_list(ctx: Ctx):
    ctx.emit(ctx.fleet.role_assignments.definitions(), columns=["roleName", "description"])


@click.group("activity-log", help="Who changed what: every change and refused change.")
def activity_log() -> None:
    pass


@command(activity_log, "list", help="Changes, oldest first.")
@click.option("--since", default=None, help="A duration (90s, 10m, 1h, 2d) or a time (2026-11-26T07:30:00).")
@click.option("--caller", default=None, help="Only this principal's.")
@click.option("--max-events", "limit", type=click.IntRange(1, 10_000), default=1000, show_default=True)
@click.option("--format", "format_", type=click.Choice(["entries", "access-log"]), default="entries",
              show_default=True, help="access-log: the access log's JSON lines, for log shippers.")
def activity_list(ctx: Ctx, since, caller, limit, format_):
    if format_ == "access-log":
        click.echo(ctx.fleet.activity_log.access_log_lines(since, caller, limit), nl=False)
        return
    ctx.emit(ctx.fleet.activity_log.list(since, caller, limit), columns=ACTIVITY_COLUMNS)


COMMANDS = [user, token, role, activity_log]
