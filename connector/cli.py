"""`renewals`: the command line. Tables for people, --json for scripts.

Exit codes: 0 success, 1 partial failure (some records failed or were dead-lettered, some
signals rows rejected), 2 fatal error (bad configuration or input file, state database or CRM
unusable, bad usage), 130 interrupted by Ctrl-C.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import asdict
from datetime import date
from functools import wraps
from pathlib import Path

import click
from rich.console import Console
from sqlalchemy.engine import make_url

from connector import bootstrap, logs
from connector.adapters.sandbox.book import write_signals_csv
from connector.adapters.sandbox.seed import seed as seed_book
from connector.cli_cpq import register as register_cpq
from connector.cli_render import (
    print_checks,
    print_dead_letters,
    print_explanation,
    print_plan_diff,
    print_runs,
    print_seed,
    print_sync,
    progress_bar,
)
from connector.cli_reports import demo_insights, print_import, register
from connector.domain.health import signal_measures
from connector.errors import ConfigError, ConnectorError, CrmError, Problem
from connector.mapping_file import load_mapping
from connector.ports import Check, Diagnosable
from connector.runlock import RunLockBusy, run_lock
from connector.services import explain, retry_dead_letters, sync
from connector.services.report import build_report, import_signals
from connector.services.sync import today

EXIT_OK, EXIT_PARTIAL, EXIT_FATAL = 0, 1, 2
#: Ctrl-C (SIGINT), as shells report it: 128 + 2
EXIT_INTERRUPTED = 130
# piped output (logs, CI) gets wide lines instead of 80-column wrapping
out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)


#: Dates the options accept: planning and reports reach back and ahead from them by years
EARLIEST_DATE, LATEST_DATE = date(1900, 1, 1), date(2999, 12, 31)


def _date(_ctx, _param, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from exc
    if not EARLIEST_DATE <= day <= LATEST_DATE:
        raise click.BadParameter(
            f"{value} is out of range: give a date from {EARLIEST_DATE} to {LATEST_DATE}"
        )
    return day


as_of_option = click.option(
    "--as-of", callback=_date, metavar="DATE", help="Plan as if today were DATE (YYYY-MM-DD)."
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


def fatal_errors(fn: Callable) -> Callable:
    """The one place that turns an error into one clear line on stderr and its exit code:
    2 for our errors (bad configuration or input, an unusable database or CRM) and for a file
    the system refuses, 130 for Ctrl-C. Anything else is a bug and keeps its traceback."""

    @wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ConfigError as exc:
            if len(exc.problems) == 1:
                _say("Configuration problem: ", str(exc.problems[0]))
            else:
                err.print("[bold red]Configuration problems:[/]")
                for problem in exc.problems:
                    err.print(f"  {problem}", markup=False, highlight=False, soft_wrap=True)
            sys.exit(EXIT_FATAL)
        except CrmError as exc:
            _say(
                f"Error: {type(exc).__name__}: ",
                f"{exc} (nothing is lost: the next run resumes from the last recorded state)",
            )
            sys.exit(EXIT_FATAL)
        except ConnectorError as exc:
            _say("Error: ", str(exc))
            sys.exit(EXIT_FATAL)
        except OSError as exc:  # the system refused a file: say which and why
            if exc.filename is None:
                raise
            _say("Error: ", f"{exc.filename}: {exc.strerror or exc}")
            sys.exit(EXIT_FATAL)
        except KeyboardInterrupt:
            _say(
                "Interrupted (Ctrl-C): ",
                "a run in progress is recorded as interrupted with what it wrote (renewals runs); "
                "the next run carries on from there",
            )
            sys.exit(EXIT_INTERRUPTED)

    return wrapper


def _say(head: str, message: str) -> None:
    """One line on stderr: a red head, then the message as is (never wrapped or marked up)."""
    err.print(f"[bold red]{head}[/]", end="")
    err.print(message, markup=False, highlight=False, soft_wrap=True)


@click.group()
@click.option(
    "--config",
    "config_path",
    metavar="PATH",
    envvar=None,
    help="app.yaml to use (default: $RENEWALS_CONFIG, then ./app.yaml).",
)
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
@click.pass_context
def main(ctx: click.Context, config_path: str | None, verbose: int) -> None:
    """crm-renewals: renewal opportunities, tasks and reports inside your CRM."""
    logs.setup(30 - 10 * min(verbose, 2))
    ctx.obj = {"config": config_path}


def _context(ctx: click.Context):
    return bootstrap.build(bootstrap.load(ctx.obj["config"]))


@main.command("sync")
@click.option(
    "--full", is_flag=True, help="Re-read everything instead of changes since the last cursor."
)
@click.option("--dry-run", is_flag=True, help="Print the planned writes as a diff; write nothing.")
@as_of_option
@json_option
@click.pass_context
@fatal_errors
def sync_cmd(ctx, full: bool, dry_run: bool, as_of: date | None, as_json: bool) -> None:
    """Pull changes, plan renewals and tasks, write them to the CRM."""
    context = _context(ctx)
    try:
        # one run at a time per state database (the scheduler and webhook worker take it too)
        lock = nullcontext() if dry_run else _one_run(context)
        with lock, progress_bar(enabled=not as_json) as progress:
            report = sync(context, full=full, dry_run=dry_run, as_of=as_of, progress=progress)
    finally:
        context.close()
    if as_json:
        click.echo(json.dumps(report.to_json()))
    else:
        if dry_run:
            print_plan_diff(out, report.plans)
        print_sync(out, report)
    sys.exit(EXIT_PARTIAL if report.failed else EXIT_OK)


@main.command("explain")
@click.argument("contract_id")
@as_of_option
@json_option
@click.pass_context
@fatal_errors
def explain_cmd(ctx, contract_id: str, as_of: date | None, as_json: bool) -> None:
    """Why CONTRACT_ID has, or has no, renewal (from the last synced data)."""
    context = _context(ctx)
    try:
        result = explain(context, contract_id, as_of)
    finally:
        context.close()
    print_explanation(out, result, as_json)
    sys.exit(EXIT_OK if result.plan is not None else EXIT_PARTIAL)


@main.command("runs")
@click.option("--limit", default=20, show_default=True, help="How many runs to show.")
@json_option
@click.pass_context
@fatal_errors
def runs_cmd(ctx, limit: int, as_json: bool) -> None:
    """Run history: counts, API calls, duration."""
    context = _context(ctx)
    try:
        rows = context.store.list_runs(limit)
    finally:
        context.close()
    print_runs(out, rows, as_json)


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
    context = _context(ctx.parent)
    try:
        rows = context.store.list_dead_letters(include_resolved)
    finally:
        context.close()
    print_dead_letters(out, rows, as_json)


@deadletters.command("retry")
@as_of_option
@json_option
@click.pass_context
@fatal_errors
def deadletters_retry(ctx, as_of: date | None, as_json: bool) -> None:
    """Re-map failed records with the current mapping, then sync (re-sends refused writes)."""
    context = _context(ctx.parent)
    try:
        with _one_run(context):
            fixed, report = retry_dead_letters(context, as_of)
        remaining = len(context.store.list_dead_letters())
    finally:
        context.close()
    if as_json:
        click.echo(
            json.dumps({"remapped": fixed, "remaining": remaining, "sync": report.to_json()})
        )
    else:
        out.print(f"Re-mapped {fixed} record(s); {remaining} dead letter(s) remain.")
        print_sync(out, report)
    sys.exit(EXIT_PARTIAL if remaining else EXIT_OK)


@main.group("config")
def config_group() -> None:
    """Configuration (app.yaml)."""


@config_group.command("check")
@click.pass_context
@fatal_errors
def config_check(ctx) -> None:
    """Validate app.yaml and its mapping file; print every problem with file and line."""
    cfg = bootstrap.load(ctx.parent.obj["config"])
    load_mapping(cfg.mapping_path, expect_crm=cfg.crm)
    out.print(
        f"[green]OK[/]: configuration valid (crm: {cfg.crm}, mapping: {cfg.mapping_path}, "
        f"state: {_safe_url(cfg.state_url)})"
    )


@main.group("mappings")
def mappings_group() -> None:
    """Field mappings (mappings/*.yaml)."""


@mappings_group.command("validate")
@click.argument("files", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--online", is_flag=True, help="Also check the mapping against the connected CRM's schema."
)
@json_option
@click.pass_context
@fatal_errors
def mappings_validate(ctx, files: tuple[Path, ...], online: bool, as_json: bool) -> None:
    """Check mapping FILES (default: the one app.yaml selects) against the canonical models."""
    if online:
        if files:
            raise click.UsageError("--online checks the mapping app.yaml selects; give no FILES")
        _run_checks(ctx.parent, lambda crm: crm.check_mapping_online(), as_json)
        return
    if not files:
        files = (bootstrap.load(ctx.parent.obj["config"]).mapping_path,)
    problems = []
    for path in files:
        try:
            mapping = load_mapping(path)
            out.print(f"[green]OK[/]: {path} ({mapping.crm}, {len(mapping.models)} models)")
        except ConfigError as exc:
            problems += exc.problems
    if problems:
        raise ConfigError(problems)


@main.command("doctor")
@json_option
@click.pass_context
@fatal_errors
def doctor(ctx, as_json: bool) -> None:
    """Check credentials, API version, object and field access, limits; print what to fix."""
    _run_checks(ctx, lambda crm: crm.doctor(), as_json)


@main.command("setup")
@click.argument("crm_name", metavar="CRM", type=click.Choice(["salesforce", "hubspot"]))
@click.option("--apply", "apply_", is_flag=True, help="Create what is missing (default: print).")
@json_option
@click.pass_context
@fatal_errors
def setup(ctx, crm_name: str, apply_: bool, as_json: bool) -> None:
    """Show (or with --apply create) the custom fields/properties the connector needs."""
    cfg = bootstrap.load(ctx.obj["config"])
    if cfg.crm != crm_name:
        raise ConfigError([_problem("crm", f"`setup {crm_name}` needs crm: {crm_name}")])
    _run_checks(ctx, lambda crm: crm.setup(apply_), as_json)


def _run_checks(
    ctx: click.Context, run: Callable[[Diagnosable], list[Check]], as_json: bool
) -> None:
    context = _context(ctx)
    try:
        checks = run(context.crm)
    finally:
        context.close()
    if as_json:
        out.print_json(
            data={"ok": all(c.ok for c in checks), "checks": [asdict(c) for c in checks]}
        )
    else:
        print_checks(out, checks)
    if not all(c.ok for c in checks):
        sys.exit(EXIT_PARTIAL)


@main.group("sandbox")
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
    cfg = bootstrap.load(ctx.parent.obj["config"])
    summary = _seed(cfg, seed_value, accounts, contracts, reset, as_of or today())
    print_seed(out, summary, cfg.sandbox_path)


def _seed(cfg, seed_value, accounts, contracts, reset, as_of):
    if cfg.crm != "sandbox":
        raise ConfigError([_problem("crm", "sandbox commands need crm: sandbox")])
    if reset:
        _remove_sqlite(cfg.sandbox_path)
        if cfg.state_url.startswith("sqlite:///"):
            _remove_sqlite(Path(cfg.state_url.removeprefix("sqlite:///")))
    crm = bootstrap.build_sandbox(cfg)
    try:
        if crm.all("Account") or crm.all("User"):
            raise ConfigError(
                [
                    _problem(
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


@main.command("demo")
@click.option("--seed", "seed_value", type=int, help="Random seed (default: sandbox.seed).")
@as_of_option
@click.pass_context
@fatal_errors
def demo(ctx, seed_value, as_of: date | None) -> None:
    """Reset the sandbox, seed a demo book, run the renewal sync twice, show the summary."""
    cfg = bootstrap.load(ctx.parent.obj["config"])
    as_of = as_of or today()
    out.rule("[bold]crm-renewals demo[/] on the sandbox CRM")
    summary = _seed(cfg, seed_value, 160, 260, True, as_of)
    print_seed(out, summary, cfg.sandbox_path)
    context = bootstrap.build(cfg)
    try:
        _demo_signals(out, context, summary)
        with progress_bar(enabled=True) as progress:
            report = sync(context, as_of=as_of, progress=progress)
        print_sync(out, report, attention=context.store.list_dead_letters())
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


@contextmanager
def _one_run(context) -> Iterator[None]:
    """The run lock of this state database; says so when it has to wait for another run."""
    with ExitStack() as stack:
        try:
            stack.enter_context(run_lock(context.store))
        except RunLockBusy:
            wait = context.config.schedule.lock_wait_seconds
            err.print(
                f"Another run is in progress (scheduler or webhook worker): waiting up to "
                f"{wait:g} s (schedule.lock_wait_seconds) for it to finish..."
            )
            stack.enter_context(run_lock(context.store, wait=wait))
        yield


def _demo_signals(out: Console, context, summary) -> None:
    """Write the demo book's usage signals to a CSV and load it as `signals import` does."""
    path = context.config.data_path / "demo_signals.csv"
    write_signals_csv(path, summary.signals)
    result = import_signals(context.store, signal_measures(context.config.scorecard), path)
    print_import(out, path, result)


def _problem(path: str, message: str) -> Problem:
    return Problem(path, message, "app.yaml")


def _remove_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)


def _safe_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


# `renewals serve` and `renewals scheduler` live in their own module, which imports this one.
from connector.cli_serve import scheduler_cmd, serve_cmd, worker_cmd  # noqa: E402

main.add_command(serve_cmd)
main.add_command(worker_cmd)
main.add_command(scheduler_cmd)

# health signals and reporting: `signals import`, `report` (connector/cli_reports.py)
register(main)
register_cpq(main)
