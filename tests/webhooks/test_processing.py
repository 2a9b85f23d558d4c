"""The inbox worker: events lead, via a refetch from the CRM and the sync's own planning, to
renewals in the sandbox CRM; failures retry with backoff, then reach the dead letters."""

from __future__ import annotations

import importlib
import json
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from crm_renewals.connector import bootstrap
from crm_renewals.connector.adapters.hubspot.limits import limits_for
from crm_renewals.connector.cli import main
from crm_renewals.connector.domain.signals import Signal
from crm_renewals.connector.errors import RetriableCrmError
from crm_renewals.connector.inbox import Inbox
from crm_renewals.connector.services import sync
from crm_renewals.connector.services.events import BatchOutcome, kinds_for_object, process_inbox
from crm_renewals.connector.services.gather import load_book
from crm_renewals.connector.services.refresh import Snapshot, sync_records
from crm_renewals.connector.services.sync import today
from crm_renewals.connector.state.runlock import RunLockBusy, run_lock
from crm_renewals.webhooks import create_app
from crm_renewals.webhooks.deliveries import events_of
from crm_renewals.webhooks.worker import InboxWorker
from tests.conftest import Book
from tests.webhooks.conftest import SF_MESSAGE

#: the label of the default connection's series
DEFAULT = {"connection": "default"}


@pytest.fixture
def ctx(wh_config):
    context = bootstrap.build(wh_config)
    context.sleep = lambda _s: None
    yield context
    context.close()


def outbound(contract_id: str, note_id: str = "04l000000000AbCAAU") -> bytes:
    """The fixture message, naming one sandbox contract."""
    head, rest = SF_MESSAGE.split(b"<Notification>", 1)
    first = rest.split(b"</Notification>", 1)[0]
    first = first.replace(b"800000000000AaAAAU", contract_id.encode())
    first = first.replace(b"04l000000000AbCAAU", note_id.encode())
    return (
        head
        + b"<Notification>"
        + first
        + b"</Notification></notifications>"
        + (b"</soapenv:Body></soapenv:Envelope>")
    )


def hubspot_body(*events: tuple[int, str, int]) -> bytes:
    """A HubSpot batch of (event id, object, object id) property changes."""
    return json.dumps(
        [
            {"eventId": event_id, "subscriptionType": f"{obj}.propertyChange", "objectId": oid}
            for event_id, obj, oid in events
        ]
    ).encode()


def deliver(inbox: Inbox, source: str, body: bytes) -> None:
    """A delivery as the receiver stores it, read into events as the worker does."""
    inbox.receive(source, body)
    inbox.expand(events_of)


def draft_contract(ctx) -> tuple[Book, str]:
    """A contract due for renewal but still a draft, synced: no renewal yet."""
    book = Book(ctx.crm)
    cid = book.contract(book.account(), today() + timedelta(days=100), status="Draft")
    assert sync(ctx).skip_reasons == {"contract_not_active": 1}
    return book, cid


def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_objects_resolve_to_the_kinds_they_feed(ctx):
    assert kinds_for_object(ctx.mapping, "Contract") == ["contract"]
    assert kinds_for_object(ctx.mapping, "Opportunity") == ["renewal_opportunity"]
    from crm_renewals.connector.mapping_file import load_mapping
    from tests.conftest import ROOT

    hubspot = load_mapping(ROOT / "mappings" / "hubspot.yaml")
    assert kinds_for_object(hubspot, "deal") == ["contract", "renewal_opportunity"]
    assert kinds_for_object(hubspot, "company") == ["account"]
    assert kinds_for_object(hubspot, "ticket") == []


def test_contract_event_leads_via_the_worker_to_its_renewal(ctx, wh_config, store):
    book, cid = draft_contract(ctx)
    ctx.crm.edit("Contract", cid, {"Status": "Activated"})  # a rep activates it
    app = create_app(wh_config, store=store, env={})
    app.extensions["renewals"].org_id = "00D000000000062EAA"
    worker = InboxWorker(wh_config, metrics=app.extensions["renewals"].metrics).start()
    try:
        resp = app.test_client().post("/webhooks/salesforce", data=outbound(cid))
        assert resp.status_code == 200
        wait_for(lambda: [r.status for r in Inbox(store).all()] == ["done"])
    finally:
        worker.stop()
    (opp,) = book.opportunities()
    assert opp["Renewal_Contract__c"] == cid and opp["StageName"] == "Prospecting"
    runs = store.runs.list()
    assert runs[0].mode == "webhook" and runs[0].counts["created"] == 1
    # the contract read by id; the renewal, its lines, its tasks written: no change reads
    assert runs[0].api_calls == 4
    text = app.test_client().get("/metrics").data.decode()
    assert (
        'renewals_webhook_events_processed_total{connection="default",source="salesforce"} 1.0'
        in text
    )
    assert 'renewals_sync_runs_total{connection="default",mode="webhook",status="ok"} 1.0' in text


