"""The scheduler of a deployment: each job of each runnable connection (APScheduler id
`<connection>:<job>`), from that connection's own configuration (its `schedule`, from
connections/<name>.yaml over app.yaml), its runs claimed in its own state store.

A refresh job (every REFRESH_S) re-reads the registry: a connection connected meanwhile gets
its jobs, one removed or no longer runnable loses them (its work waits), without a restart.
The sweep for lapsed claims runs over every connection; the heartbeat stays the deployment's."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger

from crm_renewals.connector import bootstrap
from crm_renewals.connector.config import AppConfig
from crm_renewals.connector.deployment import Deployment
from crm_renewals.connector.logs import log_context
from crm_renewals.jobs import heartbeat
from crm_renewals.jobs.scheduler import RETAKE_JOB, add_jobs, retake_expired, runner_name

log = logging.getLogger(__name__)
REFRESH_JOB = "refresh_connections"
REFRESH_S = 60


def check_config(config: AppConfig) -> None:
    """A connection's configuration, mapping and CRM adapter build (else the error says why)."""
    bootstrap.build(config).close()


class DeploymentJobs:
    """Keeps the scheduler's jobs in step with the deployment's runnable connections (or only
    the connection `only`)."""

    def __init__(
        self,
        base: AppConfig,
        sched: BaseScheduler,
        *,
        deployment: Deployment | None = None,
        only: str | None = None,
        check: Callable[[AppConfig], None] = check_config,
        factory: Callable[[AppConfig], Callable] = bootstrap.context_factory,
        fire: Callable[..., str] | None = None,
    ):
        self.base, self.sched, self.only, self.fire = base, sched, only, fire
        self.deployment = deployment or Deployment(base)
        self.check, self.factory = check, factory
        self.runner = runner_name()
        #: connection -> (its configuration, its context factory, its job ids)
        self.registered: dict[str, tuple[AppConfig, Callable, list[str]]] = {}
        self._refused: dict[str, str] = {}

    def refresh(self) -> list[str]:
        """Add the jobs of runnable connections not yet scheduled, drop those of connections
        no longer runnable; the connections scheduled now."""
        try:
            runnable = [c for c in self.deployment.runnable() if self.only in (None, c.name)]
        except Exception:  # noqa: BLE001 - the registry briefly unreadable: keep the jobs
            log.warning("scheduler: could not read the connections", exc_info=True)
            return list(self.registered)
        wanted = {c.name: c for c in runnable}
        for name in [n for n in self.registered if n not in wanted]:
            self._drop(name)
            log.info("connection %s is not runnable now: its jobs are off", name)
        for name, conn in wanted.items():
            try:
                cfg = self.deployment.config(conn)
                if name in self.registered and self.registered[name][0] is cfg:
                    continue
                self.check(cfg)
            except Exception as exc:  # noqa: BLE001 - one connection's settings or CRM
                message = f"connection {name} is skipped: {exc}"
                if self._refused.get(name) != message:  # said once, not every refresh
                    self._refused[name] = message
                    log.error("%s", message, extra={"connection": name})
                continue
            self._refused.pop(name, None)
            self._drop(name)
            factory = self.factory(cfg)
            ids = add_jobs(self.sched, cfg, factory, self.runner, self.fire)
            self.registered[name] = (cfg, factory, ids)
            log.info("scheduler: connection %s, %d job(s)", name, len(ids))
        return list(self.registered)

    def _drop(self, name: str) -> None:
        entry = self.registered.pop(name, None)
        for ident in entry[2] if entry else ():
            if self.sched.get_job(ident) is not None:
                self.sched.remove_job(ident)

    def sweep(self) -> None:
        """Each connection's lapsed claims, then the deployment's heartbeat."""
        for name, (cfg, factory, _) in list(self.registered.items()):
            with log_context(connection=name):
                try:
                    retake_expired(cfg, context_factory=factory, runner=self.runner)
                except Exception:  # noqa: BLE001 - one connection's database: the others go on
                    log.warning("scheduler: sweep of connection %s failed", name, exc_info=True)
        heartbeat.beat(self.base)

    def refused(self) -> dict[str, str]:
        """Connections skipped at the last refresh, and why."""
        return dict(self._refused)


def build(
    base: AppConfig,
    scheduler: BaseScheduler | None = None,
    *,
    deployment: Deployment | None = None,
    only: str | None = None,
    check: Callable[[AppConfig], None] = check_config,
    factory: Callable[[AppConfig], Callable] = bootstrap.context_factory,
    kind: Callable[..., DeploymentJobs] | None = None,
) -> DeploymentJobs:
    """A scheduler (BlockingScheduler unless given) with every runnable connection's jobs, the
    refresh job and the sweep (both at once and then periodically). `kind`: what keeps them
    (workers.engine: celery: jobs/celery_schedule.py CeleryJobs, which enqueues each fired
    job instead of running it)."""
    tz = ZoneInfo(base.schedule.timezone)
    sched = scheduler or BlockingScheduler(timezone=tz)
    make = kind or DeploymentJobs
    jobs = make(base, sched, deployment=deployment, only=only, check=check, factory=factory)
    jobs.refresh()
    for ident, fn, seconds in (
        (REFRESH_JOB, jobs.refresh, REFRESH_S),
        (RETAKE_JOB, jobs.sweep, base.schedule.lease_seconds),
    ):
        # the sweep also at once (it beats); next_run_time=None would pause the refresh
        at_once = {"next_run_time": datetime.now(tz)} if ident == RETAKE_JOB else {}
        sched.add_job(
            fn,
            IntervalTrigger(seconds=seconds, timezone=tz),
            id=ident,
            name=ident,
            coalesce=True,
            max_instances=1,
            replace_existing=True,
            **at_once,
        )
    return jobs
