"""Several inbox workers on one PostgreSQL state database, as several `renewals serve` hosts
run them: deliveries are claimed FOR UPDATE SKIP LOCKED, so no two workers read the same one,
and events are processed under the run lock, so each is processed once.

The database itself keeps count (triggers in the test's schema): every event's storing (a
BEFORE INSERT trigger fires even for a copy ON CONFLICT skips) and every settling of an inbox
row, so "once" is checked by PostgreSQL, not by the code under test."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from datetime import timedelta

import pytest
from sqlalchemy import text

from crm_renewals.connector import bootstrap
from crm_renewals.connector.config import load_config
from crm_renewals.connector.inbox import EXPAND_BATCH, Inbox
from crm_renewals.connector.services import sync
from crm_renewals.connector.services.sync import today
from crm_renewals.connector.state import StateStore
from crm_renewals.webhooks.deliveries import events_of
from tests.conftest import Book, write_config
from tests.e2e.test_crash import renewals_cli
from tests.postgres.at_once import at_once
from tests.webhooks.conftest import FIXTURES, SF_MESSAGE

pytestmark = pytest.mark.usefixtures("on_postgres")

WORKERS, CONTRACTS, PER_DELIVERY = 4, 100, 5
SALESFORCE_EVENTS, HUBSPOT_EVENTS = 1500, 500  # 2,000 events in 400 deliveries
HUBSPOT_EVENT = json.loads((FIXTURES / "hubspot" / "webhook_events.json").read_text())[0]
NOTIFICATION = SF_MESSAGE.split(b"<Notification>", 1)[1].split(b"</Notification>", 1)[0]

COUNTERS = """
CREATE TABLE stored_events (source text, event_id text, backend int);
CREATE TABLE settled_events (inbox_id int, status text, run_id int);
CREATE FUNCTION count_stored() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO stored_events VALUES (NEW.source, NEW.event_id, pg_backend_pid());
RETURN NEW; END $$;
CREATE FUNCTION count_settled() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO settled_events VALUES (NEW.id, NEW.status, NEW.run_id); RETURN NEW; END $$;
CREATE TRIGGER stored BEFORE INSERT ON inbox FOR EACH ROW EXECUTE FUNCTION count_stored();
CREATE TRIGGER settled AFTER UPDATE ON inbox FOR EACH ROW WHEN (NEW.status <> 'pending')
EXECUTE FUNCTION count_settled();
"""


def salesforce_delivery(notifications: list[tuple[str, str]]) -> bytes:
    """An outbound message (the fixture's shape) of (notification id, contract id) pairs."""
    head = SF_MESSAGE.split(b"<Notification>", 1)[0]
    body = b"".join(
        b"<Notification>"
        + NOTIFICATION.replace(b"04l000000000AbCAAU", note.encode()).replace(
            b"800000000000AaAAAU", cid.encode()
        )
        + b"</Notification>"
        for note, cid in notifications
    )
    return head + body + b"</notifications></soapenv:Body></soapenv:Envelope>"


def hubspot_delivery(event_ids: list[int]) -> bytes:
    """A HubSpot batch (the fixture's event shape): deal changes, which the sandbox's mapping
    does not read (settled as ignored)."""
    return json.dumps(
        [{**HUBSPOT_EVENT, "eventId": i, "objectId": 9_000_000 + i} for i in event_ids]
    ).encode()


def deliveries(contract_ids: list[str]) -> list[tuple[str, bytes]]:
    """2,000 events in 400 deliveries, the two sources interleaved; each contract is named
    by 15 notifications."""
    notes = [(f"04l{i:012d}AAA", contract_ids[i % CONTRACTS]) for i in range(SALESFORCE_EVENTS)]
    sf = [
        ("salesforce", salesforce_delivery(notes[i : i + PER_DELIVERY]))
        for i in range(0, SALESFORCE_EVENTS, PER_DELIVERY)
    ]
    hs = [
        ("hubspot", hubspot_delivery(list(range(i, i + PER_DELIVERY))))
        for i in range(0, HUBSPOT_EVENTS, PER_DELIVERY)
    ]
    return [d for group in zip(sf[0::3], sf[1::3], sf[2::3], hs, strict=True) for d in group]


@pytest.fixture
def activated(tmp_path):
    """A book of contracts synced as drafts, then activated by their reps: each event naming
    one leads to its renewal. Yields the configuration, the store and the contract ids."""
    config = write_config(tmp_path, webhooks={"worker_poll_seconds": 0.05})
    ctx = bootstrap.build(load_config(config))
    book = Book(ctx.crm)
    ids = [
        book.contract(book.account(f"Account {i}"), today() + timedelta(days=100), status="Draft")
        for i in range(CONTRACTS)
    ]
    assert sync(ctx).skip_reasons == {"contract_not_active": CONTRACTS}
    for cid in ids:
        ctx.crm.edit("Contract", cid, {"Status": "Activated"})
    with ctx.store.engine.begin() as conn:
        conn.exec_driver_sql(COUNTERS)
    yield config, ctx, ids
    ctx.close()


def counted(store: StateStore, sql: str) -> list[tuple]:
    with store.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql))]


