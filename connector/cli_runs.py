"""`renewals runs`: the run history. Registered by connector.cli."""

from __future__ import annotations

import click

from connector.cli_common import fatal_errors, json_option, open_context, out
from connector.cli_render import print_runs


@click.command("runs")
@click.option("--limit", default=20, show_default=True, help="How many runs to show.")
@json_option
@click.pass_context
@fatal_errors
def runs_cmd(ctx, limit: int, as_json: bool) -> None:
    """Run history: counts, API calls, duration."""
    context = open_context(ctx)
    try:
        rows = context.store.runs.list(limit)
    finally:
        context.close()
    print_runs(out, rows, as_json)


COMMANDS = (runs_cmd,)
