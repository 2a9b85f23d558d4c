"""The scheduler process: APScheduler 3 with the jobs of app.yaml. Each run first claims its
(job, scheduled slot) row in the state store, so a second scheduler on the same database skips
the slot; then it takes the run lock, so it never overlaps a webhook batch or another run."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from connector import bootstrap, joblog
from connector.config import AppConfig, Job
from connector.runlock import RunLockBusy, run_lock
from connector.services.context import Context
from jobs.tasks import JOBS

log = logging.getLogger(__name__)
#: Interval jobs count from this moment, so every scheduler computes the same slots.
ANCHOR = datetime(2000, 1, 1)


def trigger_for(job: Job, tz: ZoneInfo) -> BaseTrigger:
    if job.cron is not None:
        return CronTrigger.from_crontab(job.cron, timezone=tz)
    seconds = job.interval_seconds or (job.interval_minutes or 0) * 60
    return IntervalTrigger(seconds=seconds, start_date=ANCHOR.replace(tzinfo=tz), timezone=tz)


def current_slot(trigger: BaseTrigger, now: datetime, lookback: timedelta) -> datetime | None:
    """The latest scheduled time at or before `now` (within `lookback`): the slot a run that
    starts now belongs to, the same in every scheduler process."""
    slot = None
    fire = trigger.get_next_fire_time(None, now - lookback)
    while fire is not None and fire <= now:
        slot = fire
        fire = trigger.get_next_fire_time(fire, fire + timedelta(microseconds=1))
    return slot


def run_slot(
    name: str,
    config: AppConfig,
    trigger: BaseTrigger,
    *,
    context_factory: Callable[[], Context],
    runner: str,
    clock: Callable[[], datetime] | None = None,
) -> str:
    """One scheduled run of job `name`; returns what happened (ran, claimed elsewhere, ...)."""
    tz = ZoneInfo(config.schedule.timezone)
    now = clock() if clock else datetime.now(tz)
    grace = config.schedule.effective_jobs()[name].misfire_grace_seconds
    grace = grace or config.schedule.misfire_grace_seconds
    slot = current_slot(trigger, now, timedelta(seconds=grace))
    if slot is None:
        log.warning("%s: no scheduled time within the grace period; skipped", name)
        return "missed"
    ctx = context_factory()
    try:
        if not joblog.claim(ctx.store, name, slot, runner):
            log.info("%s %s: already run by another scheduler", name, slot.isoformat())
            return "claimed"
        try:
            with run_lock(ctx.store, wait=config.schedule.lock_wait_seconds):
                detail = JOBS[name](ctx)
        except RunLockBusy as exc:
            joblog.finish(ctx.store, name, slot, "busy", error=str(exc))
            return "busy"
        except Exception as exc:
            joblog.finish(ctx.store, name, slot, "failed", error=f"{type(exc).__name__}: {exc}")
            log.exception("%s %s failed", name, slot.isoformat())
            return "failed"
        status = detail.get("status", "ok")
        joblog.finish(ctx.store, name, slot, status, detail=detail)
        log.info("%s %s: %s", name, slot.isoformat(), status)
        return status
    finally:
        ctx.close()


def build_scheduler(
    config: AppConfig,
    scheduler: BaseScheduler | None = None,
    context_factory: Callable[[], Context] | None = None,
) -> BaseScheduler:
    """A scheduler with every enabled job: coalesced, one instance at a time, with the grace."""
    tz = ZoneInfo(config.schedule.timezone)
    sched = scheduler or BlockingScheduler(timezone=tz)
    factory = context_factory or (lambda: bootstrap.build(config))
    runner = f"{socket.gethostname()}:{os.getpid()}"
    for name, job in config.schedule.effective_jobs().items():
        if not job.enabled:
            continue
        trigger = trigger_for(job, tz)
        sched.add_job(
            run_slot,
            trigger,
            args=(name, config, trigger),
            kwargs={"context_factory": factory, "runner": runner},
            id=name,
            name=name,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=job.misfire_grace_seconds or config.schedule.misfire_grace_seconds,
            replace_existing=True,
        )
    return sched
