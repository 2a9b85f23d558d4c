"""Enqueueing work for the Celery workers (`workers.engine: celery`): the scheduler, `renewals
serve` after a webhook delivery, and the fleet benchmark call this.

At most one task of each kind is pending per connection (`sync`, `webhook_batch`) and one per
(connection, job, slot): a Redis mark (SET NX with a TTL) is set before the task is sent and
cleared by the task once it holds the connection's run lock, so a change arriving during a run
enqueues the next one. With the run lock (one run per connection at a time), a connection
with a huge book has at most one task of each kind waiting in the FIFO queue and one running:
it cannot starve the others. The marks live in workers.redis_url, else in the broker's Redis;
with an amqp:// broker and no redis_url there are none (a duplicate task is still harmless: it
converges like a re-run, and a job's slot is claimed once in the connection's store)."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import uuid
from datetime import datetime
from typing import Any

from crm_renewals.connector.config import AppConfig
from crm_renewals.jobs import celery_app
from crm_renewals.jobs.celery_app import RUN_JOB, SYNC, WEBHOOK_BATCH

log = logging.getLogger(__name__)


class DispatchError(Exception):
    """The broker (or the marks' Redis) did not answer: nothing was enqueued."""


def marks_url(base: AppConfig) -> str | None:
    """Where the pending marks live: workers.redis_url, else a Redis broker, else nowhere."""
    return base.workers.shared_url


def mark_key(queue: str, connection: str, kind: str, *parts: str) -> str:
    """The pending mark of (connection, kind[, job, slot]) on `queue`."""
    return ":".join(("renewals", queue, "pending", connection, kind, *parts))


def slot_text(slot: datetime) -> str:
    """A slot as tasks carry it (ISO 8601, whole seconds, as the job_runs table keeps it)."""
    return slot.replace(microsecond=0).isoformat()


class Dispatcher:
    """Sends tasks to `base`'s broker and queue. Each method: True if enqueued, False if one
    is already pending (DispatchError if the broker or Redis did not answer)."""

    def __init__(self, base: AppConfig, *, app=None, redis=None):
        self.base = base
        self.queue = base.workers.queue
        self.ttl = base.workers.visibility_timeout_seconds
        self._app = app
        self._redis = redis
        self._own_redis = redis is None
        self._conn = None
        self._lock = threading.RLock()

    @property
    def app(self):
        if self._app is None:
            self._app = celery_app.make_app(self.base)
        return self._app

    @property
    def redis(self):
        """The marks' Redis client (None: no marks)."""
        if self._redis is None:
            url = marks_url(self.base)
            if url is None:
                return None
            import redis

            timeout = celery_app.CONNECT_TIMEOUT_S
            self._redis = redis.Redis.from_url(
                url, socket_connect_timeout=timeout, socket_timeout=timeout
            )
        return self._redis

    def sync(self, connection: str, full: bool = False) -> bool:
        """A sync run of `connection` (full: re-read everything)."""
        return self._send(SYNC, mark_key(self.queue, connection, SYNC), [connection, full])

    def webhook_batch(self, connection: str) -> bool:
        """Drain `connection`'s inbox."""
        key = mark_key(self.queue, connection, WEBHOOK_BATCH)
        return self._send(WEBHOOK_BATCH, key, [connection])

    def job(self, connection: str, job: str, slot: datetime) -> bool:
        """Scheduled job `job`'s run for `slot` (run once per (connection, job, slot))."""
        when = slot_text(slot)
        key = mark_key(self.queue, connection, RUN_JOB, job, when)
        return self._send(RUN_JOB, key, [connection, job, when])

    def _send(self, task: str, key: str, args: list[Any]) -> bool:
        task_id = str(uuid.uuid4())
        marks = self.redis
        try:
            if marks is not None and not marks.set(key, task_id, nx=True, ex=self.ttl):
                return False
        except Exception as exc:  # noqa: BLE001 - redis' own errors: said in one line
            raise DispatchError(f"Redis for pending marks did not answer: {exc}") from exc
        try:
            with self._lock:
                self.app.send_task(
                    task,
                    args=args,
                    kwargs={"mark": key if marks is not None else None},
                    task_id=task_id,
                    queue=celery_app.queue_of(self.base, task),
                    retry=False,
                    producer=self._producer(),
                )
        except Exception as exc:  # noqa: BLE001 - kombu's errors vary by transport
            self._drop_connection()
            if marks is not None:
                _forget(marks, key, task_id)
            raise DispatchError(f"the broker did not answer: {type(exc).__name__}: {exc}") from exc
        return True

    def _producer(self):
        """This dispatcher's own broker connection (kombu's producer pools are shared by
        every app of one broker URL in the process: closing them would close others')."""
        if self._conn is None:
            conn = self.app.connection_for_write()
            conn.ensure_connection(max_retries=1, timeout=celery_app.CONNECT_TIMEOUT_S)
            self._conn = conn
        return self._conn.Producer()

    def _drop_connection(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):  # already broken
                conn.release()

    def close(self) -> None:
        if self._redis is not None and self._own_redis:
            self._redis.close()
            self._redis = None
        self._drop_connection()


def _forget(marks, key: str, task_id: str) -> None:
    """Clear the mark if it is still this (unsent) task's."""
    try:
        if marks.get(key) == task_id.encode():
            marks.delete(key)
    except Exception:  # noqa: BLE001 - it lapses with its TTL
        log.warning("could not clear the pending mark %s", key)


class Enqueuer:
    """`renewals serve` with `workers.engine: celery`: a webhook_batch for each connection a
    delivery was stored for, sent off the request path by a thread of this (web worker)
    process, so a broker that does not answer never fails or slows an acknowledgement: the
    delivery is stored, and the scheduler's sweep enqueues its connection's batch later."""

    def __init__(self, base: AppConfig):
        self.base = base
        self._pending: set[str] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None

    def __call__(self, connection: str) -> None:
        with self._lock:
            self._pending.add(connection)
            if self._thread is None or self._pid != os.getpid():  # started after the fork
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name="enqueue", daemon=True)
                self._thread.start()
        self._wake.set()

    def _run(self) -> None:
        dispatcher = Dispatcher(self.base)
        while True:
            self._wake.wait()
            self._wake.clear()
            with self._lock:
                names, self._pending = sorted(self._pending), set()
            for name in names:
                try:
                    dispatcher.webhook_batch(name)
                except DispatchError as exc:
                    log.warning("webhook_batch of %s not enqueued (the sweep will): %s", name, exc)
