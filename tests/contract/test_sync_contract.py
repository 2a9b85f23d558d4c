"""The sync service gives the same result on every CRM: the sandbox and each real adapter."""

from __future__ import annotations

from contextlib import ExitStack
from datetime import date, timedelta

import pytest
import responses

from crm_renewals.connector import bootstrap
from crm_renewals.connector.config import load_config
from crm_renewals.connector.services import explain, sync
from tests.conftest import AS_OF, ROOT, Book, write_config
from tests.fakes.harness import salesforce_config
from tests.fakes.salesforce_org import FakeOrg


class SalesforceBook(Book):
    """The conftest Book, with contract lines where Salesforce keeps them."""

    crm: FakeOrg

    def line(self, contract: str, code: str, qty: float, price: float, recurring=True) -> str:
        return self.crm.contract_line(contract, self.products[code], qty, price)

    def many(self, n: int, end: date, lines=(("SEAT", 10, 100.0), ("SUPPORT", 1, 1000.0))):
        """`n` accounts of one rep, each with a contract ending `end` (numbered from 0)."""
        owner = self.user("Sam Rep")
        for i in range(n):
            account = self.account(f"Account {i}", owner=owner)
            self.contract(account, end, lines=lines, number=f"{i:08d}")
        return self


def hubspot_context(stack: ExitStack, tmp_path, monkeypatch):
    """A FakeHubSpot, the sync's context on it, and a Book speaking to it in sandbox words."""
    from crm_renewals.connector.adapters.hubspot import TOKEN_ENV
    from tests.fakes.hubspot_harness import HubSpotAdmin, fast
    from tests.fakes.hubspot_server import FakeHubSpot

    fake = FakeHubSpot(search_per_second=0)
    fake.start()
    stack.callback(fake.stop)
    fake.define_connector_properties()
    monkeypatch.setenv(TOKEN_ENV, fake.token)
    path = write_config(
        tmp_path,
        crm="hubspot",
        hubspot={"base_url": fake.url},
        mapping=str(ROOT / "mappings" / "hubspot.yaml"),
    )
    ctx = bootstrap.build(load_config(path))
    fast(ctx.crm)
    return ctx, Book(HubSpotAdmin(fake))


@pytest.fixture(params=["sandbox", "salesforce", "hubspot"])
def crm(request, tmp_path, monkeypatch):
    """(context, book, line object) on each CRM."""
    with ExitStack() as stack:
        if request.param == "sandbox":
            ctx = bootstrap.build(load_config(write_config(tmp_path)))
            made = Book(ctx.crm)
            line_object = "ContractLine"
        elif request.param == "hubspot":
            ctx, made = hubspot_context(stack, tmp_path, monkeypatch)
            line_object = "ContractLine"
        else:
            rsps = stack.enter_context(responses.RequestsMock(assert_all_requests_are_fired=False))
            org = FakeOrg(rsps)
            path = salesforce_config(tmp_path, monkeypatch)
            ctx = bootstrap.build(load_config(path))
            made = SalesforceBook(org)
            line_object = "OpportunityLineItem"
        ctx.sleep = lambda _s: None
        stack.callback(ctx.close)
        yield ctx, made, line_object


def soon(days: int = 100) -> date:
    return AS_OF + timedelta(days=days)


def run(ctx):
    return sync(ctx, as_of=AS_OF)


def renewal_lines(book) -> list[dict]:
    return [x for x in book.crm.all("OpportunityLineItem") if x.get("Renewal_Line_Key__c")]


def test_renewal_with_lines_owner_and_link_then_nothing_on_a_rerun(crm):
    ctx, book, _ = crm
    owner = book.user("Sam Rep")
    acc = book.account("Acme", owner=owner)
    cid = book.contract(acc, soon(), lines=(("SEAT", 10, 100.0), ("SUPPORT", 1, 1000.0)), uplift=5)
    first = run(ctx)
    assert (first.created, first.failed) == (1, 0)
    opp = book.opportunity(f"{cid}:{soon().isoformat()}")
    assert (opp["StageName"], opp["Type"], opp["OwnerId"]) == ("Prospecting", "Renewal", owner)
    assert opp["Renewal_Contract__c"] == cid and opp["Amount"] == pytest.approx(2100.0)
    lines = {ln["ProductCode"]: ln for ln in renewal_lines(book)}
    assert (lines["SEAT"]["UnitPrice"], lines["SEAT"]["Quantity"]) == (105.0, 10)
    assert all(ln["OpportunityId"] == opp["Id"] for ln in lines.values())
    assert first.tasks_created >= 1
    second = run(ctx)
    assert (second.created, second.updated, second.writes) == (0, 0, {})
    assert len(book.opportunities()) == 1


