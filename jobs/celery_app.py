"""The Celery application of a deployment (`workers.engine: celery`): its broker, queue and
delivery settings. Imported only when the engine is celery (the other commands never load
celery). Tasks are registered by jobs/tasks_celery.py (in workers); schedulers and `renewals
serve` only send them by name (jobs/dispatch.py)."""

from __future__ import annotations

from crm_renewals.connector.config import AppConfig

#: the task names (what jobs/dispatch.py sends, what jobs/tasks_celery.py registers)
SYNC = "sync"
WEBHOOK_BATCH = "webhook_batch"
RUN_JOB = "run_job"
#: a broker that does not answer is given up on after this long (publishing never hangs)
CONNECT_TIMEOUT_S = 3.0


def webhook_queue(base: AppConfig) -> str:
    """The queue of webhook batches: apart from syncs and jobs, so a delivery's processing
    never waits behind long scans; every worker consumes both."""
    return f"{base.workers.queue}.webhooks"


def queue_of(base: AppConfig, task: str) -> str:
    return webhook_queue(base) if task == WEBHOOK_BATCH else base.workers.queue


def redis_transport(visibility_timeout: int, queue: str) -> dict:
    """Redis broker options: a task whose worker died is handed out again once unacknowledged
    for `visibility_timeout` s (the sweep that does it runs every fifth of that, at most every
    100 s); the unacknowledged tasks' keys are the queue's own (deployments may share a db)."""
    interval = max(1, min(10, visibility_timeout // 5))
    return {
        "visibility_timeout": visibility_timeout,
        "unacked_restore_interval": interval,
        "unacked_restore_throttle": max(1, min(10, visibility_timeout // (5 * interval))),
        "unacked_key": f"{queue}.unacked",
        "unacked_index_key": f"{queue}.unacked_index",
        "unacked_mutex_key": f"{queue}.unacked_mutex",
        "socket_timeout": 30,
    }


def make_app(base: AppConfig):
    """A Celery app for `base`'s `workers:` settings: late acknowledgement (a task whose worker
    dies is handed out again), one task prefetched per thread, JSON only, no result backend."""
    from celery import Celery

    w = base.workers
    app = Celery("crm_renewals", broker=w.broker_url, set_as_current=False)
    transport: dict = {"socket_connect_timeout": CONNECT_TIMEOUT_S}
    if w.broker_url.startswith(("redis://", "rediss://")):
        transport.update(redis_transport(w.visibility_timeout_seconds, w.queue))
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        result_backend=None,
        task_default_queue=w.queue,
        task_create_missing_queues=True,
        broker_transport_options=transport,
        broker_connection_timeout=CONNECT_TIMEOUT_S,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        worker_send_task_events=False,
        task_send_sent_event=False,
        worker_enable_remote_control=False,
        worker_cancel_long_running_tasks_on_connection_loss=False,
        enable_utc=True,
    )
    return app
