"""`renewals signals import` and `renewals report`: health inputs in, renewal figures out.
Registered by connector.cli."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from crm_renewals.connector import bootstrap
from crm_renewals.connector.cli_common import (
    EXIT_OK,
    EXIT_PARTIAL,
    as_of_option,
    config_of,
    fatal_errors,
    json_option,
    one_run,
    out,
    parse_date,
)
from crm_renewals.connector.domain.health import signal_measures
from crm_renewals.connector.domain.journey_report import JourneyCoverage
from crm_renewals.connector.domain.report_tables import Report, report_csv
from crm_renewals.connector.services.report import PERIODS, build_report
from crm_renewals.connector.services.signals import apply_signals, import_signals
from crm_renewals.connector.services.sync import today


@click.group("signals")
def signals_group() -> None:
    """Product-usage signals that feed the health score."""


@signals_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--no-apply", is_flag=True, help="Only store the signals (the next sync applies them)."
)
@json_option
@click.pass_context
@fatal_errors
def signals_import(ctx, file: Path, no_apply: bool, as_json: bool) -> None:
    """Load signals from FILE.csv (columns: account, measure, value, timestamp[, source]).
    Bad rows are reported with their line numbers; good rows are kept (exit 1 if any bad).
    Then one run over the accounts that got new signals: re-scored, their contracts planned
    and written (unless --no-apply)."""
    cfg = config_of(ctx.parent)
    store = bootstrap.open_store(cfg)
    try:
        result = import_signals(store, signal_measures(cfg.scorecard), file)
    finally:
        store.close()
    report = None if no_apply else _apply(cfg, result.accounts)
    if as_json:
        click.echo(json.dumps(_import_json(result, report)))
    else:
        print_import(out, file, result)
        if report is not None:
            print_applied(out, len(result.accounts), report)
    failed = result.errors or (report is not None and report.status != "ok")
    sys.exit(EXIT_PARTIAL if failed else EXIT_OK)


def _apply(cfg, accounts: list[str]):
    """One run over the accounts the import touched (None: none)."""
    if not accounts:
        return None
    context = bootstrap.build(cfg)
    try:
        with one_run(context):
            return apply_signals(context, accounts)
    finally:
        context.close()


def _import_json(result, report) -> dict:
    return {
        "rows": result.rows,
        "stored": result.stored,
        "duplicates": result.duplicates,
        "errors": [{"line": ln, "error": msg} for ln, msg in result.errors],
        "accounts": len(result.accounts),
        "run_id": report.run_id if report is not None else None,
        "writes": dict(report.writes) if report is not None else {},
    }


def print_applied(console, accounts: int, report) -> None:
    writes = ", ".join(f"{k} {v}" for k, v in report.writes.items()) or "nothing to write"
    console.print(
        f"Applied to {accounts} account(s) in run {report.run_id} ({report.status}): {writes}",
        markup=False,
        highlight=False,
    )


@click.command("report")
@click.option(
    "--period",
    type=click.Choice(PERIODS),
    default="quarter",
    show_default=True,
    help="Bucket the renewal figures by contract end date.",
)
@click.option("--from", "start", callback=parse_date, metavar="DATE", help="Default: --to - 1y.")
@click.option("--to", "end", callback=parse_date, metavar="DATE", help="Default: --as-of.")
@as_of_option
@json_option
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV rows (section,key,metric,value).")
@click.pass_context
@fatal_errors
def report_cmd(ctx, period, start, end, as_of, as_json: bool, as_csv: bool) -> None:
    """Renewal and churn rates, revenue retention, renewals coming due with their health,
    reasons for non-renewal, segment migration, the figures by owner (rep) and the customer
    journey's coverage, from the last synced data."""
    if as_json and as_csv:
        raise click.UsageError("choose one of --json and --csv")
    cfg = config_of(ctx)
    store = bootstrap.open_store(cfg)  # the synced data only: no CRM login
    try:
        report = build_report(store, cfg, as_of or today(), start, end, period)
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(report.to_json()))
    elif as_csv:
        click.echo(report_csv(report), nl=False)
    else:
        print_report(out, report)


def print_import(out: Console, file: Path, result) -> None:
    out.print(
        f"{file}: {result.rows} rows, {result.stored} signals stored, "
        f"{result.duplicates} already known, {len(result.errors)} rejected"
    )
    if result.errors:
        t = Table("line", "problem", title="Rejected rows", title_style="bold red")
        for line, message in result.errors:
            t.add_row(str(line), message)
        out.print(t)


def _pct(value) -> str:
    return "-" if value is None else f"{value * 100:.2f}%"


