"""`renewals runs`: the run history, or one run in words (`--id`). Registered by
connector.cli."""

from __future__ import annotations

import json

import click
from rich.console import Console
from rich.table import Table

from crm_renewals.connector import bootstrap
from crm_renewals.connector.cli_common import (
    EXIT_FATAL,
    config_of,
    err,
    fatal_errors,
    json_option,
    out,
)
from crm_renewals.connector.cli_render import print_runs, run_json
from crm_renewals.connector.services.run_detail import MODES, STATUSES, RunDetail, run_detail


@click.command("runs")
@click.option("--limit", default=20, show_default=True, help="How many runs to show.")
@click.option("--mode", type=click.Choice(MODES), help="Only runs of this mode.")
@click.option("--status", type=click.Choice(STATUSES), help="Only runs that ended so.")
@click.option("--id", "run_id", type=int, help="One run in detail (writes, skips, dead letters).")
@json_option
@click.pass_context
@fatal_errors
def runs_cmd(
    ctx, limit: int, mode: str | None, status: str | None, run_id: int | None, as_json: bool
) -> None:
    """Run history: counts, API calls, duration, the mapping version each used."""
    store = bootstrap.open_store(config_of(ctx))  # no CRM login, no mapping
    try:
        if run_id is not None:
            detail = run_detail(store, run_id)
        else:
            rows = store.runs.list(limit, mode=mode, status=status)
    finally:
        store.close()
    if run_id is None:
        print_runs(out, rows, as_json)
    elif detail is None:
        err.print(f"no run {run_id}: see renewals runs")
        raise SystemExit(EXIT_FATAL)
    elif as_json:
        click.echo(json.dumps(detail_json(detail), default=str))
    else:
        print_detail(out, detail)


def detail_json(d: RunDetail) -> dict:
    letters = [
        {k: v for k, v in letter.as_dict().items() if k != "payload"} for letter in d.dead_letters
    ]
    return {**run_json(d.run), "dead_letters": letters, "dead_letters_total": d.dead_letters_total}


def print_detail(console: Console, d: RunDetail) -> None:
    r = d.run
    started = r.started_at.strftime("%Y-%m-%d %H:%M:%S")
    console.print(
        f"Run {r.id} ({r.mode}, {r.status}) as of {r.as_of}: started {started}, "
        f"{r.duration_s or 0:.2f} s, {r.api_calls or 0} API calls, mapping "
        f"{d.mapping_version or '-'}, app.yaml {d.config_version or '-'}",
        markup=False,
        highlight=False,
    )
    if r.error:
        console.print(f"error: {r.error}", markup=False, highlight=False, soft_wrap=True)
    if d.guard and d.guard != r.error:
        console.print(f"mapping guard: {d.guard}", markup=False, highlight=False, soft_wrap=True)
    for title, lines in (
        ("Contracts", d.outcomes),
        ("Writes", d.writes),
        ("Skipped, by reason", d.skips),
        ("Records read", d.records_read),
        ("API calls, by kind of request", d.calls_by_kind),
    ):
        if lines:
            t = Table("", "count", title=title, show_header=False)
            for line in lines:
                t.add_row(f"{line.words} ({line.name})", str(line.count))
            console.print(t)
    for f in d.map_failures:
        what = f"{f.get('count')} {f.get('kind')} ({f.get('field')}: {f.get('reason')})"
        console.print(
            f"failed to map: {what}",
            markup=False,
            highlight=False,
        )
    if d.dead_letters_total:
        console.print(f"{d.dead_letters_total} dead letter(s): see renewals deadletters list")


COMMANDS = (runs_cmd,)