def test_account_event_replans_the_accounts_contracts(ctx):
    book = Book(ctx.crm)
    owner = book.user("Old Owner")
    acc = book.account("Acme", owner=owner)
    cid = book.contract(acc, today() + timedelta(days=100))
    sync(ctx)
    new_owner = book.user("New Owner")
    ctx.crm.edit("Account", acc, {"OwnerId": new_owner})
    report = sync_records(ctx, {"account": {acc}})
    assert report.updated == 1
    assert (
        book.opportunity(f"{cid}:{(today() + timedelta(days=100)).isoformat()}")["OwnerId"]
        == new_owner
    )


def _count_loads(monkeypatch) -> list:
    loads: list = []
    module = importlib.import_module("crm_renewals.connector.services.refresh")
    real_load = module.load_book
    monkeypatch.setattr(
        module, "load_book", lambda store, only=None: loads.append(only) or real_load(store, only)
    )
    return loads


def test_webhook_runs_load_just_the_accounts_of_their_records(ctx, monkeypatch):
    book = Book(ctx.crm)
    acc = book.account("Acme")
    first = book.contract(acc, today() + timedelta(days=100), status="Draft")
    second = book.contract(acc, today() + timedelta(days=110), status="Draft")
    book.contract(book.account("Other"), today() + timedelta(days=120))
    sync(ctx)  # builds the planning index
    loads = _count_loads(monkeypatch)
    kept = Snapshot()
    for cid in (first, second):
        ctx.crm.edit("Contract", cid, {"Status": "Activated"})
        assert sync_records(ctx, {"contract": {cid}}, snapshot=kept).created == 1
    assert [only.accounts for only in loads] == [{acc}, {acc}] and kept.book is None
    again = sync_records(ctx, {"contract": {first, second}}, snapshot=kept)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 2)
    assert len(book.opportunities()) == 3  # and the other account's, from the first sync


def test_webhook_runs_keep_the_book_between_them_until_another_run_comes_in(ctx, monkeypatch):
    """Before the planning index is built (a database from before it), a webhook run loads
    the whole mirror, and the next one keeps it while no other run came in between."""
    book = Book(ctx.crm)
    acc = book.account("Acme")
    first = book.contract(acc, today() + timedelta(days=100), status="Draft")
    second = book.contract(acc, today() + timedelta(days=110), status="Draft")
    sync(ctx)
    with ctx.store.engine.begin() as conn:
        conn.execute(text("DELETE FROM plan_meta"))
    loads = _count_loads(monkeypatch)
    kept = Snapshot()

    ctx.crm.edit("Contract", first, {"Status": "Activated"})
    assert sync_records(ctx, {"contract": {first}}, snapshot=kept).created == 1
    ctx.crm.edit("Contract", second, {"Status": "Activated"})
    assert sync_records(ctx, {"contract": {second}}, snapshot=kept).created == 1
    assert loads == [None]  # the second run used the first one's book
    again = sync_records(ctx, {"contract": {first, second}}, snapshot=kept)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 2)
    assert len(book.opportunities()) == 2 and loads == [None]

    sync(ctx)  # another run: the mirror and the ledger may have changed under the snapshot
    with ctx.store.engine.begin() as conn:
        conn.execute(text("DELETE FROM plan_meta"))
    loads.clear()
    assert sync_records(ctx, {"contract": {first}}, snapshot=kept).unchanged == 1
    assert loads == [None]


def test_a_webhook_run_scores_the_accounts_it_plans_for_as_a_sync_would(ctx):
    book = Book(ctx.crm)
    scored, other = book.account("Scored"), book.account("Other")
    cid = book.contract(scored, today() + timedelta(days=100), status="Draft")
    book.contract(other, today() + timedelta(days=100))
    at = datetime.combine(today(), datetime.min.time(), UTC)
    ctx.store.signals.add(
        [Signal(a, "seat_utilisation", 0.95, at, "test") for a in (scored, other)]
        + [Signal(scored, "nps", 60, at, "test")]
    )
    sync(ctx)
    ctx.crm.edit("Contract", cid, {"Status": "Activated"})
    assert sync_records(ctx, {"contract": {cid}}).created == 1
    (opp,) = [o for o in book.opportunities() if o["Renewal_Contract__c"] == cid]
    assert opp["Health_Score__c"] is not None and opp["Health_Grade__c"]
    # the full sync scores every account: it finds nothing to change on that renewal
    assert sync(ctx).created == 0
    assert book.opportunity(opp["Renewal_Key__c"])["Health_Score__c"] == opp["Health_Score__c"]


