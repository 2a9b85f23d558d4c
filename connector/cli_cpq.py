"""`renewals cpq retry`: ask Salesforce CPQ again for renewals it has not created. Registered
by connector.cli."""

from __future__ import annotations

import json
import sys
from datetime import date

import click

from crm_renewals.connector.cli_common import (
    EXIT_OK,
    EXIT_PARTIAL,
    as_of_option,
    err,
    fatal_errors,
    json_option,
    one_run,
    open_context,
    out,
)
from crm_renewals.connector.services.cpq import retry_forecasts
from crm_renewals.connector.services.sync import today


@click.group("cpq")
def cpq_group() -> None:
    """Salesforce CPQ mode (renewals.renewal_mode: cpq)."""


@cpq_group.command("retry")
@click.argument("contract_ids", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Every contract waiting for CPQ.")
@as_of_option
@json_option
@click.pass_context
@fatal_errors
def cpq_retry(
    ctx, contract_ids: tuple[str, ...], every: bool, as_of: date | None, as_json: bool
) -> None:
    """Turn the renewal forecast of CONTRACT_IDS (or --all waiting ones) off and on again,
    so CPQ runs its renewal job again once its cause (say, an inactive renewal owner) is
    fixed. The next sync finds the renewal CPQ creates."""
    if bool(contract_ids) == every:
        raise click.UsageError("give CONTRACT_IDS or --all, not both, not neither")
    context = open_context(ctx.parent)
    try:
        with one_run(context):
            done = retry_forecasts(context, None if every else list(contract_ids), as_of or today())
    finally:
        context.close()
    if as_json:
        click.echo(json.dumps(done.to_json()))
    else:
        out.print(f"Re-flagged {len(done.reflagged)} contract(s) for CPQ.")
        for cid, why in done.failed.items():
            err.print(f"  {cid}: {why}", markup=False)
    sys.exit(EXIT_PARTIAL if done.failed else EXIT_OK)


COMMANDS = (cpq_group,)
