"""`renewals serve` (webhook receiver under gunicorn, with the inbox worker),
`renewals worker` (the inbox worker alone) and `renewals scheduler` (the scheduled jobs, in
their own process). Registered by connector.cli."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
from collections.abc import Mapping
from functools import partial

import click
from rich.table import Table

from crm_renewals.connector import bootstrap
from crm_renewals.connector.cli_common import (
    base_config_of,
    config_of,
    fatal_errors,
    json_option,
    out,
    tell,
)
from crm_renewals.connector.config import AppConfig, find_config
from crm_renewals.connector.connections import DEFAULT
from crm_renewals.connector.errors import ConfigError, ConnectorError

log = logging.getLogger(__name__)


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
    """Receive webhooks (HubSpot, Salesforce, signals) for every connection; an inbox worker
    processes them."""
    base = base_config_of(ctx)
    served = checked_connections(base)  # a bad configuration or CRM is said here, before forking
    from crm_renewals.webhooks.server import prepare_metrics_dir, renewals_argv, serve

    prepare_metrics_dir(base)  # before anything imports prometheus_client (workers fork here)
    quiet = logging.getLogger().level > logging.INFO
    config = str(find_config(ctx.obj["config"]).resolve())
    celery = base.workers.engine == "celery"  # no inbox worker: Celery workers run the inboxes
    argv = (
        None
        if celery
        else renewals_argv(
            "--config",
            config,
            *([] if quiet else ["-v"]),
            *("--log-format", ctx.obj["log_format"]),
            "worker",
            "--with-parent",
        )
    )
    tell(
        f"renewals serve: listening on http://{bind} "
        f"({workers} gevent workers, {threads} requests each at once)",
        bind=bind,
        workers=workers,
        threads=threads,
    )
    tell(
        f"renewals serve: connections {', '.join(served) or 'none runnable'}",
        connections=served,
    )
    if celery:
        tell(
            f"renewals serve: webhook batches are enqueued to Celery (queue "
            f"{base.workers.queue}.webhooks): run `renewals worker --engine celery`"
        )
    for source, message in unsigned_sources(base, os.environ):
        log.warning("%s", message, extra={"source": source})
    serve(base, bind, workers, threads, quiet, argv)


#: beyond this many connections, start-up checks settings and mappings, not adapters and stores
FULL_CHECK_MAX = 25


def checked_connections(
    base: AppConfig, only: str | None = None, waiting: str = "its deliveries are stored and wait"
) -> list[str]:
    """The runnable connections whose configuration and CRM adapter build (beyond
    FULL_CHECK_MAX: whose settings and mapping load); each one that does not is said in one line
    and skipped, fatal when it is the only one. Those not runnable are said too."""
    from crm_renewals.connector.deployment import Deployment
    from crm_renewals.connector.mapping_file import load_mapping

    deployment = Deployment(base)
    try:
        conns = [c for c in deployment.connections() if only in (None, c.name)]
        runnable = [c for c in conns if c.runnable]
        for conn in conns:
            if not conn.runnable:
                tell(
                    f"connection {conn.name}: {conn.status}: not served until connected "
                    f"({waiting})",
                    logging.WARNING,
                    connection=conn.name,
                )
        full = len(runnable) <= FULL_CHECK_MAX
        if not full:
            tell(
                f"{len(runnable)} connections: each one's settings and mapping are checked now, "
                "its CRM adapter and state store when its work runs (`renewals doctor` checks)"
            )
        good = []
        for conn in runnable:
            try:
                cfg = deployment.config(conn)
                if full:
                    bootstrap.build(cfg).close()
                else:
                    load_mapping(cfg.mapping_path, expect_crm=cfg.crm)
            except ConnectorError as exc:
                if len(runnable) == 1:
                    raise
                tell(
                    f"connection {conn.name} is skipped: {type(exc).__name__}: {exc}",
                    logging.ERROR,
                    connection=conn.name,
                )
                continue
            good.append(conn.name)
        return good
    finally:
        deployment.close()


#: a HubSpot public app's client secret: it signs the webhooks of OAuth connections
PUBLIC_APP_SECRET = "HUBSPOT_APP_CLIENT_SECRET"
#: webhook source -> the environment variable of its signature secret, and who gives it
SIGNING_SECRETS = {
    "hubspot": (
        "HUBSPOT_CLIENT_SECRET",
        "the HubSpot private app's client secret (or HUBSPOT_APP_CLIENT_SECRET to the public "
        "app's)",
    ),
    "signals": ("SIGNALS_WEBHOOK_SECRET", "the secret your signal senders sign with"),
}


def unsigned_sources(config: AppConfig, env: Mapping[str, str]) -> list[tuple[str, str]]:
    """(source, warning) for each webhook source that refuses every delivery because what
    checks it is unset (webhooks/verify.py: no secret, no signature check, a 401)."""
    out = []
    for source, (name, what) in SIGNING_SECRETS.items():
        if env.get(name) or (source == "hubspot" and env.get(PUBLIC_APP_SECRET)):
            continue
        message = (
            f"{source} webhooks: {name} is not set, so every delivery to "
            f"/webhooks/{source} is refused (401); set {name} to {what}"
        )
        out.append((source, message))
    # (a Salesforce connection connected by OAuth brings its org id: not known here, so the
    # warning stands for app.yaml's own)
    if not (env.get("SALESFORCE_ORG_ID") or config.webhooks.salesforce_org_id):
        out.append(
            (
                "salesforce",
                "salesforce webhooks: no organization id is set, so every outbound message to "
                "/webhooks/salesforce is refused (401, SOAP fault); set SALESFORCE_ORG_ID (or "
                "webhooks.salesforce_org_id in app.yaml) to your org's id",
            )
        )
    return out


@click.command("worker")
@click.option("--with-parent", is_flag=True, hidden=True, help="Stop when the parent stops.")
@click.option(
    "--engine",
    type=click.Choice(["local", "celery"]),
    default=None,
    help="local: process the stored webhook deliveries here; celery: run the tasks (sync, "
    "webhook_batch, run_job) the scheduler and `renewals serve` enqueue. Default: "
    "app.yaml's workers.engine (local unless set).",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 256),
    default=None,
    help="--engine celery: tasks run at once (threads; default 2).",
)
@click.pass_context
@fatal_errors
def worker_cmd(ctx, with_parent: bool, engine: str | None, concurrency: int | None) -> None:
    """Process stored webhook deliveries of every connection (`renewals serve` runs one for
    you); --connection NAME: that connection's alone. --engine celery: a Celery worker of the
    deployment's queue, on any number of machines."""
    base = base_config_of(ctx)
    if (engine or base.workers.engine) == "celery":
        _celery_worker(ctx, concurrency or 2)
        return
    if concurrency is not None:
        raise click.UsageError("--concurrency is for --engine celery", ctx)
    only = named_connection(ctx)
    from crm_renewals.webhooks.server import worker_pid_file
    from crm_renewals.webhooks.worker import InboxWorker

    os.nice(base.webhooks.worker_nice)  # acknowledging deliveries comes first
    worker = InboxWorker(base, only=only)
    for stop_signal in (signal.SIGTERM, signal.SIGINT):  # finish the batch in hand, then exit
        signal.signal(stop_signal, lambda *_: worker.stop())
    if with_parent:
        _stop_with_parent(worker)
    pid_file = worker_pid_file(base)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.write_text(str(os.getpid()))
    tell(f"renewals worker: processing webhook deliveries (pid {os.getpid()})")
    try:
        worker.run()
    finally:
        if pid_file.exists() and pid_file.read_text() == str(os.getpid()):
            pid_file.unlink()


