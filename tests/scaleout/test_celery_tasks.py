"""`renewals worker --engine celery` processes run the tasks the Dispatcher enqueues, for
every connection, on PostgreSQL: results land in each connection's own history; a task
delivered twice converges (0 writes the second time); a slot fired by two schedulers runs
once; two workers never run one connection at once (the advisory lock)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from crm_renewals.jobs import celery_app
from crm_renewals.jobs.celery_app import RUN_JOB, SYNC
from crm_renewals.jobs.celery_schedule import CeleryJobs, enqueue_slot
from crm_renewals.jobs.dispatch import Dispatcher
from crm_renewals.jobs.scheduler import trigger_for
from tests.scaleout.conftest import wait_for

SLOT = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)


def finished_runs(store) -> list:
    return [r for r in store.runs.list(limit=100) if r.finished_at is not None]


def job_rows(store, job: str) -> list:
    return store.jobs.list(job)


def test_a_worker_runs_syncs_and_jobs_of_two_connections_into_their_own_history(fleet):
    fleet.worker(concurrency=2)
    dispatch = Dispatcher(fleet.base)
    try:
        assert dispatch.sync("default") and dispatch.sync("second", full=True)
        assert dispatch.job("default", "daily_renewal_scan", SLOT)
        assert dispatch.job("second", "daily_renewal_scan", SLOT)
    finally:
        dispatch.close()
    default, second = fleet.store("default"), fleet.store("second")
    try:
        done = lambda s: (  # noqa: E731
            len(finished_runs(s)) == 2
            and [j.status for j in job_rows(s, "daily_renewal_scan")] in (["ok"], ["partial"])
        )
        wait_for(lambda: done(default) and done(second), procs=fleet.procs)
        for store in (default, second):
            (row,) = job_rows(store, "daily_renewal_scan")
            assert row.scheduled_at == SLOT and row.runner.startswith("celery:")
            first, again = sorted(finished_runs(store), key=lambda r: r.id)
            assert first.counts["created"] > 0  # each connection's own book was renewed
        assert {r.mode for r in finished_runs(second)} == {"full", "incremental"}
    finally:
        default.close()
        second.close()


def test_a_pending_task_is_not_enqueued_twice_until_it_starts(fleet):
    dispatch, other = Dispatcher(fleet.base), Dispatcher(fleet.base)  # two schedulers
    try:
        assert dispatch.sync("default") is True
        assert other.sync("default") is False  # one is waiting already
        assert other.sync("second") is True  # another connection's is its own
        assert dispatch.webhook_batch("default") is True  # another kind is its own
        assert dispatch.job("default", "incremental_sync", SLOT) is True
        assert other.job("default", "incremental_sync", SLOT) is False
        fleet.worker(concurrency=1)
        store = fleet.store("default")
        try:  # once the task has started, a change arriving enqueues the next one
            wait_for(lambda: finished_runs(store), procs=fleet.procs)
            assert dispatch.sync("default") is True
        finally:
            store.close()
    finally:
        dispatch.close()
        other.close()


def send(fleet, task: str, args: list, task_id: str | None = None) -> str:
    """A task straight to the broker, as a redelivery or a duplicate would arrive (no mark)."""
    app = celery_app.make_app(fleet.base)
    task_id = task_id or str(uuid.uuid4())
    with app.connection_for_write() as conn:
        app.send_task(task, args=args, task_id=task_id, queue=fleet.queue, connection=conn)
    return task_id


def test_a_task_delivered_twice_converges_with_no_writes_the_second_time(fleet):
    fleet.worker(concurrency=2)
    twice = str(uuid.uuid4())
    send(fleet, SYNC, ["default", False], twice)
    send(fleet, SYNC, ["default", False], twice)
    job = str(uuid.uuid4())
    send(fleet, RUN_JOB, ["default", "incremental_sync", SLOT.isoformat()], job)
    send(fleet, RUN_JOB, ["default", "incremental_sync", SLOT.isoformat()], job)
    store = fleet.store("default")
    try:
        wait_for(lambda: len(finished_runs(store)) >= 3, procs=fleet.procs)
        wait_for(lambda: fleet.log().count(f"run_job[{job}] succeeded") == 2)
        runs = sorted(finished_runs(store), key=lambda r: r.id)
        assert len(runs) == 3  # two syncs; the job's slot ran once
        assert runs[0].counts["created"] > 0
        for again in runs[1:]:
            assert again.counts["created"] == again.counts["updated"] == 0
            assert again.counts["tasks_created"] == 0
        (row,) = job_rows(store, "incremental_sync")
        assert row.status in ("ok", "partial") and row.runner == f"celery:{job}"
    finally:
        store.close()


def test_a_slot_fired_by_two_schedulers_runs_once(fleet):
    """With marks, the second scheduler's enqueue is refused; without (an amqp broker and no
    redis_url), both tasks go out and the slot's claim lets one run it."""
    base = fleet.base
    job = base.schedule.effective_jobs()["daily_renewal_scan"]
    trigger = trigger_for(job, SLOT.tzinfo)
    at = lambda: SLOT.replace(minute=1)  # noqa: E731 - a minute after the 06:00 slot
    one, two = Dispatcher(base), Dispatcher(base)
    try:
        fired = [enqueue_slot(d, "daily_renewal_scan", base, trigger, clock=at) for d in (one, two)]
        assert fired == ["enqueued", "pending"]
    finally:
        one.close()
        two.close()
    for _ in range(2):  # no marks: the same slot twice, two task ids
        send(fleet, RUN_JOB, ["second", "daily_renewal_scan", SLOT.isoformat()])
    fleet.worker(concurrency=2)
    default, second = fleet.store("default"), fleet.store("second")
    try:
        wait_for(lambda: fleet.log().count("run_job[") >= 6, procs=fleet.procs)
        wait_for(lambda: fleet.log().count("] succeeded") >= 3, procs=fleet.procs)
        for store in (default, second):
            (row,) = job_rows(store, "daily_renewal_scan")
            assert row.status in ("ok", "partial")
            assert len(finished_runs(store)) == 1  # one run of the slot
    finally:
        default.close()
        second.close()


