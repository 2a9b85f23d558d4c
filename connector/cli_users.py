"""`renewals users`: who may sign in to the admin console. Registered by connector.cli."""

from __future__ import annotations

import json
import sys

import click
from rich.table import Table

from crm_renewals.connector import bootstrap
from crm_renewals.connector.cli_common import (
    base_config_of,
    cli_actor,
    fatal_errors,
    json_option,
    out,
)
from crm_renewals.connector.services.users import ROLES, UserError, add_user, remove_user


def _store(ctx):
    return bootstrap.open_store(base_config_of(ctx))  # console users: the deployment's


@click.group("users")
def users_group() -> None:
    """Admin console users (admin: may change and run; viewer: may look)."""


@users_group.command("add")
@click.argument("email")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from standard input (scripts)."
)
@json_option
@click.pass_context
@fatal_errors
def users_add(ctx, email: str, role: str, password_stdin: bool, as_json: bool) -> None:
    """Add EMAIL with ROLE; the password is asked for (twice), or read with --password-stdin."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        raise UserError("no terminal to ask the password on: pass it with --password-stdin")
    store = _store(ctx.parent)
    try:
        user = add_user(store, email, role, password, cli_actor())
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps({"ok": True, "email": user.email, "role": user.role}))
    else:
        out.print(f"Added {user.email} ({user.role}).")


@users_group.command("list")
@json_option
@click.pass_context
@fatal_errors
def users_list(ctx, as_json: bool) -> None:
    """The console's users and when each last signed in."""
    store = _store(ctx.parent)
    try:
        rows = store.users.list()
    finally:
        store.close()
    if as_json:
        data = [
            {
                "email": u.email,
                "role": u.role,
                "created_at": u.created_at.isoformat(),
                "last_login_at": u.last_login_at.isoformat() if u.last_login_at else None,
            }
            for u in rows
        ]
        click.echo(json.dumps({"ok": True, "users": data}))
        return
    if not rows:
        out.print("No users: add one with `renewals users add EMAIL --role admin`.")
        return
    table = Table("email", "role", "added", "last sign-in")
    for u in rows:
        last = f"{u.last_login_at:%Y-%m-%d %H:%M}" if u.last_login_at else "never"
        table.add_row(u.email, u.role, f"{u.created_at:%Y-%m-%d}", last)
    out.print(table)


@users_group.command("remove")
@click.argument("email")
@json_option
@click.pass_context
@fatal_errors
def users_remove(ctx, email: str, as_json: bool) -> None:
    """Remove EMAIL: their sessions end at their next request."""
    store = _store(ctx.parent)
    try:
        remove_user(store, email, cli_actor())
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps({"ok": True, "removed": email.strip().lower()}))
    else:
        out.print(f"Removed {email.strip().lower()}.")


COMMANDS = (users_group,)
