"""What the real CRMs do that a kind fake would hide: tasks on records, one task per account,
refused writes sent again until they land, an amount the CRM rolls up from the lines."""

from __future__ import annotations

import random
from collections import Counter
from contextlib import contextmanager
from datetime import timedelta

import responses

from crm_renewals.connector import bootstrap
from crm_renewals.connector.config import load_config
from crm_renewals.connector.services import sync
from crm_renewals.connector.services.sync import retry_dead_letters
from tests.conftest import AS_OF
from tests.contract.test_sync_contract import SalesforceBook, crm, run, soon  # noqa: F401
from tests.fakes.harness import salesforce_config
from tests.fakes.salesforce_org import FakeOrg


def parent_of(ctx, book, task: dict) -> tuple[str | None, str | None]:
    """(record the task is about, the account it shows on), as the CRM holds them."""
    if ctx.config.crm == "hubspot":
        fake = book.crm.fake
        deals = fake.associated("tasks", task["Id"], "deals")
        companies = fake.associated("tasks", task["Id"], "companies")
        company = next(iter(companies), None)
        return (next(iter(deals), None) or company), company
    return task.get("WhatId"), task.get("AccountId")


def test_every_task_sits_on_a_record(crm):  # noqa: F811
    """Renewal tasks on their renewal, the rest on the account, the named contact as WhoId;
    no task of any CRM without a parent record."""
    ctx, book, _ = crm
    acme = book.account("Acme")
    ann = book.contact(acme, "Ann Lee")
    book.contract(acme, soon(100), number="1")  # renewal due: tasks on the renewal
    book.contract(acme, soon(190), number="2")  # renewal prep due, no renewal yet
    beta = book.account("Beta")  # no renewal contact: "name a contact" on the account
    book.contract(beta, soon(100), number="3")
    assert run(ctx).failed == 0
    renewals = {o["Id"]: o for o in book.opportunities()}
    tasks = book.crm.all("Task")
    assert len(tasks) >= 4
    for task in tasks:
        what, account = parent_of(ctx, book, task)
        assert what is not None and account in (acme, beta), task
        key = task["Dedupe_Key__c"]
        if ":renewal_opportunity" in key:
            assert renewals[what]["Renewal_Key__c"] in key
        else:
            assert what == account, key
        assert task.get("WhoId") == (ann if account == acme else None), key
    keys = " ".join(t["Dedupe_Key__c"] for t in tasks)
    assert all(f":{step}" in keys for step in ("renewal_opportunity", "renewal_prep"))
    assert f"{beta}:name_contact:" in keys


def test_an_account_with_several_contracts_gets_one_task_per_account_step(crm):  # noqa: F811
    ctx, book, _ = crm
    acc = book.account("Acme")  # no renewal contact, and red
    book.crm.edit("Account", acc, {"NPS__c": -60, "Open_Tickets__c": 30, "Late_Payments__c": 4})
    for n in range(3):
        book.contract(acc, soon(100 + n), number=str(n))
    first = run(ctx)
    keys = Counter(t["Dedupe_Key__c"] for t in book.crm.all("Task"))
    assert all(n == 1 for n in keys.values()), keys
    account_tasks = [k for k in keys if k.startswith(f"{acc}:")]
    # the journey's task too (app.yaml enables it): one, on the account, not one per contract
    assert sorted(k.split(":")[1] for k in account_tasks) == ["at_risk", "journey", "name_contact"]
    assert first.tasks_created == len(keys)
    assert run(ctx).writes == {}


# ------------------------------------------------------------------ Salesforce, refused writes


@contextmanager
def salesforce(tmp_path, monkeypatch):
    """A fake org, the sync's context on it and a book to seed it."""
    tmp_path.mkdir(exist_ok=True)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        org = FakeOrg(rsps)
        ctx = bootstrap.build(load_config(salesforce_config(tmp_path, monkeypatch)))
        ctx.sleep = lambda _s: None
        try:
            yield ctx, SalesforceBook(org), org
        finally:
            ctx.close()


def lock_errors(org: FakeOrg, share: float, seed: int = 7, only: str | None = None):
    """Refuse this share of written records with UNABLE_TO_LOCK_ROW (a busy org)."""
    rnd = random.Random(seed)

    def refuse(obj: str, rec: dict):
        if (only is None or obj == only) and rnd.random() < share:
            return "UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record"
        return None

    org.refuse_record = refuse


