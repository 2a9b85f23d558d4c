"""`renewals runs`: the run history. Registered by connector.cli."""

from __future__ import annotations

import click

from connector import bootstrap
from connector.cli_common import fatal_errors, json_option, out
from connector.cli_render import print_runs


@click.command("runs")
@click.option("--limit", default=20, show_default=True, help="How many runs to show.")
@json_option
@click.pass_context
@fatal_errors
def runs_cmd(ctx, limit: int, as_json: bool) -> None:
    """Run history: counts, API calls, duration, the mapping version each used."""
    store = bootstrap.open_store(bootstrap.load(ctx.obj["config"]))  # no CRM login, no mapping
    try:
        rows = store.runs.list(limit)
    finally:
        store.close()
    print_runs(out, rows, as_json)


COMMANDS = (runs_cmd,)
