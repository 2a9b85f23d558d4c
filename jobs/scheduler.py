"""The scheduler's jobs: APScheduler 3 with the jobs of a connection's configuration (ids
`<connection>:<job>`; jobs/deployment.py keeps every connection's). Each run first claims its
(job, scheduled slot) row in the state store, so a second scheduler on the same database skips
the slot; then it takes the run lock, so it never overlaps a webhook batch or another run."""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from crm_renewals.connector import bootstrap
from crm_renewals.connector.config import AppConfig
from crm_renewals.connector.config_sections import Job
from crm_renewals.connector.logs import log_context
from crm_renewals.connector.services.context import Context
from crm_renewals.connector.state import JobRun, StateStore
from crm_renewals.connector.state.runlock import RunLockBusy, run_lock
from crm_renewals.jobs import heartbeat
from crm_renewals.jobs.tasks import JOBS

log = logging.getLogger(__name__)
#: The scheduler's own job that runs slots whose claim lapsed (see retake_expired).
RETAKE_JOB = "retake_lapsed_claims"
#: Interval jobs count from this moment, so every scheduler computes the same slots.
ANCHOR = datetime(2000, 1, 1)


def scheduled_jobs(config: AppConfig) -> dict[str, Job]:
    """The jobs of `schedule`, and the red digest when `notify` sends one."""
    jobs = config.schedule.effective_jobs()
    at = config.notify.digest_time()
    if at is not None:
        jobs["red_digest"] = Job(cron=f"{at[1]} {at[0]} * * *")
    return jobs


def trigger_for(job: Job, tz: ZoneInfo) -> BaseTrigger:
    if job.cron is not None:
        return CronTrigger.from_crontab(job.cron, timezone=tz)
    seconds = job.interval_seconds or (job.interval_minutes or 0) * 60
    return IntervalTrigger(seconds=seconds, start_date=ANCHOR.replace(tzinfo=tz), timezone=tz)


def describe(job: Job) -> str:
    """A job's schedule in words: its crontab, or its interval."""
    if job.cron is not None:
        return f"cron {job.cron}"
    if job.interval_seconds:
        return f"every {job.interval_seconds} s"
    minutes = job.interval_minutes or 0
    return f"every {minutes} minute{'s' if minutes != 1 else ''}"


@dataclass(frozen=True)
class Upcoming:
    """A scheduled job: its schedule, when it fires next (None: disabled) and, if a
    scheduler ran it, how its last slot went."""

    job: str
    schedule: str
    enabled: bool
    next_at: datetime | None
    last: JobRun | None
    connection: str = "default"

    def to_json(self) -> dict[str, Any]:
        last = self.last
        return {
            "connection": self.connection,
            "job": self.job,
            "schedule": self.schedule,
            "enabled": self.enabled,
            "next_at": _iso(self.next_at),
            "last_status": last.status if last else None,
            "last_at": _iso(last.scheduled_at) if last else None,
            "last_finished_at": _iso(last.finished_at) if last else None,
            "last_error": last.error if last else None,
        }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def upcoming(
    config: AppConfig, store: StateStore | None = None, now: datetime | None = None
) -> list[Upcoming]:
    """Each job of `schedule` with its next fire time from the triggers the scheduler builds
    (no scheduler is started), soonest first, and its last recorded slot (given `store`)."""
    tz = ZoneInfo(config.schedule.timezone)
    moment = (now or datetime.now(tz)).astimezone(tz)
    out = []
    for name, job in scheduled_jobs(config).items():
        fire = trigger_for(job, tz).get_next_fire_time(None, moment) if job.enabled else None
        last = store.jobs.list(name, limit=1) if store is not None else []
        last_run = last[0] if last else None
        out.append(Upcoming(name, describe(job), job.enabled, fire, last_run, config.connection))
    far = datetime.max.replace(tzinfo=UTC)
    return sorted(out, key=lambda u: (u.next_at or far, u.job))


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
    now = clock() if clock else datetime.now(ZoneInfo(config.schedule.timezone))
    slot = slot_now(config, name, trigger, now)
    if slot is None:
        return "missed"
    with log_context(job=name, connection=config.connection):
        return _run_claimed(name, config, slot, context_factory, runner, now)


def _run_claimed(
    name: str,
    config: AppConfig,
    slot: datetime,
    context_factory: Callable[[], Context],
    runner: str,
    now: datetime,
) -> str:
    """Claim `slot` of job `name`, then run it under the run lock; records its outcome."""
    lease = config.schedule.lease_seconds
    ctx = context_factory()
    try:
        if not ctx.store.jobs.claim(name, slot, runner, lease, at=now):
            log.info("%s %s: already run by another scheduler", name, slot.isoformat())
            return "claimed"
        try:
            with (
                heartbeat_of(ctx, name, slot, runner, lease),
                run_lock(ctx.store, wait=config.schedule.lock_wait_seconds),
            ):
                return record_run(name, slot, ctx, runner)
        except RunLockBusy as exc:
            ctx.store.jobs.finish(name, slot, "busy", error=str(exc), runner=runner)
            return "busy"
    finally:
        ctx.close()


def record_run(
    name: str,
    slot: datetime,
    ctx: Context,
    runner: str,
    after: Callable[[], None] | None = None,
) -> str:
    """Run job `name` for its claimed `slot` (the caller holds the run lock and renews the
    claim) and record its outcome, if the claim is still `runner`'s; `after`: called once the
    job's work is done, before its outcome is recorded (a test's hook)."""
    try:
        detail = JOBS[name](ctx)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        ctx.store.jobs.finish(name, slot, "failed", error=error, runner=runner)
        log.exception("%s %s failed", name, slot.isoformat())
        return "failed"
    if after is not None:
        after()
    status = detail.get("status", "ok")
    ctx.store.jobs.finish(name, slot, status, detail=detail, runner=runner)
    log.info("%s %s: %s", name, slot.isoformat(), status)
    return status


