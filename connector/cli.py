"""`renewals`: the command line. Tables for people, --json for scripts.

Exit codes: 0 success, 1 partial failure (some records failed or were dead-lettered, some
signals rows rejected), 2 fatal error (bad configuration or input file, state database or CRM
unusable, bad usage), 130 interrupted by Ctrl-C.

This module holds the `renewals` group and the sync commands (sync, explain, deadletters); the
other commands live in connector/cli_*.py and are registered at the end. What they share is in
connector/cli_common.py.
"""

from __future__ import annotations

import json
import logging
import sys
from contextlib import nullcontext
from datetime import date

import click

from crm_renewals.connector import (
    bootstrap,
    cli_admin,
    cli_connections,
    cli_cpq,
    cli_init,
    cli_notify,
    cli_reports,
    cli_runs,
    cli_sandbox,
    cli_serve,
    cli_status,
    cli_users,
    logs,
)
from crm_renewals.connector.cli_common import (
    EXIT_FATAL,
    EXIT_OK,
    EXIT_PARTIAL,
    as_of_option,
    cli_actor,
    config_of,
    connection_option,
    fatal_errors,
    json_option,
    one_run,
    open_context,
    out,
    tell,
)
from crm_renewals.connector.cli_render import (
    print_dead_letters,
    print_explanation,
    print_plan_diff,
    print_sync,
    progress_bar,
)
from crm_renewals.connector.domain.planning.values import ContractPlan
from crm_renewals.connector.services import explain, retry_dead_letters, sync
from crm_renewals.connector.services.deadletters import discard
from crm_renewals.connector.services.sync_report import Show, needs_attention


@click.group()
@click.version_option(package_name="crm-renewals", prog_name="renewals")
@click.option(
    "--config",
    "config_path",
    metavar="PATH",
    envvar=None,
    help="app.yaml to use (default: $RENEWALS_CONFIG, then ./app.yaml).",
)
@click.option(
    "--connection",
    metavar="NAME",
    envvar=None,
    help="The CRM connection (default: $RENEWALS_CONNECTION, then the only one, or `default`).",
)
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
@click.option(
    "--log-format",
    type=click.Choice(logs.FORMATS),
    default="text",
    envvar=logs.FORMAT_ENV,
    help=f"Logs as text or one JSON object per line (default: ${logs.FORMAT_ENV}, then text).",
)
@click.pass_context
def main(
    ctx: click.Context,
    config_path: str | None,
    connection: str | None,
    verbose: int,
    log_format: str,
) -> None:
    """crm-renewals: renewal opportunities, tasks and reports inside your CRM."""
    logs.setup(30 - 10 * min(verbose, 2), log_format)
    ctx.obj = {"config": config_path, "log_format": log_format, "connection": connection}


@main.command("sync")
@click.option(
    "--full", is_flag=True, help="Re-read everything instead of changes since the last cursor."
)
@click.option("--dry-run", is_flag=True, help="Print the planned writes as a diff; write nothing.")
@click.option(
    "--force", is_flag=True, help="Write even when too many records failed to map (the guard)."
)
@as_of_option
@json_option
@click.pass_context
@fatal_errors
def sync_cmd(
    ctx, full: bool, dry_run: bool, force: bool, as_of: date | None, as_json: bool
) -> None:
    """Pull changes, plan renewals and tasks, write them to the CRM."""
    context = open_context(ctx)
    # a dry run prints every plan with writes, as a diff; every run those needing attention
    show: Show = _planned_or_attention if dry_run else needs_attention
    try:
        # one run at a time per state database (the scheduler and webhook worker take it too)
        lock = nullcontext() if dry_run else one_run(context)
        with lock, progress_bar(enabled=not as_json) as progress:
            report = sync(
                context,
                full=full,
                dry_run=dry_run,
                as_of=as_of,
                progress=progress,
                show=show,
                force=force,
            )
    finally:
        context.close()
    if as_json:
        click.echo(json.dumps(report.to_json()))
    else:
        if dry_run:
            print_plan_diff(out, report.plans)
        print_sync(out, report)
    sys.exit(_exit_code(report))


