"""The sync service end to end on the sandbox CRM: what reps see in their CRM after a run."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from crm_renewals.connector.errors import FatalCrmError, RetriableCrmError
from crm_renewals.connector.services import explain, sync
from tests.conftest import AS_OF


def run(context, **kw):
    return sync(context, as_of=kw.pop("as_of", AS_OF), **kw)


def soon(days: int = 100) -> date:
    return AS_OF + timedelta(days=days)


def test_renewal_is_created_in_window_with_uplifted_lines_and_owner(context, book):
    owner = book.user("Sam Rep")
    acc = book.account("Acme", owner=owner)
    cid = book.contract(
        acc, soon(), lines=(("SEAT", 10, 100.0), ("SUPPORT", 1, 1000.0)), uplift=5, number="00042"
    )
    report = run(context)
    assert (report.created, report.failed) == (1, 0)
    opp = book.opportunity(f"{cid}:{soon().isoformat()}")
    assert opp["Name"] == f"Acme - Renewal {soon():%Y-%m}"
    assert (opp["StageName"], opp["Type"], opp["OwnerId"]) == ("Prospecting", "Renewal", owner)
    assert opp["CloseDate"] == soon().isoformat()
    assert opp["Renewal_Contract__c"] == cid
    assert opp["Amount"] == pytest.approx(10 * 105.0 + 1050.0)
    lines = {ln["ProductCode"]: ln for ln in context.crm.all("OpportunityLineItem")}
    assert lines["SEAT"]["UnitPrice"] == 105.0 and lines["SEAT"]["Quantity"] == 10
    assert all(ln["OpportunityId"] == opp["Id"] for ln in lines.values())


def test_renewal_is_not_duplicated_when_run_twice(context, book):
    book.contract(book.account(), soon())
    first = run(context)
    second = run(context)
    assert first.created == 1
    assert (second.created, second.updated, second.unchanged, second.writes) == (0, 0, 1, {})
    assert len(book.opportunities()) == 1
    # one change page per kind: empty but the tasks the first run wrote; no writes
    assert second.api_calls == 8


def test_contracts_outside_the_window_or_inactive_are_skipped_with_reasons(context, book):
    acc = book.account()
    book.contract(acc, soon(200), number="far")
    book.contract(acc, AS_OF - timedelta(days=10), number="ended")
    book.contract(acc, soon(), status="Draft", number="draft")
    report = run(context)
    assert report.skip_reasons == {"contract_ended": 1, "contract_not_active": 1, "not_due": 1}
    assert book.opportunities() == []


def test_inactive_owner_falls_back_to_the_active_manager(context, book):
    boss = book.user("Boss")
    gone = book.user("Gone Rep", active=False, manager=boss)
    book.contract(book.account("Acme", owner=gone), soon())
    run(context)
    (opp,) = book.opportunities()
    assert opp["OwnerId"] == boss
    (task, *_) = context.crm.all("Task")
    assert task["OwnerId"] == boss


def test_owner_who_left_without_a_manager_is_reported_not_guessed(context, book):
    gone = book.user("Gone Rep", active=False)
    cid = book.contract(book.account("Acme", owner=gone), soon())
    report = run(context)
    assert report.skip_reasons == {"no_active_owner": 1}
    why = explain(context, cid, AS_OF).plan.renewal
    assert why.reason == "no_active_owner" and "fallback_owner" in why.detail


def test_configured_fallback_owner_takes_work_of_owners_who_left(tmp_path, book):
    from crm_renewals.connector import bootstrap
    from crm_renewals.connector.config import load_config
    from tests.conftest import write_config

    desk = book.user("Renewals Desk")
    gone = book.user("Gone Rep", active=False)
    book.contract(book.account("Acme", owner=gone), soon())
    book.crm.close()
    cfg = load_config(write_config(tmp_path, renewals={"fallback_owner": desk}))
    ctx = bootstrap.build(cfg)
    try:
        run(ctx)
        (opp,) = ctx.crm.all("Opportunity")
        assert opp["OwnerId"] == desk
    finally:
        ctx.close()


def test_rep_who_moved_the_stage_keeps_amount_and_lines_but_owned_fields_are_kept(context, book):
    cid = book.contract(book.account(), soon())
    run(context)
    (opp,) = book.opportunities()
    context.crm.edit("Opportunity", opp["Id"], {"StageName": "Negotiation", "Type": "Oops"})
    (line,) = context.crm.all("ContractLine")
    context.crm.edit("ContractLine", line["Id"], {"Quantity": 99})
    report = run(context)
    after = book.opportunity(opp["Renewal_Key__c"])
    assert after["StageName"] == "Negotiation"
    assert after["Amount"] == opp["Amount"]
    assert [ln["Quantity"] for ln in context.crm.all("OpportunityLineItem")] == [10]
    assert after["Type"] == "Renewal"  # the connector owns the type
    assert report.updated == 1
    assert "amount" in explain(context, cid, AS_OF).plan.renewal.locked


def test_a_renewal_line_a_rep_changed_keeps_the_lines_and_the_amount(context, book):
    cid = book.contract(book.account(), soon())
    run(context)
    (opp,) = book.opportunities()
    (renewal_line,) = context.crm.all("OpportunityLineItem")
    context.crm.edit("OpportunityLineItem", renewal_line["Id"], {"Quantity": 15})
    context.crm.edit("Opportunity", opp["Id"], {"Amount": 777.0})  # rolled up: not editable
    (line,) = context.crm.all("ContractLine")
    context.crm.edit("ContractLine", line["Id"], {"Quantity": 20})
    run(context)
    assert book.opportunity(opp["Renewal_Key__c"])["Amount"] == 1500.0
    assert [ln["Quantity"] for ln in context.crm.all("OpportunityLineItem")] == [15]
    assert {"lines", "amount"} <= explain(context, cid, AS_OF).plan.renewal.locked


def test_changed_contract_line_updates_the_untouched_renewal(context, book):
    book.contract(book.account(), soon(), lines=(("SEAT", 10, 100.0), ("SUPPORT", 1, 50.0)))
    run(context)
    seat, support = context.crm.all("ContractLine")
    context.crm.edit("ContractLine", seat["Id"], {"Quantity": 20})
    context.crm.remove("ContractLine", support["Id"])
    report = run(context)
    assert (report.updated, report.created) == (1, 0)
    (opp,) = book.opportunities()
    assert opp["Amount"] == 2000.0
    (line,) = context.crm.all("OpportunityLineItem")
    assert line["Quantity"] == 20


def test_amended_end_date_moves_the_open_renewal_instead_of_adding_one(context, book):
    cid = book.contract(book.account(), soon())
    run(context)
    context.crm.edit("Contract", cid, {"EndDate": soon(110).isoformat()})
    run(context)
    (opp,) = book.opportunities()
    assert opp["CloseDate"] == soon(110).isoformat()
    assert opp["Renewal_Key__c"] == f"{cid}:{soon().isoformat()}"


def test_closed_won_renewal_means_already_renewed(context, book):
    cid = book.contract(book.account(), soon())
    run(context)
    (opp,) = book.opportunities()
    context.crm.edit("Opportunity", opp["Id"], {"StageName": "Closed Won"})
    report = run(context)
    assert report.skip_reasons == {"already_renewed": 1}
    assert explain(context, cid, AS_OF).plan.renewal.reason == "already_renewed"


def test_renewal_deleted_by_a_rep_is_not_created_again(context, book):
    book.contract(book.account(), soon())
    run(context)
    (opp,) = book.opportunities()
    context.crm.remove("Opportunity", opp["Id"])
    report = run(context)
    assert report.skip_reasons == {"renewal_deleted": 1}
    assert book.opportunities() == []


def test_unmappable_record_is_dead_lettered_and_the_rest_carries_on(context, book):
    acc = book.account()
    bad = book.contract(acc, None, number="no-end")
    unknown = book.contract(acc, soon(), lines=(("GONE", 1, 10.0),), number="bad-product")
    book.contract(acc, soon(), number="good")
    report = run(context)
    assert (report.created, report.failed) == (1, 2)
    letters = {d.record_id: d for d in context.store.dead_letters.list()}
    assert letters[bad].field == "end_date" and letters[bad].stage == "read"
    (line_letter,) = [
        d for d in letters.values() if d.contract_id == unknown and d.kind == "contract_line"
    ]
    assert line_letter.field == "product_code"
    assert f"contract_line {line_letter.record_id}" in line_letter.message
    again = run(context)
    assert len(context.store.dead_letters.list()) == 2  # counted again, not duplicated
    assert again.failed == 2


def test_record_refused_by_the_crm_is_dead_lettered_then_written_once_fixed(context, book):
    acc = book.account()
    cid = book.contract(acc, soon(), lines=(("SEAT", 0, 100.0), ("SUPPORT", 1, 10.0)))
    book.contract(acc, soon(), number="fine")
    report = run(context)
    assert report.failed == 1 and report.created == 1
    (letter,) = context.store.dead_letters.list()
    assert (letter.stage, letter.error_code) == ("write", "FIELD_INTEGRITY_EXCEPTION")
    assert letter.contract_id == cid
    zero = next(ln for ln in context.crm.all("ContractLine") if ln["Quantity"] == 0)
    context.crm.edit("ContractLine", zero["Id"], {"Quantity": 3})
    fixed = run(context)
    assert fixed.failed == 0
    assert context.store.dead_letters.list() == []
    assert len(context.crm.all("OpportunityLineItem")) == 3


def test_transient_crm_errors_are_retried(context, book):
    book.contract(book.account(), soon())
    context.crm.faults = [
        RetriableCrmError("503", system="sandbox", status=503),
        None,
        RetriableCrmError("429", system="sandbox", status=429, retry_after=1),
    ]
    report = run(context)
    assert report.created == 1 and report.status == "ok"
    assert len(book.opportunities()) == 1


def test_fatal_error_stops_the_run_and_the_next_run_converges(context, book):
    for i in range(3):
        book.contract(book.account(f"Acct {i}"), soon(), number=str(i))
    context.crm.faults = [None] * 8 + [FatalCrmError("REQUEST_LIMIT_EXCEEDED", system="sandbox")]
    with pytest.raises(FatalCrmError):
        run(context)
    assert context.store.runs.list()[0].status == "failed"
    report = run(context)
    assert report.status == "ok"
    assert len(book.opportunities()) == 3
    assert len(context.crm.all("OpportunityLineItem")) == 3
    assert run(context).writes == {}


def test_dry_run_plans_but_writes_nothing(context, book):
    book.contract(book.account(), soon())
    report = run(context, dry_run=True)
    assert report.writes["renewal_opportunity.create"] == 1
    assert book.opportunities() == [] and context.store.runs.list() == []
    assert run(context).created == 1


def test_a_run_hands_back_only_the_plans_its_caller_asks_for(context, book):
    acc = book.account()
    renewed = book.contract(acc, soon(), number="renewed")
    broken = book.contract(acc, soon(), lines=(), number="no lines")
    dry = run(context, dry_run=True, show=lambda p: bool(p.writes))
    assert [p.contract_id for p in dry.plans] == [renewed]
    (attention,) = run(context).plans  # by default: the contracts an admin must act on
    assert (attention.contract_id, attention.renewal.reason) == (broken, "missing_data")
    assert run(context, show=lambda p: False).plans == []


def test_writes_go_out_in_batches_of_the_adapter_limit(tmp_path, book):
    from crm_renewals.connector import bootstrap
    from crm_renewals.connector.config import load_config
    from tests.conftest import write_config

    for i in range(5):
        book.contract(book.account(f"A{i}"), soon(), number=str(i))
    book.crm.close()
    ctx = bootstrap.build(load_config(write_config(tmp_path, sandbox={"batch_size": 2})))
    try:
        report = run(ctx)
        assert report.created == 5
        # 8 reads + 3 renewal batches + 3 line batches + ceil(tasks / 2) task batches
        tasks = report.writes["task.create"]
        assert report.api_calls == 8 + 3 + 3 + -(-tasks // 2)
    finally:
        ctx.close()


def test_tasks_name_every_renewal_contact_and_flag_accounts_without_one(context, book):
    acc = book.account("Acme")
    book.contact(acc, "Ann Lee")
    book.contact(acc, "Bob Kim")
    book.contact(acc, "Cy Bystander", renewal=False)
    book.contract(acc, soon(80))
    lonely = book.account("Lonely")
    book.contract(lonely, soon(80), number="2")
    run(context)
    tasks = context.crm.all("Task")
    notice = [t for t in tasks if t["Dedupe_Key__c"].endswith(":customer_notice")]
    assert len(notice) == 2
    acme = next(t for t in notice if "Ann Lee" in t["Description"])
    assert "Bob Kim" in acme["Description"] and "Cy Bystander" not in acme["Description"]
    due = date.fromisoformat(acme["ActivityDate"])
    assert due <= soon(80) - timedelta(days=60) and due.weekday() < 5
    other = next(t for t in notice if t is not acme)
    assert "name one" in other["Description"] and other["Priority"] == "High"


def test_a_run_that_never_finished_is_shown_as_interrupted(context, book):
    context.store.runs.start("incremental", AS_OF.isoformat())  # a run killed mid-way
    run(context)
    statuses = [r.status for r in context.store.runs.list()]
    assert statuses == ["ok", "interrupted"]
