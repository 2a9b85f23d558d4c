"""`renewals serve`: the webhook app under gunicorn, and the inbox worker in a process of its
own (`renewals worker`), kept running by the gunicorn master (started again if it dies) and
stopped with the server. The web workers only check, store and acknowledge."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter

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
    """The inbox worker as a child process of the gunicorn master, started again whenever it
    exits (after a wait that doubles while it keeps dying) until stopped. Driven from the
    master's main loop, the thread that forks the web workers too: starting processes from a
    thread of its own could race those forks."""

    def __init__(self, argv: list[str], clock=time.monotonic):
        self.argv, self.clock = argv, clock
        self._proc: subprocess.Popen | None = None
        self._started = self._next_start = 0.0
        self._delay = 1.0
        self._stopped = False

    @property
    def process(self) -> subprocess.Popen | None:
        return self._proc

    def keep_running(self) -> None:
        """Start the worker if it is not running and its wait is over."""
        if self._stopped:
            return
        now = self.clock()
        if self._proc is not None:
            code = self._proc.poll()  # 0 when the master has reaped it already
            if code is None:
                return
            steady = now - self._started > STEADY_S
            self._delay = delay = 1.0 if steady else min(self._delay * 2, STEADY_S)
            self._next_start = now + delay
            self._proc = None
            log.error(
                "inbox worker exited (code %s); starting it again in %.0f s", code, self._delay
            )
        if now >= self._next_start:
            self._proc = subprocess.Popen(self.argv)
            self._started = now

    def stop(self, timeout: float) -> None:
        """SIGTERM: the worker finishes the batch in hand; killed after `timeout` seconds."""
        self._stopped = True
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


class _Arbiter(Arbiter):
    """Gunicorn's master; its main loop also keeps the inbox worker process running."""

    def manage_workers(self) -> None:
        super().manage_workers()
        self.app.inbox_process.keep_running()


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

    def run(self) -> None:
        try:
            _Arbiter(self).run()
        except RuntimeError as exc:  # what gunicorn's own run() does with a bad setting
            sys.exit(f"Error: {exc}")


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