def _celery_worker(ctx: click.Context, concurrency: int) -> None:
    """`renewals worker --engine celery`: every connection's tasks, from the shared queue."""
    if ctx.find_root().obj.get("connection"):
        raise click.UsageError(
            "--connection does not apply to --engine celery: workers take every connection's "
            "tasks from the queue",
            ctx,
        )
    base = base_config_of(ctx)
    from crm_renewals.jobs.celery_worker import run_worker

    w = base.workers
    tell(
        f"renewals worker: Celery worker, {concurrency} thread(s), queues {w.queue} and "
        f"{w.queue}.webhooks (pid {os.getpid()})",
        concurrency=concurrency,
        queue=w.queue,
    )
    ctx.exit(run_worker(base, concurrency))


def named_connection(ctx: click.Context) -> str | None:
    """The connection --connection names (checked: it exists), else None: all of them. The
    long-running processes serve every connection unless told otherwise on the command line
    ($RENEWALS_CONNECTION is for one-off commands)."""
    name = ctx.find_root().obj.get("connection")
    if name:
        config_of(ctx)  # an unknown name: one clear line listing the connections
    return name


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
@click.option(
    "--list",
    "list_jobs",
    is_flag=True,
    help="Show the jobs, their next run and last outcome, and exit (no scheduler is started).",
)
@click.option(
    "--check",
    is_flag=True,
    help="Exit 0 if a scheduler beat lately (a health check), else 1; no scheduler is started.",
)
@click.option(
    "--max-age",
    type=click.FloatRange(min=1),
    help="With --check: seconds since the last beat (default: 3 x schedule.lease_seconds).",
)
@json_option
@click.pass_context
@fatal_errors
def scheduler_cmd(ctx, list_jobs: bool, check: bool, max_age: float | None, as_json: bool) -> None:
    """Run the scheduled jobs (sync, renewal scan, reconciliation, ...) of every connection,
    each from its own configuration; --connection NAME: that connection's alone."""
    base = base_config_of(ctx)
    from crm_renewals.jobs import heartbeat

    if check:
        ok, line = heartbeat.check(base, max_age)
        click.echo(line)
        ctx.exit(0 if ok else 1)
    only = named_connection(ctx)
    if list_jobs or as_json:
        _print_jobs(_listed(base, only), base.schedule.timezone, as_json)
        return
    from crm_renewals.jobs import deployment as scheduled
    from crm_renewals.jobs.scheduler import upcoming

    checked_connections(base, only, "its jobs do not run")  # the only one failing stops here
    kind = None
    if base.workers.engine == "celery":  # each fired job is enqueued for the Celery workers
        from crm_renewals.jobs.celery_schedule import CeleryJobs
        from crm_renewals.jobs.dispatch import Dispatcher

        kind = partial(CeleryJobs, dispatcher=Dispatcher(base))
        tell(f"renewals scheduler: jobs are enqueued to Celery (queue {base.workers.queue})")
    jobs = scheduled.build(base, only=only, kind=kind)
    sched = jobs.sched
    signal.signal(signal.SIGTERM, lambda *_: sched.shutdown(wait=False))
    names = list(jobs.registered)
    each = [j for name in names for j in upcoming(jobs.registered[name][0]) if j.enabled]
    several = names != [DEFAULT]
    of = f" of connections {', '.join(names) or 'none'}" if several else ""
    tell(f"renewals scheduler: {len(each)} job(s){of}, time zone {base.schedule.timezone}")
    for job in each:
        ident = f"{job.connection}:{job.job}" if several else job.job
        tell(
            f"  {ident}: {job.schedule}, next run {job.next_at:%Y-%m-%d %H:%M:%S %Z}",
            job=job.job,
            connection=job.connection,
            schedule=job.schedule,
            next_at=job.next_at.isoformat(),
        )
    sched.start()


