"""A scheduler that dies holding a slot does not keep it: its claim is a lease, renewed while
the job runs; once it lapses another scheduler runs the slot."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from crm_renewals.connector import bootstrap
from crm_renewals.connector.config import load_config
from crm_renewals.connector.config_sections import Job
from crm_renewals.jobs.scheduler import retake_expired, run_slot, trigger_for
from tests.conftest import write_config

SLOT = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)


def setup(tmp_path, lease: int = 60):
    cfg = load_config(write_config(tmp_path, schedule={"lease_seconds": lease}))
    trigger = trigger_for(Job(cron="0 6 * * *"), ZoneInfo("UTC"))
    return cfg, trigger, (lambda: bootstrap.build(cfg))


def rows(factory):
    ctx = factory()
    try:
        return ctx.store.jobs.list()
    finally:
        ctx.close()


def dead_claim(factory, at: datetime) -> None:
    """Scheduler `dead` claims the slot at `at`, then is killed: no heartbeat, no finish."""
    ctx = factory()
    try:
        assert ctx.store.jobs.claim("daily_renewal_scan", SLOT, "dead:1", 60, at=at)
    finally:
        ctx.close()


def test_a_live_claim_keeps_the_slot_from_a_second_scheduler(tmp_path):
    cfg, trigger, factory = setup(tmp_path)
    dead_claim(factory, SLOT + timedelta(seconds=1))
    at = SLOT + timedelta(seconds=30)  # within the lease
    outcome = run_slot(
        "daily_renewal_scan", cfg, trigger, context_factory=factory, runner="b", clock=lambda: at
    )
    assert outcome == "claimed"
    assert [(r.runner, r.status) for r in rows(factory)] == [("dead:1", "running")]


def test_a_dead_schedulers_slot_is_run_by_another_once_its_lease_lapses(tmp_path):
    cfg, trigger, factory = setup(tmp_path)
    dead_claim(factory, SLOT + timedelta(seconds=1))
    at = SLOT + timedelta(seconds=120)  # the lease (60 s) has lapsed: no heartbeat since
    outcome = run_slot(
        "daily_renewal_scan", cfg, trigger, context_factory=factory, runner="b", clock=lambda: at
    )
    assert outcome == "ok"
    ((runner, status, slot),) = [(r.runner, r.status, r.scheduled_at) for r in rows(factory)]
    assert (runner, status, slot) == ("b", "ok", SLOT)


def test_the_sweep_runs_slots_whose_claim_lapsed_within_the_grace(tmp_path):
    cfg, _, factory = setup(tmp_path)
    dead_claim(factory, SLOT + timedelta(seconds=1))
    at = SLOT + timedelta(seconds=90)
    assert retake_expired(cfg, context_factory=factory, runner="b", clock=lambda: at) == {
        "daily_renewal_scan": "ok"
    }
    assert [(r.runner, r.status) for r in rows(factory)] == [("b", "ok")]
    # nothing left to take: a second sweep does nothing
    assert retake_expired(cfg, context_factory=factory, runner="c", clock=lambda: at) == {}


def test_a_claim_past_the_grace_is_left_for_the_next_slot(tmp_path):
    cfg, _, factory = setup(tmp_path)
    dead_claim(factory, SLOT + timedelta(seconds=1))
    late = SLOT + timedelta(seconds=cfg.schedule.misfire_grace_seconds + 3600)
    assert retake_expired(cfg, context_factory=factory, runner="b", clock=lambda: late) == {}


def test_a_running_job_renews_its_lease_so_it_is_not_taken_over(tmp_path):
    cfg, _, factory = setup(tmp_path)
    ctx = factory()
    try:
        start = SLOT + timedelta(seconds=1)
        assert ctx.store.jobs.claim("daily_renewal_scan", SLOT, "a", 60, at=start)
        later = start + timedelta(seconds=50)
        assert ctx.store.jobs.renew("daily_renewal_scan", SLOT, "a", 60, at=later)
        after_first_lease = start + timedelta(seconds=90)
        assert not ctx.store.jobs.claim("daily_renewal_scan", SLOT, "b", 60, at=after_first_lease)
        assert not ctx.store.jobs.renew("daily_renewal_scan", SLOT, "b", 60, at=later)
    finally:
        ctx.close()
