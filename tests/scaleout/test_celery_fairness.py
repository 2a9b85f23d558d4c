"""Fairness: a connection with much inbox work takes a bounded share at a time. Its
webhook_batch task processes workers.webhook_batches_per_task batches, then goes to the back
of the queue, so another connection's task waits for at most one of its tasks (asserted on
the order the runs started, on one worker thread, not on times)."""

from __future__ import annotations

from crm_renewals.connector import bootstrap
from crm_renewals.connector.domain.signals import parse_signal
from crm_renewals.connector.services.signals import accept_signals
from crm_renewals.jobs.dispatch import Dispatcher
from tests.conftest import write_config
from tests.scaleout.conftest import make_fleet, wait_for
from tests.webhooks.test_signal_events import red_signals

PER_TASK, BUSY, QUIET = 2, 6, 1  # batches a task; events of the busy and the quiet connection


def store_signals(fleet, connection: str, accounts: int) -> list[str]:
    """A burst of signals for each of `accounts` accounts, stored in the connection's inbox
    as `renewals serve` stores them: one inbox event per account."""
    from crm_renewals.connector.deployment import Deployment

    dep = Deployment(fleet.base)
    try:
        cfg = dep.config(dep.find(connection))
    finally:
        dep.close()
    ctx = bootstrap.build(cfg)
    try:
        ids = [a["Id"] for a in ctx.crm.all("Account")][:accounts]
        measures = list(cfg.scorecard.measures)
        for acc in ids:
            signals = [parse_signal(s, measures, source="webhook") for s in red_signals(acc)]
            accept_signals(ctx.store, signals)
    finally:
        ctx.close()
    return ids


def test_a_busy_connection_delays_another_by_at_most_one_task(tmp_path, monkeypatch, postgres_url):
    fleet = make_fleet(tmp_path, monkeypatch, postgres_url, webhook_batches_per_task=PER_TASK)
    try:
        write_config(  # one event a batch: each batch is one run
            tmp_path,
            workers=fleet.base.workers.model_dump(),
            webhooks={"worker_batch_size": 1},
        )
        store_signals(fleet, "default", BUSY)
        store_signals(fleet, "second", QUIET)
        dispatch = Dispatcher(fleet.base)
        try:
            assert dispatch.webhook_batch("default") and dispatch.webhook_batch("second")
        finally:
            dispatch.close()
        fleet.worker(concurrency=1)
        busy, quiet = fleet.store("default"), fleet.store("second")
        try:
            webhook_runs = lambda s: [r for r in s.runs.list(limit=50) if r.mode == "webhook"]  # noqa: E731
            wait_for(
                lambda: len(webhook_runs(busy)) == BUSY and len(webhook_runs(quiet)) == QUIET,
                procs=fleet.procs,
            )
            order = sorted(
                [(r.started_at, "default") for r in webhook_runs(busy)]
                + [(r.started_at, "second") for r in webhook_runs(quiet)]
            )
            names = [name for _, name in order]
            assert names.index("second") <= PER_TASK, names  # after one task of the busy one
            assert names == ["default"] * PER_TASK + ["second"] + ["default"] * (BUSY - PER_TASK)
        finally:
            busy.close()
            quiet.close()
    finally:
        fleet.stop()
        fleet.forget_keys()
