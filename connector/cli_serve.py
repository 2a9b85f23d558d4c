"""`renewals serve` (webhook receiver under gunicorn, with the inbox worker) and
`renewals scheduler` (the scheduled jobs, in their own process). Registered by connector.cli."""

from __future__ import annotations

import logging
import signal

import click

from connector import bootstrap
from connector.cli import err, fatal_errors


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
    "--threads", default=4, show_default=True, type=click.IntRange(1, 256), help="Per worker."
)
@click.pass_context
@fatal_errors
def serve_cmd(ctx, bind: str, workers: int, threads: int) -> None:
    """Receive webhooks (HubSpot, Salesforce, signals); an inbox worker processes them."""
    cfg = bootstrap.load(ctx.obj["config"])
    bootstrap.build(cfg).close()  # a bad configuration or CRM stops here, before forking
    from webhooks.server import prepare_metrics_dir, serve

    prepare_metrics_dir(cfg)
    err.print(f"renewals serve: listening on http://{bind} ({workers} x {threads} threads)")
    serve(cfg, bind, workers, threads, quiet=logging.getLogger().level > logging.INFO)


@click.command("scheduler")
@click.pass_context
@fatal_errors
def scheduler_cmd(ctx) -> None:
    """Run the scheduled jobs of app.yaml (sync, renewal scan, reconciliation, ...)."""
    cfg = bootstrap.load(ctx.obj["config"])
    bootstrap.build(cfg).close()
    from jobs.scheduler import build_scheduler

    sched = build_scheduler(cfg)
    signal.signal(signal.SIGTERM, lambda *_: sched.shutdown(wait=False))
    jobs = sched.get_jobs()
    err.print(f"renewals scheduler: {len(jobs)} job(s), time zone {cfg.schedule.timezone}")
    for job in jobs:
        err.print(f"  {job.name}: {job.trigger}", markup=False, highlight=False)
    sched.start()
