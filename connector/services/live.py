"""What the console's live panel shows: the run going now (any: a sync from the console, a
terminal, the scheduler or the webhook worker), with its recorded progress; else the outcome
of the run the console started last (a dry run records no run: its `--json` report)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from crm_renewals.connector.config import AppConfig
from crm_renewals.connector.services.launch import (
    LastLaunch,
    last_launch,
    outcome,
    process_alive,
    run_in_progress,
)
from crm_renewals.connector.state import Run, StateStore

State = Literal["idle", "starting", "running", "ended"]


@dataclass(frozen=True)
class Live:
    #: idle: nothing going, nothing started from the console; starting: launched, its run
    #: not opened yet; running; ended: the console's last launch is over
    state: State
    #: the run going, or the one the console's last launch recorded
    run: Run | None = None
    launch: LastLaunch | None = None
    #: what the launched command printed as `--json` (a dry run's report, a refusal)
    report: dict[str, Any] | None = None

    @property
    def going(self) -> bool:
        return self.state in ("starting", "running")


def live(config: AppConfig, store: StateStore) -> Live:
    """The run going now, else the console's last launch."""
    newest = store.runs.list(1)
    last = last_launch(config)
    if newest and newest[0].status == "running" and run_in_progress(store):
        return Live("running", newest[0], last)
    if last is None:
        return Live("idle")
    alive = process_alive(last.pid)
    if last.command == "dry_run":  # no run of its own
        if alive:
            return Live("running", None, last)
        return Live("ended", None, last, outcome(config, last))
    run = store.runs.first_after(last.after_run)
    if alive:  # its run may have ended, its process not yet: a new launch would be refused
        return Live("starting" if run is None else "running", run, last)
    finished = run is not None and run.status != "running"
    return Live("ended", run, last, None if finished else outcome(config, last))
