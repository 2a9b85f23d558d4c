"""Schedules in app.yaml (errors with their key path, via `renewals config check`) and the
scheduler's slots: one run per (job, scheduled time), whichever scheduler gets there first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from click.testing import CliRunner

from crm_renewals.connector import bootstrap
from crm_renewals.connector.cli import main
from crm_renewals.connector.config import load_config
from crm_renewals.connector.config_sections import Job
from crm_renewals.jobs.scheduler import (
    RETAKE_JOB,
    build_scheduler,
    current_slot,
    run_slot,
    trigger_for,
)
from tests.conftest import write_config


def check(tmp_path, **sections):
    path = write_config(tmp_path, **sections)
    return CliRunner().invoke(main, ["--config", str(path), "config", "check"])


def test_job_schedule_errors_name_their_key_path(tmp_path):
    result = check(
        tmp_path,
        schedule={
            "timezone": "Mars/Olympus",
            "jobs": {
                "daily_renewal_scan": {"cron": "0 25 * * *"},
                "incremental_sync": {"cron": "0 * * * *", "interval_minutes": 5},
                "nightly_backup": {"cron": "0 1 * * *"},
                "daily_reconciliation": {"interval_minutes": 0},
            },
        },
        webhooks={"dedupe_hours": 24},
    )
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "schedule.jobs.daily_renewal_scan.cron: not a valid crontab expression" in text
    assert "schedule.jobs.incremental_sync: give exactly one of `cron`" in text
    assert "schedule.jobs.nightly_backup: unknown job" in text
    assert "schedule.jobs.daily_reconciliation.interval_minutes" in text
    assert "schedule.timezone: unknown time zone 'Mars/Olympus'" in text
    assert "webhooks.dedupe_hours" in text


def test_shipped_schedule_has_every_job_and_validates(tmp_path):
    assert check(tmp_path).exit_code == 0
    jobs = load_config(write_config(tmp_path)).schedule.effective_jobs()
    assert set(jobs) == {
        "incremental_sync",
        "daily_renewal_scan",
        "daily_playbook_health",
        "quarterly_qbr_tasks",
        "daily_reconciliation",
    }
    assert jobs["incremental_sync"].interval_minutes == 15


def test_scheduler_jobs_are_coalesced_single_instance_with_the_grace(tmp_path):
    from apscheduler.schedulers.background import BackgroundScheduler

    cfg = load_config(write_config(tmp_path, schedule={"misfire_grace_seconds": 120}))
    sched = build_scheduler(cfg, BackgroundScheduler(timezone="UTC"))
    jobs = {j.id: j for j in sched.get_jobs() if j.id != RETAKE_JOB}
    assert len(jobs) == 5
    for job in jobs.values():
        assert (job.coalesce, job.max_instances, job.misfire_grace_time) == (True, 1, 120)


def test_slot_is_the_latest_scheduled_time_at_or_before_now():
    tz = ZoneInfo("UTC")
    every_15 = trigger_for(Job(interval_minutes=15), tz)
    now = datetime(2026, 11, 23, 10, 7, 30, tzinfo=UTC)
    assert current_slot(every_15, now, timedelta(minutes=15)) == now.replace(minute=0, second=0)
    daily = trigger_for(Job(cron="0 6 * * *"), tz)
    late = datetime(2026, 11, 23, 6, 10, tzinfo=UTC)
    assert current_slot(daily, late, timedelta(minutes=15)) == late.replace(minute=0)
    assert current_slot(daily, late, timedelta(minutes=5)) is None  # beyond the grace


def test_a_slot_runs_once_however_many_schedulers_fire_it(tmp_path):
    cfg = load_config(write_config(tmp_path))
    trigger = trigger_for(Job(interval_minutes=15), ZoneInfo("UTC"))
    at = datetime(2026, 11, 23, 10, 0, 5, tzinfo=UTC)

    def factory():
        return bootstrap.build(cfg)

    kw = {"context_factory": factory, "clock": lambda: at}
    assert run_slot("incremental_sync", cfg, trigger, runner="a", **kw) == "ok"
    assert run_slot("incremental_sync", cfg, trigger, runner="b", **kw) == "claimed"
    ctx = factory()
    try:
        (row,) = ctx.store.jobs.list()
        assert (row.runner, row.status, row.scheduled_at) == (
            "a",
            "ok",
            datetime(2026, 11, 23, 10, 0, tzinfo=UTC),
        )
        assert len(ctx.store.runs.list()) == 1
    finally:
        ctx.close()