def _exit_code(report) -> int:
    """2 for a run the guard stopped (its reason on stderr), 1 if some contracts failed."""
    if report.status == "stopped":
        tell(report.error or "stopped", logging.ERROR)
        return EXIT_FATAL
    return EXIT_PARTIAL if report.failed else EXIT_OK


def _planned_or_attention(plan: ContractPlan) -> bool:
    return bool(plan.writes) or needs_attention(plan)


@main.command("explain")
@click.argument("contract_id")
@as_of_option
@json_option
@click.pass_context
@fatal_errors
def explain_cmd(ctx, contract_id: str, as_of: date | None, as_json: bool) -> None:
    """Why CONTRACT_ID has, or has no, renewal (from the last synced data)."""
    context = open_context(ctx)
    try:
        result = explain(context, contract_id, as_of)
    finally:
        context.close()
    print_explanation(out, result, as_json)
    sys.exit(EXIT_OK if result.plan is not None else EXIT_PARTIAL)


@main.group("deadletters")
def deadletters() -> None:
    """Records that failed to map or were refused by the CRM."""


@deadletters.command("list")
@click.option("--all", "include_resolved", is_flag=True, help="Include resolved letters.")
@json_option
@click.pass_context
@fatal_errors
def deadletters_list(ctx, include_resolved: bool, as_json: bool) -> None:
    """List open dead letters."""
    context = open_context(ctx.parent)
    try:
        rows = context.store.dead_letters.list(include_resolved)
    finally:
        context.close()
    print_dead_letters(out, rows, as_json)


@deadletters.command("retry")
@click.option(
    "--id",
    "ids",
    type=int,
    multiple=True,
    metavar="ID",
    help="Only this open dead letter (repeat for more); the sync runs all the same.",
)
@as_of_option
@json_option
@click.pass_context
@fatal_errors
def deadletters_retry(ctx, ids: tuple[int, ...], as_of: date | None, as_json: bool) -> None:
    """Re-map failed records with the current mapping, then sync (re-sends refused writes)."""
    context = open_context(ctx.parent)
    try:
        with one_run(context):
            fixed, report = retry_dead_letters(context, as_of, ids=ids or None)
        remaining = context.store.dead_letters.open_count()
    finally:
        context.close()
    if as_json:
        click.echo(
            json.dumps({"remapped": fixed, "remaining": remaining, "sync": report.to_json()})
        )
    else:
        out.print(f"Re-mapped {fixed} record(s); {remaining} dead letter(s) remain.")
        print_sync(out, report)
    code = _exit_code(report)  # a run the guard stopped: 2
    sys.exit(code if code == EXIT_FATAL else EXIT_PARTIAL if remaining else EXIT_OK)


@deadletters.command("discard")
@click.argument("ids", nargs=-1, type=int, required=True)
@click.option("--reason", required=True, help="Why (3 to 500 characters): kept on each letter.")
@json_option
@click.pass_context
@fatal_errors
def deadletters_discard(ctx, ids: tuple[int, ...], reason: str, as_json: bool) -> None:
    """Close open dead letters IDS without retrying them; a refused write discarded is not
    sent again (unless what it would send changes). Audited."""
    store = bootstrap.open_store(config_of(ctx.parent))
    try:
        letters = discard(store, ids, reason, cli_actor())
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps({"ok": True, "discarded": [d.id for d in letters]}))
    else:
        named = ", ".join(str(d.id) for d in letters)
        out.print(f"Discarded {len(letters)} dead letter(s): {named}.")


for module in (
    cli_runs,
    cli_status,
    cli_admin,
    cli_sandbox,
    cli_reports,
    cli_cpq,
    cli_serve,
    cli_users,
    cli_notify,
    cli_init,
    cli_connections,
):
    for command in module.COMMANDS:
        main.add_command(command)
connection_option(main)
