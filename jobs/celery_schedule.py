"""`renewals scheduler` with `workers.engine: celery`: the same jobs (jobs/deployment.py), but
each fired job enqueues `run_job(connection, job, slot)` for the Celery workers instead of
running it, and the sweep enqueues what would otherwise wait: a webhook_batch for each
connection whose inbox has work due (retries; deliveries whose enqueue failed), the slots
whose claim lapsed (their worker died), and the slots whose enqueue failed. Two schedulers
at once (HA) fire the same slots: the pending mark lets one task through, and the slot's
claim in the connection's store runs it once even without marks."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger

from crm_renewals.connector import bootstrap
from crm_renewals.connector.config import AppConfig
from crm_renewals.connector.logs import log_context
from crm_renewals.jobs import heartbeat
from crm_renewals.jobs.deployment import DeploymentJobs
from crm_renewals.jobs.dispatch import Dispatcher, DispatchError
from crm_renewals.jobs.scheduler import retakeable, slot_now

log = logging.getLogger(__name__)


def enqueue_slot(
    dispatcher: Dispatcher,
    name: str,
    config: AppConfig,
    trigger: BaseTrigger,
    *,
    clock: Callable[[], datetime] | None = None,
    unsent: set | None = None,
) -> str:
    """The current slot of job `name` enqueued: enqueued, pending (already), missed (no slot
    within the grace) or unsent (the broker did not answer: `unsent` keeps it for the sweep)."""
    now = clock() if clock else datetime.now(ZoneInfo(config.schedule.timezone))
    slot = slot_now(config, name, trigger, now)
    if slot is None:
        return "missed"
    return _send(dispatcher, config.connection, name, slot, unsent)


def _send(dispatcher: Dispatcher, connection: str, name: str, slot: datetime, unsent) -> str:
    try:
        sent = dispatcher.job(connection, name, slot)
    except DispatchError as exc:
        log.error("%s:%s %s not enqueued: %s", connection, name, slot.isoformat(), exc)
        if unsent is not None:
            unsent.add((connection, name, slot))
        return "unsent"
    log.info("%s:%s %s: %s", connection, name, slot.isoformat(), "enqueued" if sent else "pending")
    return "enqueued" if sent else "pending"


class CeleryJobs(DeploymentJobs):
    """DeploymentJobs whose jobs enqueue their slots; the sweep enqueues due work."""

    def __init__(self, base: AppConfig, sched, *, dispatcher: Dispatcher, **kwargs):
        self.dispatcher = dispatcher
        self.unsent: set[tuple[str, str, datetime]] = set()
        self._guard = threading.Lock()
        super().__init__(base, sched, fire=self._fire, **kwargs)

    def _fire(self, name: str, config: AppConfig, trigger: BaseTrigger) -> str:
        with log_context(connection=config.connection, job=name):
            return enqueue_slot(self.dispatcher, name, config, trigger, unsent=self.unsent)

    def sweep(self) -> None:
        """Enqueue each connection's due inbox work and lapsed or unsent slots, then beat."""
        with self._guard:
            unsent, self.unsent = self.unsent, set()
        for connection, name, slot in sorted(unsent):
            _send(self.dispatcher, connection, name, slot, self.unsent)
        for name, (cfg, _, _) in list(self.registered.items()):
            with log_context(connection=name):
                try:
                    self.sweep_one(cfg)
                except Exception:  # noqa: BLE001 - one connection's database: the others go on
                    log.warning("scheduler: sweep of connection %s failed", name, exc_info=True)
        heartbeat.beat(self.base)

    def sweep_one(self, cfg: AppConfig, now: datetime | None = None) -> None:
        """One connection: its store opened for the sweep and closed after (no engine is kept
        per connection)."""
        now = now or datetime.now(ZoneInfo(cfg.schedule.timezone))
        store = bootstrap.open_store(cfg)
        try:
            due = (
                store.deliveries.first_received() is not None
                or store.inbox.first_due(now) is not None
            )
            lapsed = store.jobs.lapsed(at=now)
        finally:
            store.close()
        if due:
            try:
                self.dispatcher.webhook_batch(cfg.connection)
            except DispatchError as exc:
                log.error("webhook_batch of %s not enqueued: %s", cfg.connection, exc)
        for name, slot, _ in retakeable(cfg, lapsed, now):
            log.warning("%s %s: its worker stopped mid-run; enqueued again", name, slot)
            _send(self.dispatcher, cfg.connection, name, slot, self.unsent)
