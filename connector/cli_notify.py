"""`renewals notify test` (a message to every alert target, saying which took it) and
`renewals notify list` (the alerts sent, by episode). Registered by connector.cli."""

from __future__ import annotations

import json
import socket
import sys

import click
from rich.table import Table

from crm_renewals.connector import bootstrap
from crm_renewals.connector.cli_common import (
    EXIT_PARTIAL,
    config_of,
    config_problem,
    fatal_errors,
    json_option,
    out,
)
from crm_renewals.connector.cli_render import print_check_lines
from crm_renewals.connector.errors import ConfigError
from crm_renewals.connector.ports import Check
from crm_renewals.connector.services.alerts import RUNS_CHECKED
from crm_renewals.connector.services.notify import Message, send


@click.group("notify")
def notify_group() -> None:
    """Alerts (notify: in app.yaml) to Slack, Teams or e-mail."""


@notify_group.command("test")
@json_option
@click.pass_context
@fatal_errors
def notify_test(ctx, as_json: bool) -> None:
    """Send a test message to every target; one line each: sent, or why not (exit 1 if any
    target did not take it)."""
    cfg = config_of(ctx.parent)
    if not cfg.notify.on:
        raise ConfigError(
            [config_problem("notify.targets", "no alert targets: name RENEWALS_NOTIFY_* variables")]
        )
    message = Message(
        "crm-renewals: test message",
        f"A test from renewals notify test on {socket.gethostname()} (crm: {cfg.crm}). "
        "Alerts reach you here.",
        "info",
    )
    delivery = send(cfg.notify, message, log_failures=False)  # said below, one line each
    checks = [
        Check(
            name, name in delivery.sent, "sent" if name in delivery.sent else delivery.failed[name]
        )
        for name in cfg.notify.targets
    ]
    if as_json:
        click.echo(json.dumps({"ok": not delivery.failed, **delivery.as_dict()}))
    else:
        print_check_lines(out, checks)
    if delivery.failed:
        sys.exit(EXIT_PARTIAL)


@notify_group.command("list")
@click.option("--limit", default=20, show_default=True, help="How many to show.")
@json_option
@click.pass_context
@fatal_errors
def notify_list(ctx, limit: int, as_json: bool) -> None:
    """The alerts sent (or held as repeats) newest first: episode, when, what, which targets
    took it and which did not."""
    store = bootstrap.open_store(config_of(ctx.parent))
    try:
        notices = [n for n in store.notices.list(limit + 1) if n.key != RUNS_CHECKED][:limit]
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps([n.as_dict() for n in notices], default=str))
        return
    if not notices:
        out.print("No alerts sent yet.")
        return
    table = Table("episode", "opened", "closed", "sent to", "not sent to")
    for n in notices:
        delivery = (n.detail or {}).get("delivery") or {}
        failed = delivery.get("failed") or {}
        table.add_row(
            n.key,
            f"{n.opened_at:%Y-%m-%d %H:%M:%S}",
            f"{n.closed_at:%Y-%m-%d %H:%M:%S}" if n.closed_at else "",
            ", ".join(delivery.get("sent", [])) or _held(n),
            "; ".join(f"{name}: {why}" for name, why in failed.items()),
        )
    out.print(table)


def _held(notice) -> str:
    """Why nothing was sent: a run that failed as the one before it, a digest with no one."""
    detail = notice.detail or {}
    if detail.get("repeat"):
        return "(repeat of the run before)"
    return "(nothing to say)" if detail.get("turned_red") == 0 else ""


COMMANDS = (notify_group,)