def test_a_rep_edit_is_kept_and_a_changed_line_updates_an_untouched_renewal(crm):
    ctx, book, line_object = crm
    book.contract(book.account(), soon(), lines=(("SEAT", 10, 100.0),))
    run(ctx)
    (opp,) = book.opportunities()
    (line,) = [x for x in book.crm.all(line_object) if not x.get("Renewal_Line_Key__c")]
    book.crm.edit(line_object, line["Id"], {"Quantity": 12})
    report = run(ctx)
    assert report.updated == 1 and report.failed == 0
    assert [ln["Quantity"] for ln in renewal_lines(book)] == [12]
    # a rep changes the renewal line: lines and amount are theirs from now on
    (mine,) = renewal_lines(book)
    book.crm.edit("OpportunityLineItem", mine["Id"], {"Quantity": 14})
    book.crm.edit(line_object, line["Id"], {"Quantity": 20})
    run(ctx)
    assert [ln["Quantity"] for ln in renewal_lines(book)] == [14]
    if "amount" in ctx.mapping.computed_fields("renewal_opportunity"):
        assert book.opportunity(opp["Renewal_Key__c"])["Amount"] == pytest.approx(1400.0)
    else:  # a CRM that does not roll the amount up: a rep's amount is kept too
        book.crm.edit("Opportunity", opp["Id"], {"Amount": 777.0})
        book.crm.edit(line_object, line["Id"], {"Quantity": 30})
        run(ctx)
        assert book.opportunity(opp["Renewal_Key__c"])["Amount"] == 777.0
        assert [ln["Quantity"] for ln in renewal_lines(book)] == [14]


def test_inactive_owner_falls_back_to_the_active_manager(crm):
    ctx, book, _ = crm
    if ctx.config.crm == "hubspot":
        pytest.skip("HubSpot owners have no manager (fallback owner: tests/hubspot)")
    manager = book.user("Mia Manager")
    gone = book.user("Gus Gone", active=False, manager=manager)
    book.contract(book.account("Acme", owner=gone), soon())
    run(ctx)
    (opp,) = book.opportunities()
    assert opp["OwnerId"] == manager
    assert {t["OwnerId"] for t in book.crm.all("Task")} == {manager}


def test_a_deleted_contract_gets_no_renewal_and_is_reported(crm):
    ctx, book, _ = crm
    acc = book.account()
    kept = book.contract(acc, soon(), number="1")
    gone = book.contract(acc, soon(), number="2")
    book.crm.remove("Contract", gone)
    report = run(ctx)
    assert report.created == 1 and report.skip_reasons == {"contract_deleted": 1}
    assert [o["Renewal_Contract__c"] for o in book.opportunities()] == [kept]
    why = explain(ctx, gone, as_of=AS_OF)  # `renewals explain` knows it too
    assert why.plan is not None and why.plan.renewal.reason == "contract_deleted"


def test_tasks_name_every_renewal_contact(crm):
    ctx, book, _ = crm
    acc = book.account("Acme")
    book.contact(acc, "Ann Lee")
    book.contact(acc, "Bob Kim")
    book.contract(acc, soon(80))
    run(ctx)
    notice = [t for t in book.crm.all("Task") if t["Dedupe_Key__c"].endswith(":customer_notice")]
    assert len(notice) == 1
    assert "Ann Lee" in notice[0]["Description"] and "Bob Kim" in notice[0]["Description"]


def test_health_is_written_to_the_account_and_the_renewal(crm):
    ctx, book, _ = crm
    acc = book.account("Acme")
    measures = {"NPS__c": -40, "Open_Tickets__c": 20, "Late_Payments__c": 4}
    book.crm.edit("Account", acc, {**measures, "Last_Meeting_Date__c": "2026-01-02"})
    book.contract(acc, soon())
    report = run(ctx)
    assert report.failed == 0
    account = book.crm.get("Account", acc)
    (opp,) = book.opportunities()
    assert account["Health_Grade__c"] == "red" and account["Health_Score__c"] < 40
    assert opp["Health_Grade__c"] == "red" and opp["Health_Score__c"] == account["Health_Score__c"]
    assert account["Health_Drivers__c"]
    assert run(ctx).writes == {}