def _money(value) -> str:
    return "-" if value is None else f"{value:,.2f}"


def print_report(out: Console, r: Report) -> None:
    data = r.to_json()
    t = Table(
        "period",
        "due",
        "renewed",
        "lost",
        "open",
        "renewal rate",
        "by value",
        "churn",
        "by value",
        "GRR",
        "NRR",
        "avg renewal",
        title=f"Renewals {r.start} .. {r.end} by {r.period} (as of {r.as_of})",
    )
    for row in [*r.periods, r.total]:
        t.add_row(
            row.period,
            str(row.due),
            str(row.renewed),
            str(row.lost),
            str(row.open),
            _pct(row.renewal_rate),
            _pct(row.renewal_rate_value),
            _pct(row.churn_rate),
            _pct(row.churn_rate_value),
            _pct(row.gross_revenue_retention),
            _pct(row.net_revenue_retention),
            _money(row.average_renewal_value),
        )
    out.print(t)
    due = Table(
        "month", "contracts", "value", "green", "yellow", "red", "unknown", title="Coming due"
    )
    for d in r.coming_due:
        due.add_row(
            d.month, str(d.contracts), _money(d.value), *(str(n) for n in d.health.values())
        )
    out.print(due)
    reasons = Table("reason", "lost renewals", title="Reasons for non-renewal")
    for reason, n in r.loss_reasons.items():
        reasons.add_row(reason, str(n))
    out.print(reasons)
    matrix = data["segment_migration"]["matrix"]
    targets = sorted({dst for row in matrix.values() for dst in row})
    m = Table(
        "from \\ to",
        *targets,
        title=f"Segment migration {r.migration_from} -> {r.migration_to} (accounts)",
    )
    for src, row in matrix.items():
        m.add_row(src, *(str(row.get(dst, 0)) for dst in targets))
    out.print(m)
    print_by_owner(out, r)
    if r.journey is not None:
        print_journey(out, r.journey, r)


def print_by_owner(out: Console, r: Report) -> None:
    t = Table(
        "owner",
        "due",
        "renewed",
        "lost",
        "open",
        "value",
        "renewal amount",
        "renewal rate",
        title=f"By owner: contracts ending {r.start} .. {r.end}",
    )
    for row in r.by_owner:
        t.add_row(
            row.owner,
            str(row.due),
            str(row.renewed),
            str(row.lost),
            str(row.open),
            _money(row.value),
            _money(row.renewal_amount),
            _pct(row.renewal_rate),
        )
    out.print(t)


def print_journey(out: Console, j: JourneyCoverage, r: Report) -> None:
    t = Table(
        "segment",
        "due",
        "completed",
        "overdue",
        "open",
        "completed share",
        title=f"Journey coverage: touchpoints due {r.start} .. {min(r.end, r.as_of)}",
        caption=(
            "due: journey tasks due in the window, on or before as-of; completed: as the CRM"
            " says; overdue: due before as-of, not completed; open: due on as-of"
            + (f"; {j.unread} not read back from the CRM (not completed)" if j.unread else "")
        ),
    )
    for row in [*j.segments, j.total]:
        t.add_row(
            "total" if row.segment is None else str(row.segment),
            str(row.due),
            str(row.completed),
            str(row.overdue),
            str(row.open),
            _pct(row.completion),
        )
    out.print(t)
    g = Table(
        "group",
        "accounts",
        "contracts due",
        "renewed",
        "lost",
        "renewal rate",
        title="Renewal rate by journey coverage",
        caption=(
            f"kept up: completed at least {j.threshold:.0%} of the touchpoints due; behind: the"
            " others with touchpoints due (accounts with none due are in neither)"
        ),
    )
    for name, group in (("kept up", j.kept_up), ("behind", j.behind)):
        g.add_row(
            name,
            str(group.accounts),
            str(group.contracts_due),
            str(group.renewed),
            str(group.lost),
            _pct(group.renewal_rate),
        )
    out.print(g)


def print_health_mix(out: Console, mix: dict[str, int]) -> None:
    total = sum(mix.values()) or 1
    t = Table("grade", "accounts", "share", title="Account health")
    for grade, n in mix.items():
        colour = {"green": "green", "yellow": "yellow", "red": "red"}.get(grade, "white")
        t.add_row(f"[{colour}]{grade}[/]", str(n), f"{n / total:.0%}")
    out.print(t)


def demo_insights(out: Console, report: Report) -> None:
    """What `renewals demo` adds: the health mix and the report."""
    print_health_mix(out, report.health)
    print_report(out, report)


COMMANDS = (signals_group, report_cmd)
