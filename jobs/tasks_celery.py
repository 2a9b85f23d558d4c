"""The Celery tasks a `renewals worker --engine celery` runs: `sync(connection, full)`,
`webhook_batch(connection)` and `run_job(connection, job, slot)`.

Each task opens its connection's state store (a fresh Context) for the task and closes it
after, so a worker serving a thousand connections on PostgreSQL holds only as many database
sessions as it runs tasks at once (plus the registry's). It takes the connection's run lock
without waiting: if another run holds it, the task goes back to the queue for
workers.busy_retry_seconds (no worker thread blocks on a long run, nothing is recorded "busy").
Holding the lock, it clears its pending mark (jobs/dispatch.py), so a change arriving during the
run enqueues the next one. Every task converges like a re-run when handed out twice: syncs plan
against the ledger, inbox events are settled once, and a job's slot is claimed in the
connection's store under the runner `celery:<task id>` (the same task handed out again takes
its own claim back; another task finds the slot claimed or done)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from crm_renewals.connector import bootstrap
from crm_renewals.connector.config import AppConfig
from crm_renewals.connector.deployment import Deployment
from crm_renewals.connector.errors import ConnectorError
from crm_renewals.connector.logs import log_context
from crm_renewals.connector.services import sync as sync_service
from crm_renewals.connector.services.context import Context
from crm_renewals.connector.state.runlock import RunLockBusy, run_lock
from crm_renewals.jobs.celery_app import RUN_JOB, SYNC, WEBHOOK_BATCH
from crm_renewals.jobs.dispatch import Dispatcher, DispatchError
from crm_renewals.jobs.scheduler import heartbeat_of, record_run
from crm_renewals.jobs.tasks import JOBS

log = logging.getLogger(__name__)
#: tests only: a path; the first run_job to find it there renames it `<path>.held` once its
#: job's work is done and waits (before recording the outcome) until it is killed
HOLD_ENV = "RENEWALS_TEST_HOLD_FILE"
_CLEAR_MINE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end"


class Busy(Exception):
    """The connection's run lock is held by another run: the task is retried later."""


class Runtime:
    """What a worker process keeps between tasks: the deployment (the registry and each
    connection's configuration, no state store), a dispatcher, when each inbox was purged."""

    def __init__(self, base: AppConfig, app):
        self.base = base
        self.deployment = Deployment(base)
        self.dispatcher = Dispatcher(base, app=app)
        self.purged: dict[str, float] = {}

    def config_of(self, connection: str) -> AppConfig | None:
        conn = self.deployment.find(connection)
        if conn is None or not conn.runnable:
            return None
        return self.deployment.config(conn)

    def clear(self, mark: str | None, task_id: str) -> None:
        """Clear the pending mark if it is still this task's."""
        marks = self.dispatcher.redis if mark else None
        if marks is not None:
            try:
                marks.eval(_CLEAR_MINE, 1, mark, task_id)
            except Exception:  # noqa: BLE001 - it lapses with its TTL
                log.warning("could not clear the pending mark %s", mark)

    def locked(
        self, connection: str, mark: str | None, task_id: str, body: Callable[[Context], Any]
    ) -> Any:
        """`body` with the connection's Context under its run lock (Busy if held); None if the
        connection is not runnable (removed, pending, needs reconnecting): its work waits."""
        cfg = self.config_of(connection)
        if cfg is None:
            self.clear(mark, task_id)
            log.warning("connection %s is not runnable: task skipped", connection)
            return None
        try:
            ctx = bootstrap.build(cfg)
            try:
                with run_lock(ctx.store):
                    self.clear(mark, task_id)
                    return body(ctx)
            except RunLockBusy as exc:
                raise Busy(str(exc)) from None
            finally:
                ctx.close()
        except Busy:
            raise  # still pending: its mark stays
        except Exception:
            self.clear(mark, task_id)  # failed before its run: the next one may be enqueued
            raise

    def sync(self, connection: str, full: bool, mark: str | None, task_id: str) -> Any:
        def body(ctx: Context) -> dict[str, Any]:
            report = sync_service(ctx, full=full)
            log.info("sync of %s: %s", connection, report.status)
            return {"status": report.status}

        return self.locked(connection, mark, task_id, body)

    def webhook_batch(self, connection: str, mark: str | None, task_id: str) -> Any:
        from crm_renewals.webhooks.worker import Lane, drain_inbox

        def body(ctx: Context) -> bool:
            lane = Lane(connection, ctx.config, lambda: ctx)
            lane.purged_at = self.purged.get(connection, float("-inf"))
            try:
                return drain_inbox(
                    ctx, lane, self.base.workers.webhook_batches_per_task, locked=True
                )
            finally:
                self.purged[connection] = lane.purged_at

        more = self.locked(connection, mark, task_id, body)
        if more:  # to the back of the queue: the others' tasks first
            try:
                self.dispatcher.webhook_batch(connection)
            except DispatchError as exc:
                log.warning("webhook_batch of %s not enqueued again: %s", connection, exc)
        return {"more": bool(more)}

    def run_job(self, connection: str, job: str, slot: str, mark: str | None, task_id: str) -> Any:
        when = datetime.fromisoformat(slot)
        runner = f"celery:{task_id}"

        def body(ctx: Context) -> str:
            if job not in JOBS:
                log.error("run_job: no job %s", job)
                return "unknown"
            lease = ctx.config.schedule.lease_seconds
            if not ctx.store.jobs.claim(job, when, runner, lease):
                log.info("%s %s: already run", job, slot)
                return "claimed"
            with heartbeat_of(ctx, job, when, runner, lease):
                return record_run(job, when, ctx, runner, after=_test_hold)

        with log_context(job=job):
            return self.locked(connection, mark, task_id, body)

    def close(self) -> None:
        self.dispatcher.close()
        self.deployment.close()


def _test_hold() -> None:
    path = os.environ.get(HOLD_ENV)
    if not path:
        return
    try:
        os.rename(path, path + ".held")  # one taker
    except OSError:
        return
    while Path(path + ".held").exists():  # until killed (or the test lets go)
        time.sleep(0.05)


def register(app, base: AppConfig) -> Runtime:
    """Register the tasks on `app`; the Runtime they share."""
    rt = Runtime(base, app)
    retry_s = base.workers.busy_retry_seconds

    def guarded(task, fn: Callable[..., Any], connection: str, *args: Any) -> Any:
        with log_context(connection=connection):
            try:
                return fn(connection, *args, task.request.id)
            except Busy:
                log.info(
                    "%s of %s: another run in progress; again in %s s",
                    task.name,
                    connection,
                    retry_s,
                )
                raise task.retry(countdown=retry_s, max_retries=None) from None
            except ConnectorError as exc:  # its settings, CRM or tokens: said in one line
                log.error("%s of %s failed: %s: %s", task.name, connection, type(exc).__name__, exc)
                return {"status": "failed", "error": type(exc).__name__}

    @app.task(name=SYNC, bind=True, max_retries=None)
    def sync(self, connection: str, full: bool = False, mark: str | None = None):
        return guarded(self, lambda c, t: rt.sync(c, full, mark, t), connection)

    @app.task(name=WEBHOOK_BATCH, bind=True, max_retries=None)
    def webhook_batch(self, connection: str, mark: str | None = None):
        return guarded(self, lambda c, t: rt.webhook_batch(c, mark, t), connection)

    @app.task(name=RUN_JOB, bind=True, max_retries=None)
    def run_job(self, connection: str, job: str, slot: str, mark: str | None = None):
        return guarded(self, lambda c, t: rt.run_job(c, job, slot, mark, t), connection)

    return rt
