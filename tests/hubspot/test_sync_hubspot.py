"""The sync service end to end against the fake HubSpot: what reps see in the portal."""

from __future__ import annotations

from datetime import timedelta

import pytest

from crm_renewals.connector import bootstrap
from crm_renewals.connector.adapters.hubspot import TOKEN_ENV
from crm_renewals.connector.config import load_config
from crm_renewals.connector.services import sync
from tests.conftest import AS_OF
from tests.hubspot.conftest import fast, hubspot_config

END = AS_OF + timedelta(days=100)


def test_sync_creates_renewal_deals_lines_and_tasks_then_a_second_run_writes_nothing(
    hub_context, hub, fake
):
    owner = hub.owner("Sam Rep")
    company = hub.company("Acme", owner=owner)
    ann = hub.contact(company, "Ann Buyer")
    deal = hub.contract(company, END, lines=(("SEAT", 10, 100.0), ("SUPPORT", 1, 1000.0)), uplift=5)

    first = sync(hub_context, as_of=AS_OF)
    assert (first.created, first.failed, first.status) == (1, 0, "ok")
    renewal = hub.renewal(f"{deal}:{END.isoformat()}")
    assert renewal["dealname"] == f"Acme - Renewal {END:%Y-%m}"
    assert (renewal["pipeline"], renewal["dealstage"]) == ("default", "appointmentscheduled")
    assert renewal["hubspot_owner_id"] == owner and renewal["renewal_contract_id"] == deal
    assert renewal["dealtype"] == "existingbusiness"
    assert float(renewal["amount"]) == pytest.approx(10 * 105.0 + 1050.0)
    rid = renewal["hs_object_id"]
    assert set(fake.associated("deals", rid, "companies")) == {company}
    lines = [ln for ln in fake.live("line_items") if ln.get("renewal_deal_key")]
    assert sorted(ln["hs_sku"] for ln in lines) == ["SEAT", "SUPPORT"]
    assert all(
        set(fake.associated("line_items", ln["hs_object_id"], "deals")) == {rid} for ln in lines
    )
    every = fake.live("tasks")
    assert every and all(t["renewal_task_key"] for t in every)
    # the customer journey's task is the account's: on the company, not on the deal
    journey = [t for t in every if ":journey:" in t["renewal_task_key"]]
    assert journey and all(
        set(fake.associated("tasks", t["hs_object_id"], "companies")) == {company}
        and not fake.associated("tasks", t["hs_object_id"], "deals")
        for t in journey
    )
    tasks = [t for t in every if t not in journey]
    assert all(set(fake.associated("tasks", t["hs_object_id"], "deals")) == {rid} for t in tasks)
    assert all(
        fake.associated("tasks", t["hs_object_id"], "contacts") == {ann: {("HUBSPOT_DEFINED", 204)}}
        for t in tasks
    )

    objects = {t: len(fake.live(t)) for t in ("deals", "line_items", "tasks")}
    links, assoc_calls = fake.new_links, fake.count("/batch/create")
    second = sync(hub_context, as_of=AS_OF)
    assert second.writes == {} and second.created == 0 and second.failed == 0
    assert {t: len(fake.live(t)) for t in objects} == objects
    assert (fake.new_links, fake.count("/batch/create")) == (links, assoc_calls)


def test_archived_owner_hands_the_renewal_to_the_fallback_owner(tmp_path, fake, hub, monkeypatch):
    gone = hub.owner("Lee Former")
    fallback = hub.owner("Sam Manager")
    company = hub.company("Globex", owner=gone)
    fake.archive_owner(gone)
    deal = hub.contract(company, END)
    monkeypatch.setenv(TOKEN_ENV, fake.token)
    path = hubspot_config(tmp_path, fake, renewals={"fallback_owner": fallback})
    ctx = bootstrap.build(load_config(path))
    fast(ctx.crm)
    try:
        report = sync(ctx, as_of=AS_OF)
    finally:
        ctx.close()
    assert report.created == 1
    assert hub.renewal(f"{deal}:{END.isoformat()}")["hubspot_owner_id"] == fallback


def test_refused_renewal_goes_to_dead_letters_with_hubspots_category(hub_context, hub, fake):
    company = hub.company("Initech")
    hub.contract(company, END)
    del fake.properties["deals"]["renewal_contract_id"]  # an admin deleted the property
    report = sync(hub_context, as_of=AS_OF)
    assert report.failed == 1
    (letter,) = hub_context.store.dead_letters.list()
    assert letter.error_code == "VALIDATION_ERROR"
    assert "renewal_contract_id" in letter.message


def test_a_deal_named_by_a_webhook_is_refetched_and_renewed(hub_context, hub, fake):
    from crm_renewals.connector.services.refresh import sync_records

    deal = hub.contract(hub.company("Hooli"), END, stage="qualifiedtobuy")
    assert sync(hub_context, as_of=AS_OF).created == 0  # not won yet: no contract
    fake.edit("deals", deal, {"dealstage": "closedwon"})  # deal.propertyChange dealstage
    report = sync_records(hub_context, {"contract": [deal]}, as_of=AS_OF)
    assert report.created == 1 and report.failed == 0
    assert hub.renewal(f"{deal}:{END.isoformat()}")["renewal_contract_id"] == deal


def test_the_renewals_sync_command_runs_against_hubspot(tmp_path, fake, hub, monkeypatch):
    import json

    from click.testing import CliRunner

    from crm_renewals.connector.cli import main

    deal = hub.contract(hub.company("Umbrella"), END)
    monkeypatch.setenv(TOKEN_ENV, fake.token)
    config = str(hubspot_config(tmp_path, fake))

    def renewals_sync() -> dict:
        args = ["--config", config, "sync", "--as-of", AS_OF.isoformat(), "--json"]
        result = CliRunner().invoke(main, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return json.loads(result.output)

    first = renewals_sync()
    assert first["created"] == 1 and first["writes"]["renewal_line.create"] == 1
    assert hub.renewal(f"{deal}:{END.isoformat()}")
    second = renewals_sync()
    assert (second["created"], second["updated"], second["writes"]) == (0, 0, {})
