"""The inbox worker: reads stored deliveries into inbox events, then processes those.

`renewals worker` runs it in its own process (`renewals serve` starts one and restarts it if it
dies), at a lower CPU priority than the web workers, so acknowledging deliveries comes first.
It takes the run lock for each batch, so only one batch runs at a time and never alongside a
scheduled sync. It polls for deliveries and for retries coming due."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from functools import partial

from crm_renewals.connector import bootstrap
from crm_renewals.connector.adapters.hubspot.limits import bucket_waits
from crm_renewals.connector.config import AppConfig
from crm_renewals.connector.inbox import EXPAND_BATCH, Expanded, Inbox
from crm_renewals.connector.services import alerts
from crm_renewals.connector.services.context import Context
from crm_renewals.connector.services.events import BatchOutcome, process_inbox
from crm_renewals.connector.services.refresh import Snapshot, sync_records
from crm_renewals.connector.state.runlock import RunLockBusy, run_lock
from crm_renewals.webhooks.deliveries import events_of
from crm_renewals.webhooks.metrics import Metrics

log = logging.getLogger(__name__)
PURGE_EVERY_S = 3600
#: alerts (notify:) are checked this often, beside those checked as each run ends
ALERT_EVERY_S = 60
#: the book kept between webhook runs is let go after this long without one (memory)
SNAPSHOT_IDLE_S = 600


class InboxWorker:
    """Drains the inbox; each pass's Context comes from `context_factory` (default: the one
    connector.bootstrap builds for this configuration; tests inject their own)."""

    def __init__(
        self,
        config: AppConfig,
        *,
        context_factory: Callable[[], Context] | None = None,
        metrics: Metrics | None = None,
    ):
        self.config = config
        self.factory = context_factory or bootstrap.context_factory(config)
        self.metrics = metrics or Metrics()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._purged_at = 0.0
        self._bucket_seen = bucket_waits()
        self.snapshot = Snapshot()
        self._last_run = 0.0
        self._alerted_at = float("-inf")

    def start(self) -> InboxWorker:
        """Run in a thread of this process (next to the app in tests)."""
        self._thread = threading.Thread(target=self.run, name="inbox-worker", daemon=True)
        self._thread.start()
        return self

    @property
    def stopped(self) -> threading.Event:
        return self._stop

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 30) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self) -> None:
        """Drain, then wait for the poll interval, until stopped."""
        ctx: Context | None = None
        poll = self.config.webhooks.worker_poll_seconds
        while not self._stop.is_set():
            try:
                if ctx is None:
                    ctx = self._context()
                self.drain(ctx)
                self._check_alerts(ctx)
            except Exception:  # noqa: BLE001 - the worker outlives any one failure
                log.exception("inbox worker pass failed; retrying in %.1f s", poll)
                if ctx is not None:
                    ctx.close()
                    ctx = None
            if time.monotonic() - self._last_run > SNAPSHOT_IDLE_S:
                self.snapshot.forget()
            self._stop.wait(poll)
        if ctx is not None:
            ctx.close()

    def _context(self) -> Context:
        ctx = self.factory()
        base = ctx.sleep

        def counted_sleep(seconds: float) -> None:
            self.metrics.rate_limit_waits.inc()
            self.metrics.rate_limit_wait_seconds.inc(seconds)
            base(seconds)

        ctx.sleep = counted_sleep
        return ctx

    def drain(self, ctx: Context) -> None:
        """Read the stored deliveries into events, then process due events until none are
        left (or another run holds the lock)."""
        inbox = Inbox(ctx.store)
        settings = self.config.webhooks
        if time.monotonic() - self._purged_at > PURGE_EVERY_S:
            inbox.purge(settings.dedupe_hours)
            self._purged_at = time.monotonic()
        while not self._stop.is_set():
            expanded = inbox.expand(events_of)
            self._count_expanded(expanded)
            if expanded.deliveries < EXPAND_BATCH:
                break
        while not self._stop.is_set() and inbox.due(1):
            try:
                with run_lock(ctx.store):
                    sync = partial(sync_records, snapshot=self.snapshot)
                    outcome = process_inbox(ctx, inbox, settings, sync)
            except RunLockBusy:
                return
            if outcome.run_ids:
                self._last_run = time.monotonic()
            self._count(outcome)
            if not outcome.total:
                return

    def _check_alerts(self, ctx: Context) -> None:
        """The inbox's wait (and failed runs, dead letters) while no run ends to check them."""
        if time.monotonic() - self._alerted_at >= ALERT_EVERY_S:
            self._alerted_at = time.monotonic()
            alerts.check(self.config, ctx.store)

    def _count_expanded(self, expanded: Expanded) -> None:
        for source, n in expanded.events.items():
            if n > expanded.new[source]:
                self.metrics.duplicates.labels(source).inc(n - expanded.new[source])
        for source, n in expanded.unreadable.items():
            self.metrics.dead.labels(source).inc(n)

    def _count(self, outcome: BatchOutcome) -> None:
        m = self.metrics
        for counter, counts in (
            (m.processed, outcome.processed + outcome.ignored),  # ignored: nothing to do
            (m.failed, outcome.failed),
            (m.dead, outcome.dead),
        ):
            for source, n in counts.items():
                counter.labels(source).inc(n)
        # waits for a HubSpot portal's token bucket (retry waits are counted by ctx.sleep)
        waits, seconds = bucket_waits()
        m.rate_limit_waits.inc(waits - self._bucket_seen[0])
        m.rate_limit_wait_seconds.inc(seconds - self._bucket_seen[1])
        self._bucket_seen = (waits, seconds)
