"""Health, upsell lines, playbook tasks and segments through the sync service on the sandbox."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crm_renewals.connector import bootstrap
from crm_renewals.connector.config import load_config
from crm_renewals.connector.domain.signals import Signal
from crm_renewals.connector.services import sync
from tests.conftest import AS_OF, Book, write_config

UPSELL = {
    "seat_expansion": {
        "above_utilisation": 0.9,
        "target_utilisation": 0.8,
        "seat_products": ["SEAT"],
    }
}


@pytest.fixture
def ctx(tmp_path):
    context = bootstrap.build(load_config(write_config(tmp_path, upsell=UPSELL)))
    context.sleep = lambda _s: None
    yield context
    context.close()


def signal(ctx, account, measure, value, day=AS_OF):
    at = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=9)
    ctx.store.signals.add([Signal(account, measure, value, at, "test")])


def run(ctx, day=AS_OF):
    return sync(ctx, as_of=day)


def upsell_lines(ctx) -> list[dict]:
    return [ln for ln in ctx.crm.all("OpportunityLineItem") if ln["Line_Type__c"] != "Renewal"]


def healthy_account(ctx, book: Book, utilisation: float) -> tuple[str, str]:
    acc = book.account("Acme")
    book.contact(acc, "Ann Lee")
    ctx.crm.edit("Account", acc, {"NPS__c": 40, "Late_Payments__c": 0, "Open_Tickets__c": 0})
    cid = book.contract(acc, AS_OF + timedelta(days=100), lines=(("SEAT", 50, 100.0),))
    signal(ctx, acc, "seat_utilisation", utilisation)
    return acc, cid


def test_health_is_written_to_the_account_and_the_renewal(ctx):
    book = Book(ctx.crm)
    acc, cid = healthy_account(ctx, book, 0.55)
    report = run(ctx)
    # utilisation 0.55 -> 40 (w25), NPS 40 -> 100 (w15), tickets 0 -> 100 (w10),
    # late payments 0 -> 100 (w10): (1000 + 1500 + 1000 + 1000) / 60 = 75 -> green
    account = ctx.crm.get("Account", acc)
    assert (account["Health_Score__c"], account["Health_Grade__c"]) == (75, "green")
    assert account["Health_Drivers__c"] == "seat utilisation 55%"
    assert account["Health_Trend__c"] == "new"
    (opp,) = book.opportunities()
    assert (opp["Health_Score__c"], opp["Health_Grade__c"]) == (75, "green")
    assert report.health == {"green": 1, "yellow": 0, "red": 0}
    assert run(ctx).writes == {}


def test_next_day_trend_drivers_and_an_at_risk_task_when_the_grade_turns_red(ctx):
    book = Book(ctx.crm)
    acc, cid = healthy_account(ctx, book, 0.55)
    run(ctx)
    tomorrow = AS_OF + timedelta(days=1)
    ctx.crm.edit("Account", acc, {"NPS__c": -40, "Late_Payments__c": 3, "Open_Tickets__c": 20})
    signal(ctx, acc, "seat_utilisation", 0.3, tomorrow)
    report = run(ctx, tomorrow)
    # 0.3 -> 20 (w25), NPS -40 -> 10, tickets 20 -> 0, late 3 -> 0: (500 + 150) / 60 = 10.8
    account = ctx.crm.get("Account", acc)
    assert (account["Health_Score__c"], account["Health_Grade__c"]) == (11, "red")
    assert account["Health_Trend__c"] == "down 64"
    assert "seat utilisation 30%, down from 55%" in account["Health_Drivers__c"]
    risk = [t for t in ctx.crm.all("Task") if ":at_risk:" in t["Dedupe_Key__c"]]
    assert [(t["Dedupe_Key__c"], t["WhatId"]) for t in risk] == [(f"{acc}:at_risk:{tomorrow}", acc)]
    assert risk[0]["Priority"] == "High" and "seat utilisation 30%" in risk[0]["Description"]
    assert report.writes["renewal_opportunity.update"] == 1
    assert run(ctx, tomorrow).writes == {}  # re-run the same day: no second at-risk task


def test_upsell_line_is_updated_not_duplicated_then_withdrawn(ctx):
    book = Book(ctx.crm)
    acc, cid = healthy_account(ctx, book, 0.95)
    run(ctx)
    (line,) = upsell_lines(ctx)
    # 0.95 * 50 = 47.5 users; ceil(47.5 / 0.8) = 60 seats: 10 more
    assert (line["Line_Type__c"], line["ProductCode"], line["Quantity"]) == ("Upsell", "SEAT", 10)
    assert line["Description"].startswith("Upsell: seat utilisation 95% of 50 seats")
    signal(ctx, acc, "seat_utilisation", 0.99, AS_OF + timedelta(days=1))
    run(ctx, AS_OF + timedelta(days=1))
    (line,) = upsell_lines(ctx)  # ceil(49.5 / 0.8) = 62: 12 more, same line
    assert line["Quantity"] == 12
    signal(ctx, acc, "seat_utilisation", 0.7, AS_OF + timedelta(days=2))
    report = run(ctx, AS_OF + timedelta(days=2))
    assert upsell_lines(ctx) == [] and report.writes["renewal_line.delete"] == 1


def test_an_upsell_line_a_rep_edited_is_neither_updated_nor_withdrawn(ctx):
    book = Book(ctx.crm)
    acc, cid = healthy_account(ctx, book, 0.95)
    run(ctx)
    (line,) = upsell_lines(ctx)
    ctx.crm.edit("OpportunityLineItem", line["Id"], {"Quantity": 4})
    signal(ctx, acc, "seat_utilisation", 0.5, AS_OF + timedelta(days=1))
    report = run(ctx, AS_OF + timedelta(days=1))
    (kept,) = upsell_lines(ctx)
    assert kept["Quantity"] == 4 and "renewal_line.delete" not in report.writes


def test_segments_are_recorded_for_18_periods(ctx):
    book = Book(ctx.crm)
    healthy_account(ctx, book, 0.8)
    run(ctx)
    periods = ctx.store.history.segment_periods()
    assert len(periods) == 18
    assert set(ctx.store.history.segments_in(periods[-1]).values()) == {"one_time_buyer"}
