"""`renewals serve`: the webhook app under gunicorn, and the inbox worker in a process of its
own (`renewals worker`), started by the gunicorn master once it listens, started again if it
dies, stopped with the server. The web workers only check, store and acknowledge."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from gunicorn.app.base import BaseApplication

from connector.config import AppConfig
from webhooks.metrics import MULTIPROC_ENV

log = logging.getLogger(__name__)
#: a worker that ran this long before dying is started again at once, else after a doubling wait
STEADY_S = 60


def prepare_metrics_dir(config: AppConfig) -> Path:
    """prometheus-client's multiprocess mode: every process's counters in files of one folder,
    emptied at start. Must be set before prometheus_client is imported by the workers."""
    folder = Path(os.environ.get(MULTIPROC_ENV) or config.data_path / "metrics")
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):  # counters of a previous run (only prometheus' files)
        stale.unlink()
    os.environ[MULTIPROC_ENV] = str(folder)
    return folder


def worker_pid_file(config: AppConfig) -> Path:
    return config.data_path / "inbox-worker.pid"


def worker_running(pid_file: Path) -> bool:
    """Whether the inbox worker whose pid is in `pid_file` is alive (on this host)."""
    try:
        os.kill(int(pid_file.read_text().strip()), 0)
    except (OSError, ValueError):  # no file, garbage, or no such process
        return False
    return True


class InboxProcess:
    """The inbox worker as a child process, started again whenever it exits until stopped."""

    def __init__(self, argv: list[str]):
        self.argv = argv
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None

    def start(self) -> InboxProcess:
        threading.Thread(target=self._supervise, name="inbox-supervisor", daemon=True).start()
        return self

    def _supervise(self) -> None:
        delay = 1.0
        while True:
            with self._lock:
                if self._stop.is_set():
                    return
                self._proc = subprocess.Popen(self.argv)
            started = time.monotonic()
            # the gunicorn master may reap it first: wait() then reports 0
            code = self._proc.wait()
            if self._stop.is_set():
                return
            delay = 1.0 if time.monotonic() - started > STEADY_S else min(delay * 2, STEADY_S)
            log.error("inbox worker exited (code %s); starting it again in %.0f s", code, delay)
            self._stop.wait(delay)

    def stop(self, timeout: float) -> None:
        """SIGTERM: the worker finishes the batch in hand; killed after `timeout` seconds."""
        with self._lock:
            self._stop.set()
            proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.error("inbox worker did not stop within %.0f s; killing it", timeout)
            proc.kill()
            proc.wait()


class WebhookServer(BaseApplication):
    def __init__(
        self,
        config: AppConfig,
        bind: str,
        workers: int,
        threads: int,
        quiet: bool,
        worker_argv: list[str],
    ):
        self.app_config = config
        self.inbox_process = InboxProcess(worker_argv)
        self.options = {
            "bind": bind,
            "workers": workers,
            "threads": threads,
            "worker_class": "gthread" if threads > 1 else "sync",
            "accesslog": None if quiet else "-",
            "errorlog": "-",
            "loglevel": "warning" if quiet else "info",
            "graceful_timeout": 30,
            "when_ready": lambda _arbiter: self.inbox_process.start(),
            "on_exit": lambda arbiter: self.inbox_process.stop(arbiter.cfg.graceful_timeout),
            "post_worker_init": _report_inbox_worker,
            "child_exit": _child_exit,
        }
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        from webhooks.app import create_app

        return create_app(self.app_config)


def _report_inbox_worker(worker) -> None:
    """/healthz of this web worker reports whether the inbox worker process is alive."""
    pid_file = worker_pid_file(worker.app.app_config)
    worker.wsgi.extensions["renewals"].worker_alive = lambda: worker_running(pid_file)


def _child_exit(_server, worker) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def serve(config: AppConfig, bind: str, workers: int, threads: int, quiet: bool, argv) -> None:
    """Run until stopped; `argv` starts the inbox worker (`renewals ... worker`)."""
    WebhookServer(config, bind, workers, threads, quiet, argv).run()


def renewals_argv(*args: str) -> list[str]:
    """This interpreter running the `renewals` CLI with `args`."""
    return [sys.executable, "-m", "connector", *args]
