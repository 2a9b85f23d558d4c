"""The inbox worker: reads stored deliveries into inbox events, then processes those, for
every runnable connection of the deployment in turn.

`renewals worker` runs it in its own process (`renewals serve` starts one and restarts it if it
dies), at a lower CPU priority than the web workers, so acknowledging deliveries comes first.
Each connection has its own lane: its Context (connector.bootstrap, its own configuration),
its synced book between runs, its backoff. A batch takes that connection's run lock (one batch
at a time per state store, never alongside a scheduled sync of it). Connections are re-read
from the registry as the worker goes (connector.deployment): one connected meanwhile is
drained without a restart; one no longer runnable (pending, needing reconnect, disconnected)
is left alone and its deliveries wait, stored. One connection failing (its CRM refusing, its
tokens revoked) is logged and backed off; the others carry on."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import partial

from crm_renewals.connector import bootstrap
from crm_renewals.connector.adapters.hubspot.limits import bucket_waits
from crm_renewals.connector.config import AppConfig
from crm_renewals.connector.deployment import Deployment
from crm_renewals.connector.errors import ConfigError, ConnectorError
from crm_renewals.connector.inbox import EXPAND_BATCH, Expanded, Inbox
from crm_renewals.connector.logs import log_context
from crm_renewals.connector.oauth.grants import ReconnectNeeded
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
#: a failing connection is tried again after the poll interval, doubling up to this
MAX_BACKOFF_S = 300
#: batches of one connection in a turn before the next connection's turn (fairness)
TURN_BATCHES = 20


@dataclass
class Lane:
    """One connection's share of the worker."""

    name: str
    config: AppConfig
    factory: Callable[[], Context]
    ctx: Context | None = None
    snapshot: Snapshot = field(default_factory=Snapshot)
    purged_at: float = float("-inf")
    last_run: float = 0.0
    alerted_at: float = float("-inf")
    failures: int = 0
    resume_at: float = float("-inf")
    reconnect: bool = False

    def close(self) -> None:
        if self.ctx is not None:
            self.ctx.close()
            self.ctx = None


