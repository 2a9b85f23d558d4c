"""`renewals serve`: the webhook app under gunicorn, with an inbox worker in each worker
process (started after the fork, never in the master, never at import)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from gunicorn.app.base import BaseApplication

from connector.config import AppConfig
from webhooks.metrics import MULTIPROC_ENV

log = logging.getLogger(__name__)


def prepare_metrics_dir(config: AppConfig) -> Path:
    """prometheus-client's multiprocess mode: every worker's counters in files of one folder,
    emptied at start. Must be set before prometheus_client is imported by the workers."""
    folder = Path(os.environ.get(MULTIPROC_ENV) or config.data_path / "metrics")
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):  # counters of a previous run (only prometheus' files)
        stale.unlink()
    os.environ[MULTIPROC_ENV] = str(folder)
    return folder


class WebhookServer(BaseApplication):
    def __init__(self, config: AppConfig, bind: str, workers: int, threads: int, quiet: bool):
        self.app_config = config
        self.options = {
            "bind": bind,
            "workers": workers,
            "threads": threads,
            "worker_class": "gthread" if threads > 1 else "sync",
            "accesslog": None if quiet else "-",
            "errorlog": "-",
            "loglevel": "warning" if quiet else "info",
            "graceful_timeout": 30,
            "post_worker_init": _start_inbox_worker,
            "worker_exit": _stop_inbox_worker,
            "child_exit": _child_exit,
        }
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        from webhooks.app import create_app

        return create_app(self.app_config)


def _start_inbox_worker(worker) -> None:
    from webhooks.worker import InboxWorker

    receiver = worker.wsgi.extensions["renewals"]
    inbox_worker = InboxWorker(worker.app.app_config, metrics=receiver.metrics).start()
    receiver.wake = inbox_worker.wake
    receiver.worker_alive = inbox_worker.alive
    worker.inbox_worker = inbox_worker


def _stop_inbox_worker(_server, worker) -> None:
    inbox_worker = getattr(worker, "inbox_worker", None)
    if inbox_worker is not None:
        inbox_worker.stop()


def _child_exit(_server, worker) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def serve(config: AppConfig, bind: str, workers: int, threads: int, quiet: bool) -> None:
    WebhookServer(config, bind, workers, threads, quiet).run()
