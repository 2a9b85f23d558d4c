"""`renewals worker --engine celery`: a Celery worker of the deployment's queues (threads
pool), running the tasks of jobs/tasks_celery.py for every connection."""

from __future__ import annotations

import logging
import os
import socket
import uuid

from crm_renewals.connector.config import AppConfig
from crm_renewals.connector.errors import ConnectorError
from crm_renewals.jobs import celery_app

log = logging.getLogger(__name__)


class BrokerUnavailable(ConnectorError):
    """The Celery broker (or the marks' Redis) does not answer."""


def check_broker(app) -> None:
    """Connect to the broker once (BrokerUnavailable, in one line, if it does not answer)."""
    conn = app.connection_for_write()
    try:
        timeout = celery_app.CONNECT_TIMEOUT_S
        conn.ensure_connection(max_retries=1, interval_start=0, timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - kombu's errors vary by transport
        raise BrokerUnavailable(
            f"the Celery broker {conn.as_uri()} does not answer ({type(exc).__name__}: {exc}); "
            "check workers.broker_url or RENEWALS_BROKER_URL"
        ) from None
    finally:
        conn.release()


def hostname() -> str:
    """Unique per process (several workers on one machine)."""
    return f"renewals-{os.getpid()}-{uuid.uuid4().hex[:6]}@{socket.gethostname()}"


def run_worker(base: AppConfig, concurrency: int) -> int:
    """Run a worker until stopped (SIGTERM: the tasks in hand finish first); its exit code."""
    from crm_renewals.jobs.tasks_celery import register

    app = celery_app.make_app(base)
    check_broker(app)
    runtime = register(app, base)
    level = logging.getLogger().getEffectiveLevel()
    worker = app.Worker(
        pool="threads",
        concurrency=concurrency,
        queues=[celery_app.webhook_queue(base), base.workers.queue],
        hostname=hostname(),
        loglevel=logging.getLevelName(level),
        without_gossip=True,
        without_mingle=True,
        without_heartbeat=True,
        quiet=True,
        optimization="fair",
    )
    try:
        worker.start()
    finally:
        runtime.close()
    return worker.exitcode or 0
