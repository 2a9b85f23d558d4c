"""The scheduler's claims on PostgreSQL: the lease tests (tests/unit/test_job_leases.py) run
here unchanged, and two schedulers (two engines) racing for one slot: it is claimed once, and
a lapsed lease is taken over once."""

from __future__ import annotations

from datetime import timedelta

import pytest

from crm_renewals.connector.state import StateStore
from tests.postgres.at_once import at_once
from tests.unit.test_job_leases import (  # noqa: F401
    SLOT,
    test_a_claim_past_the_grace_is_left_for_the_next_slot,
    test_a_dead_schedulers_slot_is_run_by_another_once_its_lease_lapses,
    test_a_live_claim_keeps_the_slot_from_a_second_scheduler,
    test_a_running_job_renews_its_lease_so_it_is_not_taken_over,
    test_the_sweep_runs_slots_whose_claim_lapsed_within_the_grace,
)

pytestmark = pytest.mark.usefixtures("on_postgres")
JOB = "daily_renewal_scan"


def race(url: str, attempt, schedulers: int = 4) -> list[bool]:
    """`attempt(store, runner)` by several schedulers at once, each on its own engine."""
    stores = [StateStore(url) for _ in range(schedulers)]
    won = at_once(lambda i: attempt(stores[i], f"scheduler-{i}"), schedulers)
    for s in stores:
        s.close()
    return won


def test_schedulers_racing_for_one_slot_claim_it_once(postgres_url, pg_store):
    won = race(postgres_url, lambda store, runner: store.jobs.claim(JOB, SLOT, runner, 60))
    assert won.count(True) == 1
    (row,) = pg_store.jobs.list()
    assert (row.runner, row.status) == (f"scheduler-{won.index(True)}", "running")


def test_schedulers_racing_for_a_lapsed_slot_take_it_over_once(postgres_url, pg_store):
    assert pg_store.jobs.claim(JOB, SLOT, "dead:1", 60, at=SLOT)
    later = SLOT + timedelta(seconds=120)  # the dead scheduler's lease has lapsed

    def take_over(store, runner):
        return store.jobs.claim(JOB, SLOT, runner, 60, at=later)

    won = race(postgres_url, take_over)
    assert won.count(True) == 1
    (row,) = pg_store.jobs.list()
    assert row.runner == f"scheduler-{won.index(True)}"
    assert pg_store.jobs.lapsed(later) == []
