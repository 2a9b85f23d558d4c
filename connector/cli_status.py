"""`renewals status`: the connector at a glance, what the console's overview shows but the
CRM check (that is `renewals doctor`). Registered by connector.cli."""

from __future__ import annotations

import json

import click
from rich.table import Table

from crm_renewals.connector import bootstrap
from crm_renewals.connector.cli_common import config_of, fatal_errors, json_option, out
from crm_renewals.connector.cli_render import print_runs
from crm_renewals.connector.services.status import status


@click.command("status")
@click.option("--runs", "last_runs", default=8, show_default=True, help="How many runs to show.")
@json_option
@click.pass_context
@fatal_errors
def status_cmd(ctx, last_runs: int, as_json: bool) -> None:
    """Last runs, API calls today, inbox, dead letters, health mix and the next scheduled
    jobs, from the state store (no CRM call)."""
    from crm_renewals.jobs.scheduler import upcoming

    config = config_of(ctx)
    store = bootstrap.open_store(config)
    try:
        now = status(store, last_runs=last_runs)
        jobs = upcoming(config, store)
    finally:
        store.close()
    if as_json:
        data = now.to_json()
        data["jobs"] = [j.to_json() for j in jobs]
        click.echo(json.dumps(data))
        return
    print_runs(out, now.runs, as_json=False)
    t = Table(show_header=False, title="Now")
    t.add_row("CRM API calls today (runs since 00:00 UTC)", f"{now.api_calls_today:,}")
    t.add_row("inbox events waiting", str(now.inbox_waiting))
    t.add_row("deliveries not yet read into events", str(now.deliveries_waiting))
    t.add_row("longest wait", f"{now.oldest_wait_s:.0f} s")
    t.add_row("open dead letters", str(now.dead_letters_open))
    mix = ", ".join(f"{n} {grade}" for grade, n in now.health.items())
    t.add_row(f"health ({now.health_as_of or 'none recorded'})", mix)
    out.print(t)
    s = Table("job", "schedule", "next", "last", title=f"Jobs ({config.schedule.timezone})")
    for j in jobs:
        last = f"{j.last.status} ({j.last.scheduled_at:%Y-%m-%d %H:%M})" if j.last else "-"
        s.add_row(j.job, j.schedule, f"{j.next_at:%Y-%m-%d %H:%M}" if j.next_at else "off", last)
    out.print(s)


COMMANDS = (status_cmd,)
