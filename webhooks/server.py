"""`renewals serve`: the webhook app under gunicorn, and the inbox worker in a process of its
own (`renewals worker`), kept running by the gunicorn master (started again if it dies) and
stopped with the server. The web workers only check, store and acknowledge.

Web workers are gevent workers: each connection is a greenlet, so slow or idle clients hold no
worker (up to WORKER_CONNECTIONS each); headers must arrive within KEEPALIVE_S and a body
within `webhooks.request_body_seconds` (else 408); `--threads` requests per worker are handled
at once once their body is in. The access log shows query parameter names, never values.

Nothing here imports prometheus_client: it reads PROMETHEUS_MULTIPROC_DIR once, at import, so
`prepare_metrics_dir` must run first (the forked web workers inherit the master's modules)."""

from __future__ import annotations

import contextlib
import gc
import io
import logging
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter
from gunicorn.glogging import Logger

from crm_renewals.connector import logs
from crm_renewals.connector.config import AppConfig

log = logging.getLogger(__name__)
#: a worker that ran this long before dying is started again at once, else after a doubling wait
STEADY_S = 60
#: the environment variable prometheus_client's multiprocess mode reads (at import)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: connections one web worker holds at once (each a greenlet: waiting costs no worker)
WORKER_CONNECTIONS = 1000
#: seconds a connection may take to send a request's headers (and may stay idle between them)
KEEPALIVE_S = 5
#: console requests one web worker handles at once, each in a native thread (ConsoleInThreads)
CONSOLE_THREADS = 2
#: seconds between two looks for a run that changed the synced book (ConsoleInThreads)
WARM_EVERY_S = 5
#: a query parameter's value, in a request line, a query string or a Referer
_QUERY_VALUE = re.compile(r"([?&][^=&#\s]*=)[^&#\s]*")


def prepare_metrics_dir(config: AppConfig) -> Path:
    """prometheus-client's multiprocess mode: every process's counters in files of one folder,
    emptied at start. Set before prometheus_client is imported in this process (the web
    workers fork from it) and in the inbox worker (it inherits the environment)."""
    if "prometheus_client" in sys.modules and not os.environ.get(MULTIPROC_ENV):
        raise RuntimeError("prometheus_client was imported before its multiprocess folder was set")
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
        if not self.argv:  # workers.engine: celery: Celery workers drain the inboxes
            return
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
        worker_argv: list[str] | None,
    ):
        self.app_config = config
        self.inbox_process = InboxProcess(worker_argv or [])
        self.handling = threads
        self.options = {
            "bind": bind,
            "workers": workers,
            "worker_class": "gevent",
            "worker_connections": WORKER_CONNECTIONS,
            "keepalive": KEEPALIVE_S,
            "logger_class": RedactingLogger,
            "accesslog": None if quiet else "-",
            "errorlog": "-",
            "loglevel": "warning" if quiet else "info",
            "graceful_timeout": 30,
            "on_exit": lambda arbiter: self.inbox_process.stop(arbiter.cfg.graceful_timeout),
            "post_worker_init": _worker_ready(bool(worker_argv)),
            "child_exit": _child_exit,
        }
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        from crm_renewals.webhooks.app import create_app

        app = create_app(self.app_config)
        native = NativeThread()
        app.extensions["renewals"].blocking = native
        app.extensions["renewals"].background = native.later
        if self.app_config.workers.engine == "celery":  # each stored delivery: a task
            from crm_renewals.jobs.dispatch import Enqueuer

            app.extensions["renewals"].on_stored = Enqueuer(self.app_config)
        app.wsgi_app = BodyDeadline(
            ConsoleInThreads(app.wsgi_app, app.extensions["console"].warm),
            self.app_config.webhooks.request_body_seconds,
            self.app_config.webhooks.max_body_bytes,
            self.handling,
            on_timeout=app.extensions["renewals"].timed_out,
        )
        return app

    def run(self) -> None:
        try:
            _Arbiter(self).run()
        except RuntimeError as exc:  # what gunicorn's own run() does with a bad setting
            sys.exit(f"Error: {exc}")


class NativeThread:
    """Runs a blocking call (SQLite waiting on its write lock sleeps in C, which would stall
    every greenlet of the worker) in one native thread of the worker, one call at a time: the
    worker goes on reading and checking other requests meanwhile. `later` runs one without
    waiting for it (a failure is logged)."""

    def __init__(self):
        self._pool = None

    def __call__(self, fn, *args):
        return self._threads().apply(fn, args)

    def later(self, fn) -> None:
        self._threads().spawn(_logged, fn)

    def _threads(self):
        if self._pool is None:  # made in the worker, after the fork
            from gevent.threadpool import ThreadPool

            self._pool = ThreadPool(1)
        return self._pool


def _logged(fn) -> None:
    try:
        fn()
    except Exception:  # a database gone or briefly unwritable: the next one is due soon
        log.warning("background work in the web worker failed", exc_info=True)