def test_a_failed_webhook_run_lets_go_of_its_book(ctx, monkeypatch):
    book = Book(ctx.crm)
    cid = book.contract(book.account(), today() + timedelta(days=100))
    kept = Snapshot()
    sync_records(ctx, {"contract": {cid}}, snapshot=kept)
    assert kept.book is not None
    ctx.crm.faults = [RetriableCrmError("503", system="sandbox", status=503)] * 100
    with pytest.raises(RetriableCrmError):
        sync_records(ctx, {"contract": {cid}}, snapshot=kept)
    assert kept.book is None and kept.run_id is None


def test_new_contract_under_a_new_account_reads_the_account_and_owner_too(ctx):
    book = Book(ctx.crm)
    sync(ctx)  # nothing yet
    cid = book.contract(book.account("Newco"), today() + timedelta(days=100))
    # lines of a contract never synced are unknown to a by-id read: the sync picks them up
    report = sync_records(ctx, {"contract": {cid}})
    assert report.skip_reasons == {"missing_data": 1}
    assert "no recurring lines" in report.plans[0].renewal.detail
    assert {a.name for a in load_book(ctx.store).accounts.values()} == {"Newco"}
    assert len(load_book(ctx.store).owners) == 2  # the account's owner and the book's manager


def test_a_crash_while_reading_deliveries_loses_nothing_and_stores_nothing_twice(wh_config, store):
    app = create_app(wh_config, store=store, env={})
    app.extensions["renewals"].org_id = "00D000000000062EAA"
    client = app.test_client()
    for note in ("04l00000000000AAAA", "04l00000000000BAAA", "04l00000000000AAAA"):
        assert client.post("/webhooks/salesforce", data=outbound("800000000000AaAAAU", note))
    inbox = Inbox(store)
    seen = []

    def crash_at_the_third(source, body):
        seen.append(source)
        if len(seen) == 3:
            raise SystemExit("killed")  # not an error of one delivery: the process ends
        return events_of(source, body)

    with pytest.raises(SystemExit):
        inbox.expand(crash_at_the_third)
    assert inbox.all() == [] and inbox.waiting() == 3  # rolled back, all still stored
    expanded = inbox.expand(events_of)
    assert (expanded.deliveries, expanded.new) == (3, {"salesforce": 2})
    assert sorted(r.event_id for r in inbox.all()) == [
        "04l00000000000AAAA",
        "04l00000000000BAAA",
    ]
    assert inbox.waiting() == 0


def test_an_unreadable_delivery_goes_to_the_dead_letters_whole(store):
    inbox = Inbox(store)
    inbox.receive("hubspot", b'[{"eventId": 1, "subscriptionType": "deal.creation"}]')
    inbox.receive("hubspot", b"[not json")  # only a changed parser could let this in
    expanded = inbox.expand(events_of)
    assert expanded.unreadable == {"hubspot": 1} and expanded.new == {"hubspot": 1}
    assert inbox.waiting() == 0
    (letter,) = store.dead_letters.list()
    assert letter.error_code == "WEBHOOK_UNREADABLE"
    assert json.loads(letter.value) == "[not json"  # values are stored as JSON
    assert "body is not JSON" in letter.message


def test_unmapped_objects_are_ignored(ctx, store):
    inbox = Inbox(store)
    deliver(inbox, "hubspot", hubspot_body((1, "ticket", 42)))
    outcome = process_inbox(ctx, inbox, ctx.config.webhooks)
    assert outcome.ignored == {"hubspot": 1}
    assert inbox.all()[0].status == "ignored"


class Later:
    def __init__(self):
        self.now = datetime(2026, 11, 23, 12, tzinfo=UTC)

    def __call__(self):
        return self.now


