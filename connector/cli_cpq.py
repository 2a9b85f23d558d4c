"""`renewals cpq retry`: ask Salesforce CPQ again for renewals it has not created."""

from __future__ import annotations

import json
import sys
from datetime import date

import click


def register(main: click.Group) -> None:
    """Add the commands to the `renewals` group (called from connector.cli)."""
    from connector import cli
    from connector.services.cpq import retry_forecasts

    @main.group("cpq")
    def cpq_group() -> None:
        """Salesforce CPQ mode (renewals.renewal_mode: cpq)."""

    @cpq_group.command("retry")
    @click.argument("contract_ids", nargs=-1)
    @click.option("--all", "every", is_flag=True, help="Every contract waiting for CPQ.")
    @cli.as_of_option
    @cli.json_option
    @click.pass_context
    @cli.fatal_errors
    def cpq_retry(
        ctx, contract_ids: tuple[str, ...], every: bool, as_of: date | None, as_json: bool
    ) -> None:
        """Turn the renewal forecast of CONTRACT_IDS (or --all waiting ones) off and on again,
        so CPQ runs its renewal job again once its cause (say, an inactive renewal owner) is
        fixed. The next sync finds the renewal CPQ creates."""
        if bool(contract_ids) == every:
            raise click.UsageError("give CONTRACT_IDS or --all, not both, not neither")
        context = cli._context(ctx.parent)
        try:
            with cli._one_run(context):
                done = retry_forecasts(
                    context, None if every else list(contract_ids), as_of or cli.today()
                )
        finally:
            context.close()
        if as_json:
            click.echo(json.dumps(done.to_json()))
        else:
            cli.out.print(f"Re-flagged {len(done.reflagged)} contract(s) for CPQ.")
            for cid, why in done.failed.items():
                cli.err.print(f"  {cid}: {why}", markup=False)
        sys.exit(cli.EXIT_PARTIAL if done.failed else cli.EXIT_OK)
