"""What every `renewals` command module shares: the consoles, the exit codes, the date and
--json options, the error-to-exit-code decorator, the Context of a command and the run lock.
connector/cli.py and every connector/cli_*.py import this; it imports none of them."""

from __future__ import annotations

import getpass
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict
from datetime import date
from functools import wraps

import click
from rich.console import Console

from crm_renewals.connector import bootstrap, logs
from crm_renewals.connector.config import AppConfig
from crm_renewals.connector.dates import parse_day
from crm_renewals.connector.errors import ConfigError, ConnectorError, CrmError, Problem
from crm_renewals.connector.services.context import Context
from crm_renewals.connector.state.runlock import RunLockBusy, run_lock

log = logging.getLogger(__name__)
EXIT_OK, EXIT_PARTIAL, EXIT_FATAL = 0, 1, 2
#: Ctrl-C (SIGINT), as shells report it: 128 + 2
EXIT_INTERRUPTED = 130
# piped output (logs, CI) gets wide lines instead of 80-column wrapping
out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)


def parse_date(_ctx, _param, value: str | None) -> date | None:
    """Click callback: a YYYY-MM-DD option in the range connector.dates takes."""
    if value is None:
        return None
    try:
        return parse_day(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


as_of_option = click.option(
    "--as-of", callback=parse_date, metavar="DATE", help="Plan as if today were DATE (YYYY-MM-DD)."
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


def fatal_errors(fn: Callable) -> Callable:
    """The one place that turns an error into one clear line on stderr and its exit code:
    2 for our errors (bad configuration or input, an unusable database or CRM) and for a file
    the system refuses, 130 for Ctrl-C. With --json the error is also a JSON object on stdout
    (`ok: false`, `error`, `problems`), so a script reads JSON in every outcome. Anything else
    is a bug and keeps its traceback."""

    @wraps(fn)
    def wrapper(*args, **kwargs):
        as_json = bool(kwargs.get("as_json"))
        try:
            return fn(*args, **kwargs)
        except ConfigError as exc:
            if len(exc.problems) == 1 or logs.json_lines():  # JSON: one record each
                for problem in exc.problems:
                    _say("Configuration problem: ", str(problem))
            else:
                err.print("[bold red]Configuration problems:[/]")
                for problem in exc.problems:
                    err.print(f"  {problem}", markup=False, highlight=False, soft_wrap=True)
            _fail(as_json, "configuration", [asdict(p) for p in exc.problems], EXIT_FATAL)
        except CrmError as exc:
            message = f"{exc} (nothing is lost: the next run resumes from the last recorded state)"
            _say(f"Error: {type(exc).__name__}: ", message)
            _fail(as_json, type(exc).__name__, [{"message": message}], EXIT_FATAL)
        except ConnectorError as exc:
            _say("Error: ", str(exc))
            _fail(as_json, type(exc).__name__, [{"message": str(exc)}], EXIT_FATAL)
        except OSError as exc:  # the system refused a file: say which and why
            if exc.filename is None:
                raise
            message = f"{exc.filename}: {exc.strerror or exc}"
            _say("Error: ", message)
            _fail(as_json, type(exc).__name__, [{"message": message}], EXIT_FATAL)
        except KeyboardInterrupt:
            message = (
                "a run in progress is recorded as interrupted with what it wrote (renewals runs); "
                "the next run carries on from there"
            )
            _say("Interrupted (Ctrl-C): ", message)
            _fail(as_json, "interrupted", [{"message": message}], EXIT_INTERRUPTED)

    return wrapper


def _fail(as_json: bool, error: str, problems: list[dict], code: int) -> None:
    """Exit with `code`; with --json, after the error as JSON on stdout."""
    if as_json:
        out.print_json(data={"ok": False, "error": error, "problems": problems})
    sys.exit(code)


def _say(head: str, message: str) -> None:
    """One line on stderr: a red head, then the message as is (never wrapped or marked up);
    with JSON logs, an ERROR record (every line on stderr is then JSON)."""
    if logs.json_lines():
        log.error("%s%s", head, message)
        return
    err.print(f"[bold red]{head}[/]", end="")
    err.print(message, markup=False, highlight=False, soft_wrap=True)


def tell(message: str, level: int = logging.INFO, **fields) -> None:
    """A line on stderr the user always sees (not a log record of some level): as it is, or a
    JSON line (`fields` its extra fields) when the process logs JSON."""
    if logs.json_lines():
        logs.announce(log, message.strip(), level, **fields)
    else:
        err.print(message, markup=False, highlight=False, soft_wrap=True)


def cli_actor() -> str:
    """Who ran the command, for the audit log: `cli:<user>`."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def config_of(ctx: click.Context) -> AppConfig:
    """The configuration of the connection this command is for (--connection, else
    $RENEWALS_CONNECTION, else the only one or `default`) in the app.yaml it was given."""
    obj = ctx.find_root().obj
    return bootstrap.load(obj["config"], obj.get("connection"))


def base_config_of(ctx: click.Context) -> AppConfig:
    """app.yaml itself (the deployment's settings), whatever the connection."""
    return bootstrap.load_base(ctx.find_root().obj["config"])


def open_context(ctx: click.Context) -> Context:
    """The Context of this command's connection (close it when done)."""
    return bootstrap.build(config_of(ctx))


def remember_connection(ctx: click.Context, _param, value: str | None) -> None:
    """Click callback of every command's --connection: kept for config_of."""
    if value:
        ctx.find_root().obj["connection"] = value


def connection_option(command: click.Command) -> None:
    """Give `command` (and every command under a group) the --connection option."""
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            connection_option(sub)
        return
    if any(p.name == "connection" for p in command.params):
        return
    command.params.append(
        click.Option(
            ["--connection"],
            metavar="NAME",
            expose_value=False,
            callback=remember_connection,
            help="The CRM connection (default: $RENEWALS_CONNECTION, then the only one, or "
            "`default`).",
        )
    )


@contextmanager
def one_run(context: Context) -> Iterator[None]:
    """The run lock of this state database; says so when it has to wait for another run."""
    with ExitStack() as stack:
        try:
            stack.enter_context(run_lock(context.store))
        except RunLockBusy:
            wait = context.config.schedule.lock_wait_seconds
            tell(
                f"Another run is in progress (scheduler or webhook worker): waiting up to "
                f"{wait:g} s (schedule.lock_wait_seconds) for it to finish..."
            )
            stack.enter_context(run_lock(context.store, wait=wait))
        yield


def config_problem(path: str, message: str) -> Problem:
    """A problem with app.yaml at key `path`."""
    return Problem(path, message, "app.yaml")
