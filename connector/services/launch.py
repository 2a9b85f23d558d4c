"""Runs started from the admin console: the same `renewals` command an operator would type
(`sync`, `sync --dry-run`, `deadletters retry`), as a process of its own, so it takes the run
lock, records its run and its progress exactly as from a terminal, and outlives the request
(and the web worker) that started it. Its output goes to a log file under data_dir."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from connector.config import AppConfig
from connector.errors import ConnectorError
from connector.state import StateStore
from connector.state.runlock import RunLockBusy, run_lock

#: what the console may start: its name -> the `renewals` arguments
COMMANDS = {
    "sync": ["sync", "--json"],
    "dry_run": ["sync", "--dry-run", "--json"],
    "retry": ["deadletters", "retry", "--json"],
}


class RunBusy(ConnectorError):
    """Another run holds the run lock."""


@dataclass(frozen=True)
class Launched:
    command: str
    pid: int
    log: Path


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
    if run_in_progress(store):
        raise RunBusy("a run is in progress: wait for it to finish")
    if config.source is None:
        raise ConnectorError("the configuration was not read from a file: cannot start a run")
    folder = config.data_path / "console-runs"
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / f"{time.strftime('%Y%m%dT%H%M%S')}-{command}.log"
    argv = [sys.executable, "-m", "connector", "--config", str(config.source.resolve())]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*argv, *COMMANDS[command], *extra],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # not stopped with the web worker that started it
            cwd=str(config.base_dir),
        )
    threading.Thread(target=proc.wait, name=f"reap-{proc.pid}", daemon=True).start()
    store.audit.record(actor, f"run.{command}", " ".join(extra), {"pid": proc.pid})
    return Launched(command, proc.pid, log)
