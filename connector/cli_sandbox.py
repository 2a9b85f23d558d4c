"""The bundled sandbox CRM: `renewals sandbox seed` and `renewals demo`. Registered by
connector.cli."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import click
from rich.console import Console

from crm_renewals.connector import bootstrap
from crm_renewals.connector.adapters.sandbox.book import write_signals_csv
from crm_renewals.connector.adapters.sandbox.seed import seed as seed_book
from crm_renewals.connector.cli_common import (
    as_of_option,
    config_of,
    config_problem,
    fatal_errors,
    out,
)
from crm_renewals.connector.cli_render import print_seed, print_sync, progress_bar
from crm_renewals.connector.cli_reports import demo_insights, print_import
from crm_renewals.connector.domain.health import signal_measures
from crm_renewals.connector.errors import ConfigError, ConnectorError
from crm_renewals.connector.services import sync
from crm_renewals.connector.services.report import build_report
from crm_renewals.connector.services.signals import import_signals
from crm_renewals.connector.services.sync import today
from crm_renewals.connector.state.deliveries import deliveries_path


@click.group("sandbox")
def sandbox_group() -> None:
    """The bundled sandbox CRM."""


@sandbox_group.command("seed")
@click.option("--seed", "seed_value", type=int, help="Random seed (default: sandbox.seed).")
@click.option("--accounts", default=160, show_default=True)
@click.option("--contracts", default=260, show_default=True)
@click.option("--reset", is_flag=True, help="Delete the sandbox and the state database first.")
@as_of_option
@click.pass_context
@fatal_errors
def sandbox_seed(
    ctx, seed_value, accounts: int, contracts: int, reset: bool, as_of: date | None
) -> None:
    """Fill the sandbox with a deterministic demo book."""
    cfg = config_of(ctx.parent)
    summary = _seed(cfg, seed_value, accounts, contracts, reset, as_of or today())
    print_seed(out, summary, cfg.sandbox_path)


def _seed(cfg, seed_value, accounts, contracts, reset, as_of):
    if cfg.crm != "sandbox":
        raise ConfigError([config_problem("crm", "sandbox commands need crm: sandbox")])
    if reset:
        _remove_sqlite(cfg.sandbox_path)
        kept = _connections_of(cfg)
        if cfg.state_url.startswith("sqlite:///"):  # a damaged file is replaced too
            _remove_sqlite(Path(cfg.state_url.removeprefix("sqlite:///")))
        store = bootstrap.open_store(cfg)
        try:
            if not cfg.state_url.startswith("sqlite:///"):
                store.reset()
            for row in kept:  # the deployment's other connections outlive the demo's reset
                store.connections.save(row)
        finally:
            store.close()
    crm = bootstrap.build_sandbox(cfg)
    try:
        if crm.all("Account") or crm.all("User"):
            raise ConfigError(
                [
                    config_problem(
                        "sandbox.database",
                        f"{cfg.sandbox_path} already holds records; use --reset to start over",
                    )
                ]
            )
        return seed_book(
            crm,
            seed=cfg.sandbox.seed if seed_value is None else seed_value,
            as_of=as_of,
            accounts=accounts,
            contracts=contracts,
        )
    finally:
        crm.close()


def _connections_of(cfg) -> list:
    """The connections table, when `cfg`'s state database holds it (the default connection's)
    and can be read; a damaged database is started over without it."""
    if cfg.connections_url != cfg.state_url:
        return []
    try:
        store = bootstrap.open_store(cfg)
    except ConnectorError:
        return []
    try:
        return store.connections.list()
    finally:
        store.close()


@click.command("demo")
@click.option("--seed", "seed_value", type=int, help="Random seed (default: sandbox.seed).")
@as_of_option
@click.pass_context
@fatal_errors
def demo(ctx, seed_value, as_of: date | None) -> None:
    """Reset the sandbox, seed a demo book, run the renewal sync twice, show the summary."""
    cfg = config_of(ctx.parent)
    as_of = as_of or today()
    out.rule("[bold]crm-renewals demo[/] on the sandbox CRM")
    summary = _seed(cfg, seed_value, 160, 260, True, as_of)
    print_seed(out, summary, cfg.sandbox_path)
    context = bootstrap.build(cfg)
    try:
        _demo_signals(out, context, summary)
        with progress_bar(enabled=True) as progress:
            report = sync(context, as_of=as_of, progress=progress)
        print_sync(out, report, attention=context.store.dead_letters.list())
        again = sync(context, as_of=as_of)
        figures = build_report(context.store, context.config, as_of)
    finally:
        context.close()
    out.print(
        f"\nSecond run: {sum(again.writes.values())} writes, {again.unchanged} renewals "
        f"unchanged, {again.api_calls} API calls (nothing to do is the right answer)."
    )
    demo_insights(out, figures)
    out.print(
        "\nTry next: [bold]renewals explain <contract id>[/], [bold]renewals runs[/], "
        "[bold]renewals deadletters list[/], [bold]renewals sync --dry-run[/]"
    )


def _demo_signals(out: Console, context, summary) -> None:
    """Write the demo book's usage signals to a CSV and load it as `signals import` does."""
    path = context.config.data_path / "demo_signals.csv"
    write_signals_csv(path, summary.signals)
    result = import_signals(context.store, signal_measures(context.config.scorecard), path)
    print_import(out, path, result)


def _remove_sqlite(path: Path) -> None:
    """A SQLite database's files: the file, its log and shared memory, and (a state database)
    its deliveries' own file and theirs."""
    for file in (path, deliveries_path(path)):
        for suffix in ("", "-wal", "-shm"):
            Path(str(file) + suffix).unlink(missing_ok=True)


COMMANDS = (sandbox_group, demo)
