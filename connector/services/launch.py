"""Runs started from the admin console: the same `renewals` command an operator would type
(`sync`, `sync --dry-run`, `deadletters retry`), as a process of its own, so it takes the run
lock, records its run and its progress exactly as from a terminal, and outlives the request
(and the web worker) that started it. Its output goes to a log file under data_dir."""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crm_renewals.connector.config import AppConfig
from crm_renewals.connector.errors import ConnectorError
from crm_renewals.connector.state import StateStore
from crm_renewals.connector.state.runlock import RunLockBusy, run_lock

#: what the console may start: its name -> the `renewals` arguments
COMMANDS = {
    "sync": ["sync", "--json"],
    "dry_run": ["sync", "--dry-run", "--json"],
    "retry": ["deadletters", "retry", "--json"],
}


#: the note of the run the console started last, beside the logs
LAST = "last.json"
#: the end of a log read for the command's `--json` answer
TAIL_BYTES = 65_536


class RunBusy(ConnectorError):
    """Another run holds the run lock."""


@dataclass(frozen=True)
class Launched:
    command: str
    pid: int
    log: Path


@dataclass(frozen=True)
class LastLaunch:
    """The run the console started last, as noted beside its log (`last.json`): every web
    worker reads it, whichever started the run."""

    command: str
    pid: int
    #: the log's file name under data_dir/console-runs
    log: str
    #: the newest run when it started: its own run is the first after it
    after_run: int
    started_at: str
    actor: str


def run_in_progress(store: StateStore) -> bool:
    """Whether a run holds the run lock now."""
    try:
        with run_lock(store):
            return False
    except RunLockBusy:
        return True


def launch(
    config: AppConfig, store: StateStore, command: str, actor: str, extra: list[str] = ()
) -> Launched:
    """Start `renewals <command>` in the background (RunBusy: a run is going), audited."""
    if command not in COMMANDS:
        raise ConnectorError(f"unknown command {command!r}")
    if config.source is None:
        raise ConnectorError("the configuration was not read from a file: cannot start a run")
    folder = _folder(config)
    folder.mkdir(parents=True, exist_ok=True)
    with _one_launch(folder):  # two requests at once (a double click, two web workers): one runs
        last = last_launch(config)
        if run_in_progress(store) or (last is not None and process_alive(last.pid)):
            raise RunBusy("a run is in progress: wait for it to finish")
        newest = store.runs.list(1)
        started = _start(config, folder, command, list(extra))
        note = LastLaunch(
            command,
            started.pid,
            started.log.name,
            newest[0].id if newest else 0,
            datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
            actor,
        )
        _write_json(folder / LAST, asdict(note))
    detail = {"connection": config.connection, "pid": started.pid}
    store.audit.record(actor, f"run.{command}", " ".join(extra), detail)
    return started


#: starts the run in the background and says its pid: the shell exits at once, so the run
#: belongs to no web worker (none waits for it, it leaves no zombie, it outlives the worker)
_DETACH = 'cd "$1" && shift && "$@" </dev/null >"$RENEWALS_RUN_LOG" 2>&1 & echo $!'


def _start(config: AppConfig, folder: Path, command: str, extra: list[str]) -> Launched:
    log = folder / f"{time.strftime('%Y%m%dT%H%M%S')}-{command}.log"
    argv = [
        sys.executable,
        "-m",
        "crm_renewals.connector",
        "--config",
        str(config.source.resolve()),
    ]
    # the connection named, always: $RENEWALS_CONNECTION, inherited, may name another
    tail = ["--connection", config.connection]
    env = {**os.environ, "RENEWALS_RUN_LOG": str(log)}
    pid = _detached([str(config.base_dir), *argv, *COMMANDS[command], *extra, *tail], env)
    return Launched(command, pid, log)


def _detached(args: list[str], env: dict[str, str]) -> int:
    """Run _DETACH with `args` in a session of its own; the started process's pid."""
    read, write = os.pipe()
    try:
        shell = _unpatched("posix_spawn")(
            "/bin/sh",
            ["sh", "-c", _DETACH, "sh", *args],
            env,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, write, 1),
            ],
            setsid=True,  # not stopped with the web worker that started it
        )
    finally:
        os.close(write)
    with os.fdopen(read) as said:
        pid = said.read().strip()
    _unpatched("waitpid")(shell, 0)
    if not pid.isdigit():
        raise ConnectorError(f"could not start the run (the shell said {pid!r})")
    return int(pid)


def _unpatched(name: str):
    """os.<name> as the standard library has it: under `renewals serve` gevent patches the
    process functions into ones that must run on the worker's main loop, and the console's
    views run in native threads (webhooks/server.py ConsoleInThreads)."""
    if "gevent" in sys.modules:
        from gevent import monkey

        if monkey.is_module_patched("os"):
            return monkey.get_original("os", name)
    return getattr(os, name)


@contextmanager
def _one_launch(folder: Path) -> Iterator[None]:
    """One launch at a time in this data_dir (held for the few milliseconds of a start)."""
    with open(folder / ".launch.lock", "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def last_launch(config: AppConfig) -> LastLaunch | None:
    """The run the console started last (None: none, or its note is unreadable)."""
    try:
        data = json.loads((_folder(config) / LAST).read_text())
        return LastLaunch(**data)
    except (OSError, ValueError, TypeError):
        return None


def process_alive(pid: int) -> bool:
    """Whether process `pid` still runs (once it ends, init reaps it: its shell is gone; a
    zombie that nothing reaps, under an init that does not, counts as ended)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: the pid was reused
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # no /proc (not Linux): kill's answer stands
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def outcome(config: AppConfig, last: LastLaunch) -> dict[str, Any] | None:
    """What the launched command printed last as `--json` (its report, or `{"ok": false,
    "error": ...}`); None when it printed none."""
    path = _folder(config) / Path(last.log).name
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - TAIL_BYTES))
            tail = f.read().decode("utf-8", errors="replace")
    except OSError:
        return None
    for line in reversed(tail.splitlines()):
        try:
            found = json.loads(line)
        except ValueError:
            continue
        if isinstance(found, dict):
            return found
    return None


def _folder(config: AppConfig) -> Path:
    return config.data_path / "console-runs"


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Whole or not at all: a reader never sees half of it."""
    part = path.with_suffix(".part")
    part.write_text(json.dumps(data))
    os.replace(part, path)
