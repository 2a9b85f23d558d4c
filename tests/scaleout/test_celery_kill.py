"""`kill -9` of a worker in the middle of a scheduled job's run: its task was not acknowledged
(acks_late), so the broker hands it out again once the visibility timeout passes (10 s here);
the same task id takes its own claim of the slot back and the run converges: no duplicate in
the CRM, the slot recorded once, as done."""

from __future__ import annotations

import signal
from collections import Counter
from datetime import UTC, datetime

from crm_renewals.jobs.dispatch import Dispatcher
from crm_renewals.jobs.tasks_celery import HOLD_ENV
from tests.e2e.test_crash import read_crm
from tests.scaleout.conftest import wait_for

SLOT = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)


def test_a_worker_killed_mid_run_has_its_task_redelivered_and_the_run_converges(fleet):
    hold = fleet.folder / "hold"
    hold.touch()  # the first run_job stops once its work is done, before recording the slot
    doomed = fleet.worker(concurrency=1, **{HOLD_ENV: str(hold)})
    dispatch = Dispatcher(fleet.base)
    try:
        assert dispatch.job("default", "daily_reconciliation", SLOT)
    finally:
        dispatch.close()
    wait_for(lambda: hold.with_name("hold.held").exists(), procs=[doomed])
    store = fleet.store("default")
    try:
        (claim,) = store.jobs.list("daily_reconciliation")
        assert claim.status == "running"  # its work is done: the CRM has the writes
        doomed.send_signal(signal.SIGKILL)
        doomed.wait()
        fleet.worker(concurrency=1)
        done = lambda: store.jobs.list("daily_reconciliation")[0].status != "running"  # noqa: E731
        wait_for(done, timeout=90, procs=fleet.procs[1:])
        (row,) = store.jobs.list("daily_reconciliation")
        assert row.status in ("ok", "partial") and row.runner == claim.runner  # the same task
        first, again = sorted(store.runs.list(limit=10), key=lambda r: r.id)
        assert first.counts["created"] > 0
        assert again.counts["created"] == again.counts["updated"] == 0  # converged
    finally:
        store.close()
    crm = read_crm(fleet.folder / "data" / "sandbox.db")
    twice = {obj: [k for k, n in rows.items() if n > 1] for obj, rows in crm.rows.items()}
    assert not any(twice.values()), twice
    assert sum(Counter(crm.keyless).values()) == 0