def test_a_row_lock_is_retried_for_that_record_within_the_run(tmp_path, monkeypatch):
    with salesforce(tmp_path, monkeypatch) as (ctx, book, org):
        book.contract(book.account(), soon(), lines=(("SEAT", 10, 100.0), ("SUPPORT", 1, 50.0)))
        refused = []

        def once(obj, rec):
            if obj == "OpportunityLineItem" and not refused:
                refused.append(rec["Renewal_Line_Key__c"])
                return "UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record"
            return None

        org.refuse_record = once
        report = run(ctx)
        assert refused and (report.failed, report.dead_letters) == (0, 0)
        assert len([x for x in org.all("OpportunityLineItem") if x.get("Renewal_Line_Key__c")]) == 2


def test_a_refused_line_is_sent_again_and_the_rolled_up_amount_is_not_a_rep_edit(
    tmp_path, monkeypatch
):
    """Salesforce rolls Amount up from the lines that exist: after a refused line, the CRM's
    amount is not what we wrote. That is our doing, not a rep's: the next sync sends the line."""
    with salesforce(tmp_path, monkeypatch) as (ctx, book, org):
        book.contract(book.account(), soon(), lines=(("SEAT", 10, 100.0), ("SUPPORT", 1, 50.0)))
        support = lambda obj, rec: rec.get("UnitPrice") == 50.0  # noqa: E731
        org.refuse_record = lambda obj, rec: (  # locked for the whole run
            ("UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access")
            if support(obj, rec)
            else None
        )
        first = run(ctx)
        assert first.failed == 1
        (opp,) = book.opportunities()
        assert opp["Amount"] == 1000.0  # rolled up from the one line that exists
        org.refuse_record = None
        second = run(ctx)
        assert (second.failed, second.dead_letters) == (0, 0)
        (opp,) = book.opportunities()
        assert opp["Amount"] == 1050.0
        assert len([x for x in org.all("OpportunityLineItem") if x.get("Renewal_Line_Key__c")]) == 2
        assert run(ctx).writes == {}


def test_a_refused_task_is_sent_again_when_no_plan_brings_it_back(tmp_path, monkeypatch):
    """An at-risk task is planned on the day the grade turns red only: refused that day (a
    busy org all run long), it is sent by the next day's sync all the same."""
    with salesforce(tmp_path, monkeypatch) as (ctx, book, org):
        acc = book.account()
        book.contact(acc, "Ann Lee")
        book.crm.edit("Account", acc, {"NPS__c": -60, "Open_Tickets__c": 30, "Late_Payments__c": 4})
        book.contract(acc, soon())
        lock_errors(org, 1.0, only="Task")
        assert sync(ctx, as_of=AS_OF).failed == 1
        assert not [t for t in org.all("Task") if ":at_risk:" in t["Dedupe_Key__c"]]
        org.refuse_record = None
        report = sync(ctx, as_of=AS_OF + timedelta(days=1))
        risk = [t["Dedupe_Key__c"] for t in org.all("Task") if ":at_risk:" in t["Dedupe_Key__c"]]
        assert risk == [f"{acc}:at_risk:{AS_OF}"]
        assert (report.failed, report.dead_letters) == (0, 0)


def test_a_line_refused_for_an_inactive_price_book_entry_waits_for_deadletters_retry(
    tmp_path, monkeypatch
):
    with salesforce(tmp_path, monkeypatch) as (ctx, book, org):
        book.contract(book.account(), soon(), lines=(("SEAT", 10, 100.0), ("SUPPORT", 1, 50.0)))
        entry = next(
            i
            for i, e in org.records["PricebookEntry"].items()
            if e["Product2Id"] == book.products["SUPPORT"]
        )
        org.edit("PricebookEntry", entry, {"IsActive": False})
        first = run(ctx)
        (letter,) = ctx.store.dead_letters.list()
        assert (first.failed, letter.error_code) == (1, "PRICEBOOK_ENTRY_MISSING")
        # refused for good: the next sync does not send it to be refused again
        second = run(ctx)
        assert second.writes == {"renewal_line.held": 1} and second.failed == 1
        org.edit("PricebookEntry", entry, {"IsActive": True})
        _, retried = retry_dead_letters(ctx, as_of=AS_OF)
        assert (retried.failed, retried.writes, retried.dead_letters) == (
            0,
            {"renewal_line.create": 1},
            0,
        )
        (opp,) = book.opportunities()
        assert opp["Amount"] == 1050.0