class InboxWorker:
    """Drains the inboxes. Given `context_factory` (tests), it serves that one configuration's
    connection with it; else every runnable connection of the deployment whose app.yaml
    `config` is (or only the connection `only`)."""

    def __init__(
        self,
        config: AppConfig,
        *,
        context_factory: Callable[[], Context] | None = None,
        metrics: Metrics | None = None,
        deployment: Deployment | None = None,
        only: str | None = None,
    ):
        self.config = config
        self.metrics = metrics or Metrics()
        self.only = only
        self._fixed = context_factory is not None
        self._deployment = deployment
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._bucket_seen = bucket_waits()
        self.lanes: dict[str, Lane] = {}
        self._refused: dict[str, str] = {}
        if context_factory is not None:
            self.lanes[config.connection] = Lane(config.connection, config, context_factory)

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
        """Each connection's turn, then wait for the poll interval (unless one has more to
        do), until stopped."""
        poll = self.config.webhooks.worker_poll_seconds
        try:
            while not self._stop.is_set():
                self.refresh()
                more = False
                for lane in list(self.lanes.values()):
                    if self._stop.is_set():
                        break
                    more = self.turn(lane) or more
                if not more:
                    self._stop.wait(poll)
        finally:
            for lane in self.lanes.values():
                lane.close()
            if self._deployment is not None and not self._fixed:
                self._deployment.close()

    def refresh(self) -> None:
        """The lanes of the runnable connections now (the registry as connector.deployment
        re-reads it): new ones added, those no longer runnable let go (their deliveries wait)."""
        if self._fixed:
            return
        if self._deployment is None:
            self._deployment = Deployment(self.config)
        dep = self._deployment
        try:
            runnable = [c for c in dep.runnable() if self.only in (None, c.name)]
        except Exception:  # noqa: BLE001 - the registry is briefly unreadable: keep the lanes
            log.warning("inbox worker: could not read the connections", exc_info=True)
            return
        wanted = {c.name: c for c in runnable}
        for name in [n for n in self.lanes if n not in wanted]:
            self.lanes.pop(name).close()
            if dep.find(name) is None:  # removed: its store is let go too
                dep.forget(name)
            log.info("connection %s is not runnable now: its deliveries wait", name)
        for name, conn in wanted.items():
            try:
                cfg = dep.config(conn)
            except ConfigError as exc:
                if self._refused.get(name) != str(exc):  # said once, not every poll
                    self._refused[name] = str(exc)
                    log.error("connection %s is skipped: %s", name, exc, extra={"connection": name})
                continue
            self._refused.pop(name, None)
            lane = self.lanes.get(name)
            if lane is None or lane.config is not cfg:
                if lane is not None:
                    lane.close()
                self.lanes[name] = Lane(name, cfg, bootstrap.context_factory(cfg))
                log.info("inbox worker: serving connection %s", name)

    def turn(self, lane: Lane) -> bool:
        """One connection's turn: drain its inbox (a bounded number of batches); whether it
        has more to do at once. A failure is logged and the connection backed off."""
        if time.monotonic() < lane.resume_at:
            return False
        more = False
        with log_context(connection=lane.name):
            try:
                if lane.ctx is None:
                    lane.ctx = self._context(lane)
                share = TURN_BATCHES if len(self.lanes) > 1 else None
                more = self.drain(lane.ctx, lane, share)
                self._check_alerts(lane)
                lane.failures = 0
            except ConnectorError as exc:  # its settings, CRM or tokens: said in one line
                delay = self._back_off(lane)
                log.error(
                    "inbox worker: connection %s failed: %s: %s; retrying in %.1f s",
                    lane.name,
                    type(exc).__name__,
                    exc,
                    delay,
                )
            except Exception:  # noqa: BLE001 - the worker outlives any one failure
                delay = self._back_off(lane)
                log.exception(
                    "inbox worker pass failed (connection %s); retrying in %.1f s", lane.name, delay
                )
            if lane.reconnect:  # its tokens no longer work: its events wait, it is let be
                lane.reconnect, more = False, False
                lane.resume_at = time.monotonic() + MAX_BACKOFF_S
                log.error("connection %s needs reconnecting: its deliveries wait", lane.name)
                lane.close()
        if time.monotonic() - lane.last_run > SNAPSHOT_IDLE_S:
            lane.snapshot.forget()
        return more

    @staticmethod
    def _back_off(lane: Lane) -> float:
        """Let go of the lane's Context; its next turn after the poll interval, doubling with
        each failure in a row (up to MAX_BACKOFF_S)."""
        lane.close()
        lane.failures += 1
        poll = lane.config.webhooks.worker_poll_seconds
        delay = min(poll * 2 ** (lane.failures - 1), MAX_BACKOFF_S)
        lane.resume_at = time.monotonic() + delay
        return delay

    def _context(self, lane: Lane) -> Context:
        ctx = lane.factory()
        base = ctx.sleep
        waits = self.metrics.rate_limit_waits.labels(lane.name)
        seconds = self.metrics.rate_limit_wait_seconds.labels(lane.name)

        def counted_sleep(delay: float) -> None:
            waits.inc()
            seconds.inc(delay)
            base(delay)

        ctx.sleep = counted_sleep
        return ctx

    def lane_of(self, ctx: Context) -> Lane:
        name = ctx.config.connection
        lane = self.lanes.get(name)
        if lane is None:
            lane = self.lanes[name] = Lane(name, ctx.config, lambda: ctx)
        return lane

    def drain(self, ctx: Context, lane: Lane | None = None, batches: int | None = None) -> bool:
        """Read the stored deliveries into events, then process due events until none are
        left, another run holds the lock, or `batches` are done (then: True, more to do)."""
        return drain_inbox(
            ctx,
            lane or self.lane_of(ctx),
            batches,
            stopped=self._stop.is_set,
            on_expanded=self._count_expanded,
            on_outcome=self._count,
        )

    def _check_alerts(self, lane: Lane) -> None:
        """The inbox's wait (and failed runs, dead letters) while no run ends to check them."""
        if time.monotonic() - lane.alerted_at >= ALERT_EVERY_S and lane.ctx is not None:
            lane.alerted_at = time.monotonic()
            alerts.check(lane.config, lane.ctx.store)

    def _count_expanded(self, expanded: Expanded, connection: str = "default") -> None:
        for source, n in expanded.events.items():
            if n > expanded.new[source]:
                self.metrics.duplicates.labels(source, connection).inc(n - expanded.new[source])
        for source, n in expanded.unreadable.items():
            self.metrics.dead.labels(source, connection).inc(n)

    def _count(self, outcome: BatchOutcome, connection: str = "default") -> None:
        m = self.metrics
        for counter, counts in (
            (m.processed, outcome.processed + outcome.ignored),  # ignored: nothing to do
            (m.failed, outcome.failed),
            (m.dead, outcome.dead),
        ):
            for source, n in counts.items():
                counter.labels(source, connection).inc(n)
        # waits for a HubSpot portal's token bucket (retry waits are counted by ctx.sleep)
        waits, seconds = bucket_waits()
        m.rate_limit_waits.labels(connection).inc(waits - self._bucket_seen[0])
        m.rate_limit_wait_seconds.labels(connection).inc(seconds - self._bucket_seen[1])
        self._bucket_seen = (waits, seconds)


def _sync(lane: Lane, ctx: Context, refs, **kwargs):
    """The webhook run of `lane`'s connection, with its synced book; a ReconnectNeeded marks
    the lane (its events then wait for the connection to be reconnected)."""
    try:
        return sync_records(ctx, refs, snapshot=lane.snapshot, **kwargs)
    except ReconnectNeeded:
        lane.reconnect = True
        raise


def drain_inbox(
    ctx: Context,
    lane: Lane,
    batches: int | None = None,
    *,
    stopped: Callable[[], bool] = lambda: False,
    locked: bool = False,
    on_expanded: Callable[[Expanded, str], None] | None = None,
    on_outcome: Callable[[BatchOutcome, str], None] | None = None,
) -> bool:
    """Drain `lane`'s connection inbox (the inbox worker's turn, a Celery webhook_batch): read
    the stored deliveries into events, then process due events, each batch under the run lock
    (`locked`: the caller holds it already), until none are left, another run holds the lock,
    `stopped()`, or `batches` are done (then: True, more to do)."""
    inbox = Inbox(ctx.store)
    settings = lane.config.webhooks
    if time.monotonic() - lane.purged_at > PURGE_EVERY_S:
        inbox.purge(settings.dedupe_hours)
        lane.purged_at = time.monotonic()
    while not stopped():
        expanded = inbox.expand(events_of)
        if on_expanded is not None:
            on_expanded(expanded, lane.name)
        if expanded.deliveries < EXPAND_BATCH:
            break
    sync = partial(_sync, lane)
    done = 0
    while batches is None or done < batches:
        done += 1
        if stopped() or not inbox.due(1):
            return False
        try:
            with nullcontext() if locked else run_lock(ctx.store):
                outcome = process_inbox(ctx, inbox, settings, sync)
        except RunLockBusy:
            return False
        if outcome.run_ids:
            lane.last_run = time.monotonic()
        if on_outcome is not None:
            on_outcome(outcome, lane.name)
        if not outcome.total or lane.reconnect:
            return False
    return True
