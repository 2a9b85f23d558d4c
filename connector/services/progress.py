"""Where a running sync is, recorded in its run (`runs.progress`) for the admin console: its
stage (reading, planning, writing, recording), records read by kind, contracts planned, writes
accepted by kind.op and, once planning ends, the writes planned. Recorded at most every
`every` seconds and at each stage (never per record); the CLI's progress callback is called
as before. A progress write that fails is logged and the run goes on: progress is a view."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from crm_renewals.connector.services.gather import Progress
from crm_renewals.connector.services.sync_report import SyncReport
from crm_renewals.connector.state import StateStore

log = logging.getLogger(__name__)
T = TypeVar("T")
#: stages in order
STAGES = ("reading", "planning", "writing", "recording")


class RunProgress:
    """A sync's progress: pass `read` to gather, `written` to the Applier, the plans through
    `planning`; `stage` moves it on. Records nothing for a dry run (it has no run)."""

    def __init__(
        self,
        store: StateStore,
        report: SyncReport,
        forward: Progress | None = None,
        *,
        every: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.store, self.report, self.forward = store, report, forward
        self.every, self.clock = every, clock
        self.current = STAGES[0]
        self.read_counts: Counter[str] = Counter()
        self.contracts = 0
        self.planned: dict[str, int] | None = None
        self._last = float("-inf")
        self.flush()

    def read(self, kind: str, n: int) -> None:
        """A page of `n` records of `kind` read (gather's progress callback)."""
        if self.forward:
            self.forward(kind, n)
        self.read_counts[kind] += n
        self._tick()

    def written(self, kind: str, n: int) -> None:
        """A batch of `n` writes of `kind` answered (the Applier's progress callback)."""
        if self.forward:
            self.forward(kind, n)
        if self.current == "planning":  # writes go out as contracts are planned
            self.stage("writing")
        self._tick()

    def planning(self, plans: Iterable[T]) -> Iterator[T]:
        """The plans, counted as they are made."""
        for plan in plans:
            self.contracts += 1
            if self.contracts % 100 == 0:
                self._tick()
            yield plan

    def plan_total(self, planned: Mapping[str, int]) -> None:
        """The writes planned by kind.op, known once every contract is planned."""
        self.planned = dict(sorted(planned.items()))
        self.flush()

    def stage(self, name: str) -> None:
        self.current = name
        self.flush()

    def snapshot(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "stage": self.current,
            "read": dict(sorted(self.read_counts.items())),
            "contracts_planned": self.contracts,
            "done": dict(sorted(self.report.writes.items())),
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        if self.planned is not None:
            out["planned"] = self.planned
        return out

    def flush(self) -> None:
        """Record the progress now (nothing in a dry run)."""
        self._last = self.clock()
        if self.report.run_id is None:
            return
        try:
            self.store.runs.report_progress(self.report.run_id, self.snapshot())
        except Exception:  # noqa: BLE001 - a busy database must not stop the run
            log.warning("run %s: could not record its progress", self.report.run_id, exc_info=True)

    def _tick(self) -> None:
        if self.clock() - self._last >= self.every:
            self.flush()