def crm_state(org: FakeOrg) -> dict:
    """What the connector wrote, in keys and values (record ids differ between orgs)."""
    opps = {o["Id"]: o for o in org.all("Opportunity") if o.get("Renewal_Key__c")}
    keys = [o["Renewal_Key__c"] for o in opps.values()]
    lines = [x for x in org.all("OpportunityLineItem") if x.get("Renewal_Line_Key__c")]
    tasks = org.all("Task")
    line_keys = [x["Renewal_Line_Key__c"] for x in lines]
    task_keys = [t["Dedupe_Key__c"] for t in tasks]
    for found in (keys, line_keys, task_keys):
        assert len(found) == len(set(found)), "duplicates"
    return {
        "renewals": {
            o["Renewal_Key__c"]: (
                o["Name"],
                o["StageName"],
                o["CloseDate"],
                o["Amount"],
                o["OwnerId"],
            )
            for o in opps.values()
        },
        "lines": {
            x["Renewal_Line_Key__c"]: (
                opps[x["OpportunityId"]]["Renewal_Key__c"],
                x["ProductCode"],
                x["Quantity"],
                x["UnitPrice"],
            )
            for x in lines
        },
        "tasks": {
            t["Dedupe_Key__c"]: (
                opps[t["WhatId"]]["Renewal_Key__c"] if t["WhatId"] in opps else t["WhatId"],
                t["OwnerId"],
                t["Subject"],
                t["ActivityDate"],
            )
            for t in tasks
        },
    }


def seed_book(book: SalesforceBook) -> None:
    for a in range(12):
        acc = book.account(f"Account {a}")
        if a % 3:
            book.contact(acc, f"Contact {a}")
        for c in range(3):
            book.contract(
                acc,
                soon(95 + 5 * c + a),
                number=f"{a}-{c}",
                lines=(("SEAT", 5 + a, 100.0), ("SUPPORT", 1, 900.0), ("ADDON", 2, 250.0)),
            )


def test_faults_in_the_first_run_converge_to_the_fault_free_state_in_two_clean_runs(
    tmp_path, monkeypatch
):
    """5 % of written records refused with UNABLE_TO_LOCK_ROW, one 503 and an expired session
    in the first run; then at most two clean runs reach exactly what a run without faults
    writes, with no duplicates."""
    with salesforce(tmp_path / "clean", monkeypatch) as (ctx, book, org):
        seed_book(book)
        assert run(ctx).failed == 0
        expected = crm_state(org)
    assert len(expected["lines"]) == 108 and len(expected["tasks"]) > 36

    with salesforce(tmp_path / "faulty", monkeypatch) as (ctx, book, org):
        seed_book(book)
        rnd, seen = random.Random(2026), Counter()

        def busy(obj, rec):
            seen["records"] += 1
            if seen["records"] == 30:
                org.fail_next(503, [{"errorCode": "SERVER_UNAVAILABLE", "message": "busy"}])
            if seen["records"] == 150:
                org.expire_session()
            if rnd.random() < 0.05:
                seen["refused"] += 1
                return "UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record"
            return None

        org.refuse_record = busy
        logins = org.logins
        run(ctx)
        assert seen["refused"] > 5 and org.logins == logins + 1
        org.refuse_record = None
        states = []
        for _ in range(2):
            run(ctx)
            states.append(crm_state(org))
        assert states[-1] == expected
        assert ctx.store.dead_letters.list() == []


def test_hubspot_per_item_rate_limits_in_a_207_are_sent_again_within_the_run(tmp_path, monkeypatch):
    from contextlib import ExitStack

    from tests.contract.test_sync_contract import hubspot_context

    with ExitStack() as stack:
        ctx, book = hubspot_context(stack, tmp_path, monkeypatch)
        ctx.sleep = lambda _s: None
        stack.callback(ctx.close)
        book.contract(book.account(), soon(), lines=(("SEAT", 10, 100.0), ("SUPPORT", 1, 50.0)))
        fake = book.crm.fake
        fake.fail_inputs(2, status=429, route="line_items")
        fake.fail_inputs(1, status=503, route="tasks")
        report = run(ctx)
        assert fake.input_faults == [] and (report.failed, report.dead_letters) == (0, 0)
        renewal_lines = [x for x in book.crm.all("OpportunityLineItem") if x["Renewal_Line_Key__c"]]
        assert len(renewal_lines) == 2
        assert run(ctx).writes == {}