class ConsoleInThreads:
    """WSGI middleware for gevent workers: the admin console's pages (/admin) run in native
    threads of the worker, CONSOLE_THREADS at a time. A page that computes for a few hundred
    ms (a report over a large book) then shares the interpreter with the worker's greenlets
    every few ms instead of holding it: webhooks are still acknowledged meanwhile. One more
    native thread calls `warm` every WARM_EVERY_S: what the pages read after a run (the synced
    book: seconds to load on a large book) is loaded before anyone asks."""

    def __init__(self, app, warm=lambda: None):
        self.app, self.warm, self._pool = app, warm, None

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if not path.startswith("/admin") or path.startswith("/admin/static/"):
            return self.app(environ, start_response)
        if self._pool is None:  # made in the worker, after the fork
            from gevent.threadpool import ThreadPool

            self._pool = ThreadPool(CONSOLE_THREADS + 1)
            self._pool.spawn(self._keep_warm)
        answer: list = []

        def handle() -> bytes:
            def started(status, headers, exc_info=None):
                answer[:] = [status, headers, exc_info]
                return lambda _data: None

            body = self.app(environ, started)
            try:
                return b"".join(body)  # pages are small: no streaming
            finally:
                if hasattr(body, "close"):
                    body.close()

        data = self._pool.apply(handle)
        start_response(*answer)
        return [data]

    def _keep_warm(self) -> None:
        from gevent.monkey import get_original

        sleep = get_original("time", "sleep")  # a native thread: the real sleep
        while True:
            try:
                self.warm()
            except Exception:  # a database briefly locked or gone: try again later
                log.warning("console: could not load the synced book", exc_info=True)
            sleep(WARM_EVERY_S)


class BodyDeadline:
    """WSGI middleware for gevent workers: a request's body is read in full before the app
    sees it, within `seconds` of the start (a slow or stalled sender gets 408 and the connection
    is closed); then at most `handling` requests of this worker are in the app at once."""

    def __init__(self, app, seconds: float, max_bytes: int, handling: int, on_timeout=None):
        from gevent.lock import BoundedSemaphore

        self.app, self.seconds, self.max_bytes = app, seconds, max_bytes
        self.slots = BoundedSemaphore(handling)
        self.on_timeout = on_timeout or (lambda _path: None)

    def __call__(self, environ, start_response):
        import gevent

        declared = environ.get("CONTENT_LENGTH") or ""
        if not declared.isdigit() or int(declared) <= self.max_bytes:  # else: 413 unread
            try:
                with gevent.Timeout(self.seconds):
                    body = environ["wsgi.input"].read(self.max_bytes + 1)
            except gevent.Timeout:
                self.on_timeout(environ.get("PATH_INFO", ""))
                _stop_reading(environ)
                reason = f"request body not received within {self.seconds:g} s"
                headers = [("Content-Type", "application/json"), ("Connection", "close")]
                start_response("408 Request Timeout", headers)
                return [f'{{"error":"{reason}"}}\n'.encode()]
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
        with self.slots:
            return self.app(environ, start_response)


def _stop_reading(environ) -> None:
    """Read nothing more from this connection: gunicorn would otherwise wait for the rest of
    the body to drain it; it now sees the end, sends the 408 and closes."""
    sock = environ.get("gunicorn.socket")
    if sock is not None:
        with contextlib.suppress(OSError):  # already gone
            sock.shutdown(socket.SHUT_RD)


class RedactingLogger(Logger):
    """Gunicorn's logger, but the access log shows query parameter names, never their values
    (a sender may put a token there), and both logs are as every other log of the process:
    secrets redacted, JSON lines when the process logs JSON (connector.logs)."""

    def setup(self, cfg) -> None:
        super().setup(cfg)
        fmt = "json" if logs.json_lines() else "text"
        for logger in (self.access_log, self.error_log):
            for handler in logger.handlers:
                if fmt == "json" and logger is self.access_log:
                    handler.addFilter(AccessFields())  # before redaction: it reads the atoms
                logs.prepare(handler, fmt)

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        for key in ("r", "q", "f", "{referer}i"):
            if isinstance(atoms.get(key), str):
                atoms[key] = redact_query(atoms[key])
        if atoms.get("q"):
            atoms["q"] = redact_query("?" + atoms["q"])[1:]
        return atoms


class AccessFields(logging.Filter):
    """A JSON access line also has the request's parts as fields of their own: method, path
    (without its query), status, bytes, duration_ms and remote (the client's address)."""

    ATOMS = {"m": "method", "U": "path", "s": "status", "B": "bytes", "M": "duration_ms"}

    def filter(self, record: logging.LogRecord) -> bool:
        atoms = record.args
        if isinstance(atoms, dict):
            fields = {name: dict.get(atoms, atom) for atom, name in self.ATOMS.items()}
            status = str(fields["status"])
            fields["status"] = int(status) if status.isdigit() else status
            record.__dict__.update(fields, remote=dict.get(atoms, "h"))
        return True


def redact_query(text: str) -> str:
    """`/path?a=1&token=x` -> `/path?a=***&token=***`."""
    return _QUERY_VALUE.sub(r"\1***", text)


def _worker_ready(inbox_worker: bool):
    """A web worker has loaded the app: /healthz reports whether the inbox worker process is
    alive (when there is one), and what is loaded by now (modules, the app: nearly all the
    objects it will ever hold, about 100,000) is left out of garbage collection from here on.
    Each full collection would otherwise walk all of it, about 60 ms in which every request of
    the worker waits (the tail of acknowledgements)."""

    def ready(worker) -> None:
        if inbox_worker:
            pid_file = worker_pid_file(worker.app.app_config)
            worker.wsgi.extensions["renewals"].worker_alive = lambda: worker_running(pid_file)
        gc.freeze()

    return ready


def _child_exit(_server, worker) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def serve(config: AppConfig, bind: str, workers: int, threads: int, quiet: bool, argv) -> None:
    """Run until stopped; `argv` starts the inbox worker (`renewals ... worker`; None: the
    engine is celery, no inbox worker process)."""
    WebhookServer(config, bind, workers, threads, quiet, argv).run()


def renewals_argv(*args: str) -> list[str]:
    """This interpreter running the `renewals` CLI with `args`."""
    return [sys.executable, "-m", "crm_renewals.connector", *args]