def retake_expired(
    config: AppConfig,
    *,
    context_factory: Callable[[], Context],
    runner: str,
    clock: Callable[[], datetime] | None = None,
) -> dict[str, str]:
    """Run the slots whose claim lapsed (their scheduler died mid-run) if each is still its
    job's current slot within the misfire grace; job -> what happened."""
    tz = ZoneInfo(config.schedule.timezone)
    now = clock() if clock else datetime.now(tz)
    ctx = context_factory()
    try:
        lapsed = ctx.store.jobs.lapsed(at=now)
    finally:
        ctx.close()
    done: dict[str, str] = {}
    for name, slot, trigger in retakeable(config, lapsed, now):
        log.warning("%s %s: its scheduler stopped mid-run; running it again", name, slot)
        done[name] = run_slot(
            name, config, trigger, context_factory=context_factory, runner=runner, clock=clock
        )
    return done


def retakeable(
    config: AppConfig, lapsed: list[tuple[str, datetime]], now: datetime
) -> Iterator[tuple[str, datetime, BaseTrigger]]:
    """Of the lapsed (job, slot) claims, those still their enabled job's current slot within
    its misfire grace (else a later slot is due, or it is too late: not run again); each with
    its job's trigger."""
    tz = ZoneInfo(config.schedule.timezone)
    jobs = scheduled_jobs(config)
    for name, slot in lapsed:
        job = jobs.get(name)
        if job is None or not job.enabled or name not in JOBS:
            continue
        trigger = trigger_for(job, tz)
        if current_slot(trigger, now, timedelta(seconds=grace(config, name))) == slot:
            yield name, slot, trigger


def slot_now(config: AppConfig, name: str, trigger: BaseTrigger, now: datetime) -> datetime | None:
    """The slot job `name` fired for at `now` (None, said in the log: none within its grace)."""
    slot = current_slot(trigger, now, timedelta(seconds=grace(config, name)))
    if slot is None:
        log.warning("%s: no scheduled time within the grace period; skipped", name)
    return slot


def grace(config: AppConfig, name: str) -> int:
    """How late job `name` may still run (its misfire grace, else schedule's)."""
    job = scheduled_jobs(config).get(name)
    return (job and job.misfire_grace_seconds) or config.schedule.misfire_grace_seconds


@contextmanager
def heartbeat_of(ctx: Context, name: str, slot: datetime, runner: str, lease: float):
    """Renew the claim every third of its lease while the job runs (a daemon thread: it dies
    with the process, and then the claim lapses)."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(lease / 3):
            try:
                if not ctx.store.jobs.renew(name, slot, runner, lease):
                    log.warning("%s %s: the claim was taken over by another scheduler", name, slot)
                    return
            except Exception:  # a busy database: try again at the next beat
                log.warning("%s %s: could not renew the claim", name, slot, exc_info=True)

    thread = threading.Thread(target=beat, name=f"lease-{name}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def sweep(config: AppConfig, *, context_factory: Callable[[], Context], runner: str) -> None:
    """The lapsed claims' sweep, then the heartbeat (this scheduler runs and its database
    answers)."""
    retake_expired(config, context_factory=context_factory, runner=runner)
    heartbeat.beat(config)


def build_scheduler(
    config: AppConfig,
    scheduler: BaseScheduler | None = None,
    context_factory: Callable[[], Context] | None = None,
) -> BaseScheduler:
    """A scheduler with every enabled job of one connection's configuration (jobs/deployment.py
    builds the scheduler of every connection): coalesced, one instance at a time, with the
    grace."""
    tz = ZoneInfo(config.schedule.timezone)
    sched = scheduler or BlockingScheduler(timezone=tz)
    factory = context_factory or bootstrap.context_factory(config)
    runner = runner_name()
    # at start and every lease: run the slots of schedulers that died mid-run, then beat
    sched.add_job(
        sweep,
        IntervalTrigger(seconds=config.schedule.lease_seconds, timezone=tz),
        args=(config,),
        kwargs={"context_factory": factory, "runner": runner},
        id=RETAKE_JOB,
        name=RETAKE_JOB,
        coalesce=True,
        max_instances=1,
        next_run_time=datetime.now(tz),
        replace_existing=True,
    )
    add_jobs(sched, config, factory, runner)
    return sched


def runner_name() -> str:
    """Who claims a slot: this host and process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def job_id(connection: str, name: str) -> str:
    """The APScheduler id of a connection's job: `<connection>:<job>`."""
    return f"{connection}:{name}"


def add_jobs(
    sched: BaseScheduler,
    config: AppConfig,
    factory: Callable[[], Context],
    runner: str,
    fire: Callable[..., str] | None = None,
) -> list[str]:
    """Add the enabled jobs of `config`'s connection (ids `<connection>:<job>`); their ids.
    Each runs its slot here, or calls `fire(name, config, trigger)` (workers.engine: celery,
    which enqueues it)."""
    tz = ZoneInfo(config.schedule.timezone)
    ids = []
    for name, job in scheduled_jobs(config).items():
        if not job.enabled:
            continue
        trigger = trigger_for(job, tz)
        ident = job_id(config.connection, name)
        sched.add_job(
            fire or run_slot,
            trigger,
            args=(name, config, trigger),
            kwargs={} if fire else {"context_factory": factory, "runner": runner},
            id=ident,
            name=ident,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=job.misfire_grace_seconds or config.schedule.misfire_grace_seconds,
            replace_existing=True,
        )
        ids.append(ident)
    return ids