def test_failed_events_retry_with_backoff_then_go_to_the_dead_letters(ctx, store, wh_config_path):
    _, cid = draft_contract(ctx)
    clock = Later()
    inbox = Inbox(store, clock=clock)
    deliver(inbox, "salesforce", outbound(cid))
    settings = ctx.config.webhooks.model_copy(
        update={"retry_attempts": 3, "retry_backoff_seconds": 10}
    )
    ctx.crm.faults = [RetriableCrmError("503", system="sandbox", status=503)] * 100
    first = process_inbox(ctx, inbox, settings)
    assert first.failed == {"salesforce": 1}
    row = inbox.all()[0]
    assert (row.status, row.attempts) == ("pending", 1)
    assert process_inbox(ctx, inbox, settings).total == 0  # not due for 10 s
    clock.now += timedelta(seconds=10)
    process_inbox(ctx, inbox, settings)
    assert inbox.all()[0].attempts == 2
    clock.now += timedelta(seconds=19)
    assert process_inbox(ctx, inbox, settings).total == 0  # backoff doubled: 20 s
    clock.now += timedelta(seconds=1)
    last = process_inbox(ctx, inbox, settings)
    assert last.dead == {"salesforce": 1} and inbox.all()[0].status == "dead"
    (letter,) = [d for d in store.dead_letters.list() if d.stage == "webhook"]
    assert letter.record_id == cid and "gave up after 3 attempts" in letter.message
    shown = CliRunner().invoke(
        main, ["--config", str(wh_config_path), "deadletters", "list", "--json"]
    )
    assert "WEBHOOK_GAVE_UP" in shown.output


def test_ack_stays_fast_while_the_crm_is_slow(ctx, wh_config, store):
    _, cid = draft_contract(ctx)
    calls: list[str] = []
    crm_answers = threading.Event()  # the CRM hangs until every delivery has been acked

    def slow_context():
        c = bootstrap.build(wh_config)
        read = c.crm.read_ids

        def read_ids(kind, ids):
            calls.append(threading.current_thread().name)
            crm_answers.wait(10)
            return read(kind, ids)

        c.crm.read_ids = read_ids
        return c

    app = create_app(wh_config, store=store, env={})
    rx = app.extensions["renewals"]
    rx.org_id = "00D000000000062EAA"
    worker = InboxWorker(wh_config, context_factory=slow_context, metrics=rx.metrics).start()
    client = app.test_client()
    try:
        assert client.post("/webhooks/salesforce", data=outbound(cid)).status_code == 200
        wait_for(lambda: calls)  # the worker now waits on the CRM
        started = time.monotonic()
        for i in range(1, 3):
            resp = client.post("/webhooks/salesforce", data=outbound(cid, f"04l00000000000{i}AAA"))
            assert resp.status_code == 200  # acked while the CRM has not answered
        assert time.monotonic() - started < 2
        crm_answers.set()
        wait_for(lambda: [r.status for r in Inbox(store).all()] == ["done"] * 3)
    finally:
        worker.stop()
    assert calls and set(calls) == {"inbox-worker"}


def test_run_lock_keeps_runs_apart(store):
    with run_lock(store), pytest.raises(RunLockBusy), run_lock(store, wait=0.1):
        pass
    with run_lock(store):
        pass


def test_worker_leaves_events_for_later_while_another_run_holds_the_lock(ctx, wh_config, store):
    inbox = Inbox(store)
    inbox.receive("hubspot", hubspot_body((1, "ticket", 42)))
    worker = InboxWorker(wh_config)
    with run_lock(store):
        worker.drain(ctx)
        assert inbox.depth() == 1
    worker.drain(ctx)
    assert inbox.depth() == 0


def test_settled_events_are_forgotten_after_the_dedupe_window(store):
    clock = Later()
    inbox = Inbox(store, clock=clock)
    deliver(inbox, "hubspot", hubspot_body((1, "deal", 9), (2, "deal", 9)))
    inbox.settle([inbox.all()[0].id], "done")
    clock.now += timedelta(hours=71)
    assert inbox.purge(72) == 0
    clock.now += timedelta(hours=2)
    assert inbox.purge(72) == 1
    assert [r.event_id for r in inbox.all()] == ["2"]  # pending ones stay


def test_waits_for_a_hubspot_bucket_count_as_rate_limit_waits(wh_config):
    worker = InboxWorker(wh_config)
    bucket = limits_for("test-portal-waits", 1, 1, interval=0.05).general
    bucket.acquire()
    bucket.release()
    bucket.acquire()  # the one token is back only one interval later: this waits
    bucket.release()
    worker._count(BatchOutcome())
    registry = worker.metrics.registry
    assert registry.get_sample_value("renewals_crm_rate_limit_waits_total", DEFAULT) == 1
    assert registry.get_sample_value("renewals_crm_rate_limit_wait_seconds_total", DEFAULT) > 0
