"""Signals take effect through the inbox: a stored signal is an inbox event for its account,
a burst of them one piece of work; the inbox worker re-scores the account and plans its
contracts with the kept book (no sync), and `renewals signals import` applies in one run."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from crm_renewals.connector import bootstrap
from crm_renewals.connector.inbox import Inbox
from crm_renewals.connector.services import sync
from crm_renewals.connector.services.events import process_inbox
from crm_renewals.connector.services.sync import today
from tests.conftest import Book, cli_for
from tests.webhooks.conftest import post_signals_body

#: what turns a green account red (README "Sending signals")
RED = {
    "nps": -60,
    "open_tickets": 30,
    "high_priority_tickets": 8,
    "late_payments": 4,
    "seat_utilisation": 0.1,
}


#: the signals' time, fixed once: the same signals posted twice are the same signals (taken from
#: the clock at each call, a second ticking over between two posts made them new ones)
BASE = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


def moment(minutes: int = 0) -> str:
    return (BASE + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def red_signals(account: str, minutes: int = 0) -> list[dict]:
    return [
        {"account": account, "measure": m, "value": v, "timestamp": moment(minutes)}
        for m, v in RED.items()
    ]


def post(client, signals) -> dict:
    resp = post_signals_body(client, json.dumps({"signals": signals}).encode())
    assert resp.status_code == 200, resp.json
    return resp.json


def signal_events(inbox: Inbox) -> list[tuple[str | None, str | None, str]]:
    return [(r.object, r.record_id, r.status) for r in inbox.all() if r.source == "signals"]


@pytest.fixture
def ctx(wh_config):
    context = bootstrap.build(wh_config)
    context.sleep = lambda _s: None
    yield context
    context.close()


def green_account(ctx) -> tuple[Book, str, str]:
    """A green account with a contract due for renewal, synced (renewal and health written)."""
    book = Book(ctx.crm)
    acc = book.account("Acme")
    book.contact(acc, "Ann Lee")
    ctx.crm.edit("Account", acc, {"NPS__c": 40, "Late_Payments__c": 0, "Open_Tickets__c": 0})
    cid = book.contract(acc, today() + timedelta(days=100))
    sync(ctx)
    assert ctx.crm.get("Account", acc)["Health_Grade__c"] == "green"
    return book, acc, cid


def at_risk_tasks(ctx, acc: str) -> list[dict]:
    return [t for t in ctx.crm.all("Task") if t["Dedupe_Key__c"].startswith(f"{acc}:at_risk:")]


def signals_csv(folder, signals: list[dict]):
    rows = [f"{s['account']},{s['measure']},{s['value']},{s['timestamp']}" for s in signals]
    path = folder / "signals.csv"
    path.write_text("account,measure,value,timestamp\n" + "\n".join(rows) + "\n")
    return path


def test_a_burst_of_signals_for_one_account_is_one_event(client, inbox):
    for one in red_signals("001SB0000000001"):
        assert post(client, [one]) == {"accepted": 1, "new": 1}
    post(client, red_signals("001SB0000000002"))
    assert signal_events(inbox) == [
        ("account", "001SB0000000001", "pending"),
        ("account", "001SB0000000002", "pending"),
    ]


def test_a_copy_of_a_stored_signal_is_no_new_work(client, inbox):
    post(client, red_signals("001SB0000000001"))
    inbox.store.inbox.claim([r.id for r in inbox.all()])  # as the worker does when it starts
    assert post(client, red_signals("001SB0000000001")) == {"accepted": 5, "new": 0}
    assert len(signal_events(inbox)) == 1


def test_signals_turn_an_account_red_through_the_inbox_without_a_sync(ctx, client, store):
    _, acc, _ = green_account(ctx)
    inbox = Inbox(store)
    post(client, red_signals(acc))
    logged = len(ctx.crm.api_log())
    outcome = process_inbox(ctx, inbox, ctx.config.webhooks)
    assert outcome.processed == {"signals": 1}
    account = ctx.crm.get("Account", acc)
    assert account["Health_Grade__c"] == "red"
    (opp,) = [o for o in ctx.crm.all("Opportunity") if o["AccountId"] == acc]
    assert opp["Health_Grade__c"] == "red"
    assert len(at_risk_tasks(ctx, acc)) == 1
    assert signal_events(inbox) == [("account", acc, "done")]
    (run,) = [r for r in store.runs.list() if r.mode == "webhook"]
    assert run.counts["writes"]["account_health.update"] == 1
    # the signal is the change: the account is not read again, every call was a write
    assert run.api_calls == len(ctx.crm.api_log()) - logged
    # the same signals again: stored already, no work, nothing written
    assert post(client, red_signals(acc)) == {"accepted": 5, "new": 0}
    assert process_inbox(ctx, inbox, ctx.config.webhooks).total == 0
    # a new signal after processing is new work, and rewrites nothing that did not change
    post(client, [{**red_signals(acc, minutes=5)[0]}])
    assert signal_events(inbox)[-1] == ("account", acc, "pending")
    process_inbox(ctx, inbox, ctx.config.webhooks)
    (last, _) = [r for r in store.runs.list() if r.mode == "webhook"]
    assert last.counts["writes"] == {} and len(at_risk_tasks(ctx, acc)) == 1


def test_signals_import_applies_in_one_run_at_the_end(ctx, wh_config_path, tmp_path):
    _, acc, _ = green_account(ctx)
    csv = signals_csv(tmp_path, red_signals(acc))
    result = cli_for(wh_config_path)("signals", "import", str(csv), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert (data["rows"], data["stored"], data["duplicates"], data["errors"]) == (5, 5, 0, [])
    assert data["accounts"] == 1 and data["run_id"] is not None
    assert data["writes"]["account_health.update"] == 1
    assert ctx.crm.get("Account", acc)["Health_Grade__c"] == "red"
    assert len(at_risk_tasks(ctx, acc)) == 1
    assert [r.mode for r in ctx.store.runs.list()].count("webhook") == 1
    assert Inbox(ctx.store).all() == []  # applied here: nothing left for the inbox worker


def test_signals_import_no_apply_only_stores(ctx, wh_config_path, tmp_path):
    _, acc, _ = green_account(ctx)
    csv = signals_csv(tmp_path, red_signals(acc))
    result = cli_for(wh_config_path)("signals", "import", str(csv), "--json", "--no-apply")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert (data["stored"], data["run_id"], data["accounts"], data["writes"]) == (5, None, 1, {})
    assert ctx.crm.get("Account", acc)["Health_Grade__c"] == "green"
    assert set(ctx.store.signals.latest()[acc]) == set(RED)


def test_an_account_without_contracts_gets_its_health_from_its_signals(ctx, client, store):
    acc = Book(ctx.crm).account("Solo")
    ctx.crm.edit("Account", acc, {"NPS__c": 40, "Late_Payments__c": 0, "Open_Tickets__c": 0})
    sync(ctx)
    post(client, red_signals(acc))
    process_inbox(ctx, Inbox(store), ctx.config.webhooks)
    assert ctx.crm.get("Account", acc)["Health_Grade__c"] == "red"