def test_two_workers_never_run_one_connection_at_once(fleet):
    for _ in range(3):  # three syncs of one connection, no marks: all delivered
        send(fleet, SYNC, ["default", False])
    fleet.worker(concurrency=2)
    fleet.worker(concurrency=2)
    store = fleet.store("default")
    try:
        wait_for(lambda: len(finished_runs(store)) == 3, procs=fleet.procs)
        runs = sorted(store.runs.list(limit=100), key=lambda r: r.started_at)
        assert all(r.status != "interrupted" for r in runs)
        for before, after in zip(runs, runs[1:], strict=False):
            assert before.finished_at <= after.started_at  # one at a time
        assert "another run in progress" in fleet.log()  # the others went back to the queue
    finally:
        store.close()


def test_the_sweep_enqueues_connections_with_due_inbox_work(fleet):
    from apscheduler.schedulers.background import BackgroundScheduler

    from crm_renewals.connector.inbox import Inbox

    store = fleet.store("second")
    dispatch = Dispatcher(fleet.base)
    try:
        Inbox(store).receive("signals", b'{"signals": []}')  # stored, its enqueue lost
        jobs = CeleryJobs(fleet.base, BackgroundScheduler(), dispatcher=dispatch)
        jobs.refresh()
        jobs.sweep()
        assert dispatch.webhook_batch("second") is False  # the sweep's is pending
        assert dispatch.webhook_batch("default") is True  # nothing was due there
    finally:
        dispatch.close()
        store.close()


def test_the_scheduler_on_celery_enqueues_each_fired_job_instead_of_running_it(fleet):
    from functools import partial

    from apscheduler.schedulers.background import BackgroundScheduler

    from crm_renewals.jobs import deployment as scheduled

    dispatch = Dispatcher(fleet.base)
    try:
        kind = partial(CeleryJobs, dispatcher=dispatch)
        jobs = scheduled.build(fleet.base, BackgroundScheduler(), kind=kind)
        assert set(jobs.registered) == {"default", "second"}
        job = jobs.sched.get_job("second:incremental_sync")
        assert job.func(*job.args, **job.kwargs) == "enqueued"  # as APScheduler fires it
        assert job.func(*job.args, **job.kwargs) == "pending"  # the other scheduler's turn
        store = fleet.store("second")
        try:
            assert store.jobs.list() == [] and store.runs.list() == []  # nothing ran here
        finally:
            store.close()
    finally:
        dispatch.close()
