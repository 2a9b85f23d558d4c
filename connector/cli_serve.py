"""`renewals serve` (webhook receiver under gunicorn, with the inbox worker),
`renewals worker` (the inbox worker alone) and `renewals scheduler` (the scheduled jobs, in
their own process). Registered by connector.cli."""

from __future__ import annotations

import logging
import os
import signal
import threading

import click

from crm_renewals.connector import bootstrap
from crm_renewals.connector.cli_common import err, fatal_errors
from crm_renewals.connector.config import find_config


def _bind(_ctx, _param, value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise click.BadParameter(f"{value!r} is not HOST:PORT")
    return value


@click.command("serve")
@click.option(
    "--bind", default="127.0.0.1:8000", show_default=True, callback=_bind, metavar="HOST:PORT"
)
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64))
@click.option(
    "--threads",
    default=4,
    show_default=True,
    type=click.IntRange(1, 256),
    help="Requests each worker handles at once, once their body is in (gevent workers: slow "
    "or idle connections wait apart and take none of these).",
)
@click.pass_context
@fatal_errors
def serve_cmd(ctx, bind: str, workers: int, threads: int) -> None:
    """Receive webhooks (HubSpot, Salesforce, signals); an inbox worker processes them."""
    cfg = bootstrap.load(ctx.obj["config"])
    bootstrap.build(cfg).close()  # a bad configuration or CRM stops here, before forking
    from crm_renewals.webhooks.server import prepare_metrics_dir, renewals_argv, serve

    prepare_metrics_dir(cfg)  # before anything imports prometheus_client (workers fork from here)
    quiet = logging.getLogger().level > logging.INFO
    config = str(find_config(ctx.obj["config"]).resolve())
    argv = renewals_argv("--config", config, *([] if quiet else ["-v"]), "worker", "--with-parent")
    err.print(
        f"renewals serve: listening on http://{bind} "
        f"({workers} gevent workers, {threads} requests each at once)"
    )
    serve(cfg, bind, workers, threads, quiet, argv)


@click.command("worker")
@click.option("--with-parent", is_flag=True, hidden=True, help="Stop when the parent stops.")
@click.pass_context
@fatal_errors
def worker_cmd(ctx, with_parent: bool) -> None:
    """Process stored webhook deliveries (`renewals serve` runs one for you)."""
    cfg = bootstrap.load(ctx.obj["config"])
    from crm_renewals.webhooks.server import worker_pid_file
    from crm_renewals.webhooks.worker import InboxWorker

    os.nice(cfg.webhooks.worker_nice)  # acknowledging deliveries comes first
    worker = InboxWorker(cfg)
    for stop_signal in (signal.SIGTERM, signal.SIGINT):  # finish the batch in hand, then exit
        signal.signal(stop_signal, lambda *_: worker.stop())
    if with_parent:
        _stop_with_parent(worker)
    pid_file = worker_pid_file(cfg)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.write_text(str(os.getpid()))
    err.print(f"renewals worker: processing webhook deliveries (pid {os.getpid()})")
    try:
        worker.run()
    finally:
        if pid_file.exists() and pid_file.read_text() == str(os.getpid()):
            pid_file.unlink()


def _stop_with_parent(worker) -> None:
    """Stop the worker when the process that started it is gone (even if it was killed)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            if worker.stopped.wait(1):
                return
        worker.stop()

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


@click.command("scheduler")
@click.pass_context
@fatal_errors
def scheduler_cmd(ctx) -> None:
    """Run the scheduled jobs of app.yaml (sync, renewal scan, reconciliation, ...)."""
    cfg = bootstrap.load(ctx.obj["config"])
    bootstrap.build(cfg).close()
    from crm_renewals.jobs.scheduler import build_scheduler

    sched = build_scheduler(cfg)
    signal.signal(signal.SIGTERM, lambda *_: sched.shutdown(wait=False))
    jobs = sched.get_jobs()
    err.print(f"renewals scheduler: {len(jobs)} job(s), time zone {cfg.schedule.timezone}")
    for job in jobs:
        err.print(f"  {job.name}: {job.trigger}", markup=False, highlight=False)
    sched.start()


COMMANDS = (serve_cmd, worker_cmd, scheduler_cmd)