def _listed(base: AppConfig, only: str | None) -> list:
    """`scheduler --list`: the jobs of each runnable connection (or of `only`), with the last
    outcome from its own state store; connections skipped are said on stderr."""
    from crm_renewals.connector.deployment import Deployment
    from crm_renewals.jobs.scheduler import upcoming

    deployment = Deployment(base)
    out = []
    try:
        for conn in deployment.connections():
            if only not in (None, conn.name):
                continue
            if not conn.runnable:
                tell(f"connection {conn.name}: {conn.status}: no jobs run", connection=conn.name)
                continue
            try:
                cfg = deployment.config(conn)
            except ConfigError as exc:
                if only is not None:
                    raise
                tell(f"connection {conn.name} is skipped: {exc}", connection=conn.name)
                continue
            out += upcoming(cfg, deployment.store(conn))
    finally:
        deployment.close()
    return out


def _print_jobs(jobs, timezone: str, as_json: bool) -> None:
    """`scheduler --list`: each job, its next run and its last recorded slot."""
    if as_json:
        click.echo(json.dumps([j.to_json() for j in jobs]))
        return
    several = {j.connection for j in jobs} != {DEFAULT}
    head = ("connection",) if several else ()
    table = Table(*head, "job", "schedule", "next run", "last", "error", title=f"Jobs ({timezone})")
    for j in jobs:
        last = j.last
        table.add_row(
            *((j.connection,) if several else ()),
            j.job,
            j.schedule,
            f"{j.next_at:%Y-%m-%d %H:%M}" if j.next_at else "off",
            f"{last.status} ({last.scheduled_at:%Y-%m-%d %H:%M} UTC)" if last else "never run",
            (last.error or "") if last else "",
        )
    out.print(table)


COMMANDS = (serve_cmd, worker_cmd, scheduler_cmd)