def test_four_workers_claim_each_delivery_once(activated, postgres_url):
    _, ctx, ids = activated
    inbox = Inbox(ctx.store)
    for source, body in deliveries(ids):
        inbox.receive(source, body)
    stores = [StateStore(postgres_url) for _ in range(WORKERS)]
    read = at_once(lambda i: Inbox(stores[i]).expand(events_of), WORKERS)
    for s in stores:
        s.close()
    assert [r.deliveries for r in read] == [EXPAND_BATCH] * WORKERS  # 400: each its own 100
    assert sum(sum(r.new.values()) for r in read) == SALESFORCE_EVENTS + HUBSPOT_EVENTS
    assert inbox.waiting() == 0 and inbox.depth() == SALESFORCE_EVENTS + HUBSPOT_EVENTS
    assert counted(
        ctx.store, "SELECT count(*), count(DISTINCT (source, event_id)) FROM stored_events"
    ) == [(2000, 2000)]


def test_four_worker_processes_process_2000_events_once(activated, tmp_path):
    config, ctx, ids = activated
    inbox = Inbox(ctx.store)
    for source, body in deliveries(ids):
        inbox.receive(source, body)
    logs = [tmp_path / f"worker-{i}.log" for i in range(WORKERS)]
    workers = [
        subprocess.Popen(
            [*renewals_cli(), "--config", str(config), "worker"],
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )
        for log in logs
    ]
    try:
        deadline = time.monotonic() + 180  # a bound for a broken build, not a timing claim
        while inbox.waiting() or inbox.depth():
            ended = [log for w, log in zip(workers, logs, strict=True) if w.poll() is not None]
            died = [log.read_text() for log in ended]
            assert not died and time.monotonic() < deadline, died or "workers never finished"
            time.sleep(0.2)
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            w.wait(timeout=60)
    rows = inbox.all()
    assert len(rows) == SALESFORCE_EVENTS + HUBSPOT_EVENTS  # no delivery lost
    assert ctx.store.dead_letters.list() == []
    statuses = {(r.source, r.status) for r in rows}
    assert statuses == {("salesforce", "done"), ("hubspot", "ignored")}
    # each event stored once and settled once, as PostgreSQL counted
    stored = counted(
        ctx.store, "SELECT source, event_id, count(*) FROM stored_events GROUP BY 1, 2"
    )
    assert len(stored) == len(rows) and {n for *_, n in stored} == {1}
    settled = counted(ctx.store, "SELECT inbox_id, count(*) FROM settled_events GROUP BY 1")
    assert len(settled) == len(rows) and {n for _, n in settled} == {1}
    # processed in runs, each event by one
    run_ids = {r.run_id for r in rows if r.source == "salesforce"}
    runs = {run.id: run for run in ctx.store.runs.list(limit=1000)}
    assert None not in run_ids and run_ids <= runs.keys()
    assert {runs[i].mode for i in run_ids} == {"webhook"} and {runs[i].status for i in run_ids} == {
        "ok"
    }
    # no CRM write duplicated: one renewal per contract, each task once
    renewals = [o["Renewal_Key__c"] for o in Book(ctx.crm).opportunities()]
    assert len(renewals) == len(set(renewals)) == CONTRACTS
    assert {o["Renewal_Contract__c"] for o in Book(ctx.crm).opportunities()} == set(ids)
    tasks = [t["Dedupe_Key__c"] for t in ctx.crm.all("Task")]
    assert len(tasks) == len(set(tasks))
    assert sum(runs[i].counts["created"] for i in run_ids) == CONTRACTS
