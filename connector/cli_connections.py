"""`renewals connections`: the deployment's CRM connections (list, show, add, remove,
disconnect) and the key their OAuth tokens are sealed with (new-key, rotate-key). Registered
by connector.cli."""

from __future__ import annotations

import json

import click
from rich.table import Table

from crm_renewals.connector import bootstrap, connections, oauth
from crm_renewals.connector.cli_common import (
    base_config_of,
    cli_actor,
    fatal_errors,
    json_option,
    out,
    tell,
)
from crm_renewals.connector.secretbox import KEY_ENV, new_key
from crm_renewals.connector.services import connections as service


@click.group("connections")
def connections_group() -> None:
    """The CRM connections this deployment serves (app.yaml alone: `default`)."""


def _registry(ctx: click.Context):
    base = base_config_of(ctx)
    return base, bootstrap.open_registry(base)


@connections_group.command("list")
@json_option
@click.pass_context
@fatal_errors
def list_cmd(ctx, as_json: bool) -> None:
    """Every connection: CRM, how it signs in, its portal or org, its status."""
    base, registry = _registry(ctx)
    try:
        found = connections.connections(base, registry)
    finally:
        registry.close()
    if as_json:
        click.echo(json.dumps({"ok": True, "connections": [c.to_json() for c in found]}))
        return
    table = Table("Connection", "CRM", "Auth", "Portal / org", "Status")
    for c in found:
        status = c.status + (f" ({c.status_reason})" if c.status_reason else "")
        table.add_row(c.name, c.crm, c.auth, c.external_id or "-", status)
    out.print(table)


@connections_group.command("show")
@click.argument("name")
@json_option
@click.pass_context
@fatal_errors
def show_cmd(ctx, name: str, as_json: bool) -> None:
    """One connection: its settings file, its state database, its last run."""
    base, registry = _registry(ctx)
    try:
        found = service.describe(base, registry, name)
    finally:
        registry.close()
    if as_json:
        click.echo(json.dumps({"ok": True, **found.to_json()}))
        return
    c = found.connection
    rows = [
        ("connection", c.name),
        ("crm", c.crm),
        ("auth", c.auth + (" (tokens sealed in the state database)" if c.auth == "oauth" else "")),
        ("status", c.status + (f": {c.status_reason}" if c.status_reason else "")),
        ("portal / org", c.external_id or "-"),
        ("instance", c.instance_url or "-"),
        ("scopes", c.scopes or "-"),
        ("settings", found.settings_file or "app.yaml"),
        ("state database", found.state),
    ]
    if found.last_run:
        r = found.last_run
        rows.append(("last run", f"#{r['id']} {r['mode']} {r['status']} {r['started_at']}"))
    if found.install_path:
        rows.append(("connect", f"open <your deployment>{found.install_path} (signed in)"))
    for key, value in rows:
        out.print(f"{key + ':':16} {value}", markup=False, highlight=False)


@connections_group.command("add")
@click.argument("name")
@click.option("--crm", type=click.Choice(service.CRMS), required=True)
@json_option
@click.pass_context
@fatal_errors
def add_cmd(ctx, name: str, crm: str, as_json: bool) -> None:
    """Add connection NAME of CRM (a HubSpot or Salesforce one then waits for its OAuth
    install: `renewals connections show NAME` says where)."""
    base, registry = _registry(ctx)
    try:
        conn = service.add(base, registry, name, crm, cli_actor())
    finally:
        registry.close()
    path = service.install_path(conn)
    if as_json:
        click.echo(json.dumps({"ok": True, **conn.to_json(), "install_path": path}))
        return
    out.print(f"Added connection {conn.name} ({conn.crm}, {conn.status}).")
    if path:
        out.print(
            f"Connect it: sign in to the console and open {path} on your deployment "
            "(or use Connections > Connect).",
            markup=False,
        )


@connections_group.command("remove")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
@click.pass_context
@fatal_errors
def remove_cmd(ctx, name: str, yes: bool, as_json: bool) -> None:
    """Remove connection NAME: its OAuth tokens are revoked; its state database is kept."""
    if not yes and not as_json:
        click.confirm(f"Remove connection {name} (its tokens are revoked)?", abort=True)
    base, registry = _registry(ctx)
    try:
        conn = service.remove(base, registry, name, cli_actor())
    finally:
        registry.close()
    if as_json:
        click.echo(json.dumps({"ok": True, "removed": conn.name}))
    else:
        out.print(f"Removed connection {conn.name}; its state database is kept.")


@connections_group.command("disconnect")
@click.argument("name")
@json_option
@click.pass_context
@fatal_errors
def disconnect_cmd(ctx, name: str, as_json: bool) -> None:
    """Disconnect OAuth connection NAME: its tokens are revoked at the CRM and forgotten, its
    runs refused until it is connected again (its settings and state are kept)."""
    base, registry = _registry(ctx)
    try:
        conn = oauth.disconnect(base, registry, name, cli_actor())
    finally:
        registry.close()
    if as_json:
        click.echo(json.dumps({"ok": True, **conn.to_json()}))
    else:
        out.print(f"Disconnected {conn.name}; connect it again from the console.", markup=False)


@connections_group.command("new-key")
@json_option
@fatal_errors
def new_key_cmd(as_json: bool) -> None:
    """Print a new key for RENEWALS_ENCRYPTION_KEY (keep it with your other secrets)."""
    key = new_key()
    if as_json:
        click.echo(json.dumps({"ok": True, "key": key}))
        return
    click.echo(key)
    tell(
        f"Put it in {KEY_ENV}; to rotate, put it first and keep the old keys after it, "
        "comma-separated, then run `renewals connections rotate-key`."
    )


@connections_group.command("rotate-key")
@json_option
@click.pass_context
@fatal_errors
def rotate_key_cmd(ctx, as_json: bool) -> None:
    """Seal every connection's tokens again under the first key of RENEWALS_ENCRYPTION_KEY
    (then the keys after it can be dropped)."""
    _base, registry = _registry(ctx)
    try:
        done = oauth.rotate_keys(registry)
    finally:
        registry.close()
    if as_json:
        click.echo(json.dumps({"ok": True, "rotated": len(done), "connections": done}))
        return
    names = f": {', '.join(done)}" if done else ""
    out.print(
        f"Re-sealed the tokens of {len(done)} connection(s) under the first key{names}. The "
        f"other keys of {KEY_ENV} can now be dropped.",
        markup=False,
    )


COMMANDS = (connections_group,)
