"""`renewals scheduler` tells each job and its next run as it starts, and its runs' lines
name the job, the run and the CRM (JSON logs); `renewals scheduler --list` shows the jobs and
the last outcome of each from the job history, without starting a scheduler."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime

from crm_renewals.connector import bootstrap
from crm_renewals.connector.config import load_config
from tests.conftest import cli_for, write_config
from tests.e2e.test_crash import renewals_cli
from tests.e2e.test_serve_and_scheduler import stop, wait_for

OFF = ("daily_renewal_scan", "daily_playbook_health", "quarterly_qbr_tasks")
SLOT = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


def config(tmp_path):
    jobs = {"incremental_sync": {"interval_seconds": 1}}
    jobs |= {name: {"enabled": False, "cron": "0 0 1 1 *"} for name in OFF}
    return write_config(tmp_path, schedule={"jobs": jobs, "misfire_grace_seconds": 5})


def test_the_scheduler_tells_its_jobs_and_names_the_job_on_each_line_of_its_runs(tmp_path):
    path = config(tmp_path)
    assert _finished_slots(path) == 0  # the state database exists before both open it
    cmd = [*renewals_cli(), "--config", str(path), "-v", "--log-format", "json", "scheduler"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: _finished_slots(path) >= 1, timeout=30, proc=proc)
    finally:
        err = stop(proc)
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]  # each parses
    start = [line for line in lines if line["logger"] == "crm_renewals.connector.cli_common"]
    assert start[0]["message"] == "renewals scheduler: 2 job(s), time zone UTC"
    told = {line["job"]: line for line in start[1:]}
    assert told.keys() == {"incremental_sync", "daily_reconciliation"}
    assert told["incremental_sync"]["schedule"] == "every 1 s"
    assert datetime.fromisoformat(told["daily_reconciliation"]["next_at"]).hour == 2
    (run,) = [line for line in lines if line["message"].startswith("run 1 ")]
    assert run["job"] == "incremental_sync" and run["run_id"] == 1 and run["crm"] == "sandbox"


def _finished_slots(path) -> int:
    store = bootstrap.open_store(load_config(path))
    try:
        return sum(1 for j in store.jobs.list() if j.status != "running")
    finally:
        store.close()


def test_scheduler_list_shows_next_runs_and_the_last_outcome_of_each_job(tmp_path):
    path = config(tmp_path)
    store = bootstrap.open_store(load_config(path))
    try:
        store.jobs.claim("daily_reconciliation", SLOT, "host:1", at=SLOT)
        store.jobs.finish("daily_reconciliation", SLOT, "failed", error="FatalCrmError: 401")
    finally:
        store.close()
    cli = cli_for(path)
    table = cli("scheduler", "--list").stdout
    assert "failed (2026-11-23 02:00 UTC)" in table and "FatalCrmError: 401" in table
    assert "never run" in table and "off" in table
    jobs = {j["job"]: j for j in json.loads(cli("scheduler", "--list", "--json").stdout)}
    assert len(jobs) == 5
    last = jobs["daily_reconciliation"]
    assert last["last_status"] == "failed" and last["last_error"] == "FatalCrmError: 401"
    assert last["last_at"] == SLOT.isoformat() and last["next_at"] is not None
    assert jobs["daily_renewal_scan"]["next_at"] is None
    assert jobs["incremental_sync"]["last_status"] is None


def test_scheduler_check_tells_whether_a_scheduler_beat_lately(tmp_path):
    """`renewals scheduler --check` (the container's health check): 0 while a scheduler beats
    (it sweeps for lapsed claims at start and every schedule.lease_seconds), else 1 and why."""
    path = config(tmp_path)
    cli = cli_for(path)
    never = cli("scheduler", "--check")
    assert never.exit_code == 1
    assert "no scheduler has beaten yet" in never.output
    proc = subprocess.Popen(
        [*renewals_cli(), "--config", str(path), "scheduler"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(lambda: cli("scheduler", "--check").exit_code == 0, timeout=30, proc=proc)
    finally:
        stop(proc)
    beat = tmp_path / "data" / "scheduler.heartbeat"
    assert "scheduler beat" in cli("scheduler", "--check").output
    stale = beat.stat().st_mtime - 3 * 60 - 1  # three leases (60 s) without a beat
    os.utime(beat, (stale, stale))
    late = cli("scheduler", "--check")
    assert late.exit_code == 1 and "no scheduler beat for 18" in late.output
    assert cli("scheduler", "--check", "--max-age", "300").exit_code == 0
