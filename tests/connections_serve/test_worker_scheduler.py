"""The inbox worker and the scheduler serve every runnable connection, each with its own
Context and state store: nothing crosses, a new connection is picked up without a restart,
one failing connection holds up none of the others."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler

from crm_renewals.connector import bootstrap, connections
from crm_renewals.connector.deployment import Deployment
from crm_renewals.connector.inbox import Inbox
from crm_renewals.connector.services import connections as manage
from crm_renewals.connector.services import sync
from crm_renewals.connector.services.sync import today
from crm_renewals.jobs import deployment as scheduled
from crm_renewals.jobs.scheduler import run_slot, trigger_for
from crm_renewals.webhooks.worker import InboxWorker
from tests.conftest import Book
from tests.connections_serve.conftest import batch
from tests.webhooks.test_processing import outbound, wait_for


def active_contract(base, stores, name: str, skip: int = 0) -> str:
    """A contract due for renewal in `name`'s own sandbox, synced as a draft, then activated
    (after `skip` accounts: ids differing from another sandbox's)."""
    cfg = connections.configuration(base, connections.choose(base, stores.registry, name))
    ctx = bootstrap.build(cfg)
    try:
        book = Book(ctx.crm)
        for _ in range(skip):
            book.contract(book.account(), today() + timedelta(days=900), status="Draft")
        cid = book.contract(book.account(), today() + timedelta(days=100), status="Draft")
        sync(ctx)
        ctx.crm.edit("Contract", cid, {"Status": "Activated"})
    finally:
        ctx.close()
    return cid


ALL_SANDBOX = ("default", "second")


def renewals_of(base, stores, name: str) -> list[str]:
    cfg = connections.configuration(base, connections.choose(base, stores.registry, name))
    ctx = bootstrap.build(cfg)
    try:
        return [o["Renewal_Contract__c"] for o in Book(ctx.crm).opportunities()]
    finally:
        ctx.close()


def statuses(stores, name: str) -> list[str]:
    return [r.status for r in Inbox(stores[name]).all()]


def test_the_worker_drains_every_connection_with_no_state_crossing(base, stores):
    mine = {name: active_contract(base, stores, name, i) for i, name in enumerate(ALL_SANDBOX)}
    assert mine["default"] != mine["second"]
    for name, cid in mine.items():
        Inbox(stores[name]).receive("salesforce", outbound(cid))
    # hs-a is connected but cannot build (no token): it fails, the others go on
    stores.inbox("hs-a").receive("hubspot", batch((1, "111", 10)))
    worker = InboxWorker(base, deployment=Deployment(base, refresh_seconds=0.05)).start()
    try:
        wait_for(lambda: statuses(stores, "default") == ["done"])
        wait_for(lambda: statuses(stores, "second") == ["done"])
    finally:
        worker.stop()
    for name, cid in mine.items():
        assert renewals_of(base, stores, name) == [cid]  # its own sandbox, its own contract
        runs = stores[name].runs.list()
        assert [r.mode for r in runs] == ["webhook", "incremental"]
        other = mine["second" if name == "default" else "default"]
        written = repr(stores[name].ledger.load())
        assert cid in written and other not in written
    assert stores["hs-a"].deliveries.waiting() == 1  # nothing lost: it waits
    assert stores["hs-a"].runs.list() == []
    assert worker.lanes["hs-a"].failures >= 1


def test_a_connection_added_while_the_worker_runs_is_drained(base, stores, registry):
    worker = InboxWorker(base, deployment=Deployment(base, refresh_seconds=0.05)).start()
    try:
        wait_for(lambda: "second" in worker.lanes)
        manage.add(base, registry, "third", "sandbox", "test")
        cid = active_contract(base, stores, "third")
        Inbox(stores["third"]).receive("salesforce", outbound(cid))
        wait_for(lambda: statuses(stores, "third") == ["done"])
        # not runnable any more: its lane goes, its deliveries wait
        row = registry.connections.get("third")
        registry.connections.save(row.replace(status=connections.NEEDS_RECONNECT))
        wait_for(lambda: "third" not in worker.lanes)
        Inbox(stores["third"]).receive("salesforce", outbound(cid, "04l000000000XyZAAU"))
    finally:
        worker.stop()
    assert stores["third"].deliveries.waiting() == 1
    assert "hs-p" not in worker.lanes  # pending: never drained


def test_worker_limited_to_one_connection_leaves_the_others(base, stores):
    cid = active_contract(base, stores, "second")
    Inbox(stores["second"]).receive("salesforce", outbound(cid))
    Inbox(stores["default"]).receive("salesforce", outbound(cid))
    worker = InboxWorker(base, only="second", deployment=Deployment(base, refresh_seconds=0.05))
    worker.start()
    try:
        wait_for(lambda: statuses(stores, "second") == ["done"])
    finally:
        worker.stop()
    assert list(worker.lanes) == ["second"]
    assert stores["default"].deliveries.waiting() == 1


def schedule_file(base, name: str, minutes: int) -> None:
    path = connections.overrides_path(base, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"schedule:\n  jobs:\n    incremental_sync:\n      interval_minutes: {minutes}\n"
    )


def test_the_scheduler_registers_each_connections_jobs_and_picks_up_new_ones(base, registry):
    schedule_file(base, "second", 7)
    sched = BackgroundScheduler(timezone="UTC")
    jobs = scheduled.build(base, sched, deployment=Deployment(base, refresh_seconds=0))
    ids = {j.id for j in sched.get_jobs()}
    assert {"default:incremental_sync", "second:incremental_sync"} <= ids
    assert {"refresh_connections", "retake_lapsed_claims"} <= ids
    assert not any(i.startswith(("hs-", "sf-")) for i in ids)  # no token / pending: skipped
    # said, skipped: an OAuth connection without stored tokens cannot run (bootstrap's check,
    # before its settings are read)
    assert "connection hs-a needs reconnecting" in jobs.refused()["hs-a"]
    own = sched.get_job("second:incremental_sync").trigger.interval
    assert own == timedelta(minutes=7)  # connections/second.yaml's schedule
    assert sched.get_job("default:incremental_sync").trigger.interval == timedelta(minutes=15)

    manage.add(base, registry, "third", "sandbox", "test")
    manage.remove(base, registry, "second", "test")
    jobs.refresh()
    ids = {j.id for j in sched.get_jobs()}
    assert "third:incremental_sync" in ids and "second:incremental_sync" not in ids
    assert set(jobs.registered) == {"default", "third"}


def test_a_connections_job_runs_claimed_in_its_own_store(base, stores):
    sched = BackgroundScheduler(timezone="UTC")
    jobs = scheduled.build(
        base, sched, deployment=Deployment(base, refresh_seconds=0), only="second"
    )
    assert set(jobs.registered) == {"second"}
    cfg, factory, _ = jobs.registered["second"]
    trigger = trigger_for(cfg.schedule.effective_jobs()["incremental_sync"], UTC)
    at = datetime(2026, 11, 23, 10, 0, 5, tzinfo=UTC)
    args = ("incremental_sync", cfg, trigger)
    assert run_slot(*args, context_factory=factory, runner="a", clock=lambda: at) == "ok"
    assert [j.job for j in stores["second"].jobs.list()] == ["incremental_sync"]
    assert stores["default"].jobs.list() == []
    assert [r.mode for r in stores["second"].runs.list()] == ["incremental"]
    assert stores["default"].runs.list() == []


def test_a_connection_whose_tokens_are_refused_is_let_be_and_its_events_wait(base, stores):
    """ReconnectNeeded (connector/oauth: the refresh token was refused) in a webhook run: the
    batch's events wait to be retried, the worker leaves that connection alone for a while and
    goes on with the others."""
    from crm_renewals.connector.oauth.grants import ReconnectNeeded

    cfg = connections.configuration(base, connections.choose(base, stores.registry, "second"))
    cid = active_contract(base, stores, "second")
    Inbox(stores["second"]).receive("salesforce", outbound(cid))

    def refused_context():
        ctx = bootstrap.build(cfg)

        def read_ids(kind, ids):
            raise ReconnectNeeded("invalid_grant: refresh token revoked", system="sandbox")

        ctx.crm.read_ids = read_ids
        return ctx

    worker = InboxWorker(cfg, context_factory=refused_context)
    lane = worker.lanes["second"]
    assert worker.turn(lane) is False
    assert lane.ctx is None and lane.resume_at > time.monotonic() + 60  # let be a while
    (event,) = Inbox(stores["second"]).all()
    assert event.status == "pending" and event.attempts == 1  # waits, not dead-lettered
    assert stores["second"].runs.list()[0].status != "ok"
    assert worker.turn(lane) is False and lane.ctx is None  # not tried again meanwhile
