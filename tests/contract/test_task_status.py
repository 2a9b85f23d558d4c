"""Tasks the connector wrote are read back on every sync, on every CRM: their status as a rep
left it (and when they completed it, where the CRM says), never rewritten."""

from __future__ import annotations

from crm_renewals.connector.domain.mapping import to_model
from crm_renewals.connector.ports import Cursor, OutboundRecord
from crm_renewals.connector.services.gather import load_book
from tests.contract.test_port_contract import (  # noqa: F401
    h,
    read_all,
    renewal,
    seed_account,
    seed_owner,
)
from tests.contract.test_sync_contract import crm, run, soon  # noqa: F401

#: the CRM's completion field, in the harness's (sandbox) words
COMPLETED_AT = "CompletedDateTime"
#: CRMs documented to stamp when a task was completed (Salesforce Task.CompletedDateTime, read
#: only; the sandbox does as Salesforce). HubSpot's hs_task_completion_date: not confirmed, so
#: our fake leaves it unset and nothing here relies on it
STAMPS_COMPLETION = {"salesforce", "sandbox"}


def read_back(ctx) -> dict:
    """The tasks the last sync read, by dedupe key."""
    return {t.dedupe_key: t for t in load_book(ctx.store).tasks.values()}


def test_a_task_a_rep_completed_is_read_back_completed_and_never_rewritten(crm):  # noqa: F811
    ctx, book, _ = crm
    book.contract(book.account("Acme"), soon(80))
    first = run(ctx)
    assert first.tasks_created >= 1 and first.failed == 0
    assert run(ctx).writes == {}  # the next sync reads what the first one wrote
    assert {t.status for t in read_back(ctx).values()} == {"open"}
    task = sorted(book.crm.all("Task"), key=lambda t: t["Dedupe_Key__c"])[0]
    book.crm.edit("Task", task["Id"], {"Status": "Completed"})
    second = run(ctx)
    assert (second.writes, second.failed, second.map_failures) == ({}, 0, [])
    done = read_back(ctx)[task["Dedupe_Key__c"]]
    assert done.status == "completed"
    stamped = ctx.config.crm in STAMPS_COMPLETION
    assert (done.completed_at is not None) == stamped
    assert done.due_date.isoformat() == str(task["ActivityDate"])[:10]
    after = book.crm.get("Task", task["Id"])
    assert after["Status"] == "Completed" and bool(after.get(COMPLETED_AT)) == stamped
    assert run(ctx).writes == {}


def test_a_status_outside_the_value_map_reads_as_open_without_a_dead_letter(crm):  # noqa: F811
    ctx, book, _ = crm
    acc = book.account("Acme")
    book.contract(acc, soon(80))
    run(ctx)
    first, second = sorted(book.crm.all("Task"), key=lambda t: t["Dedupe_Key__c"])[:2]
    book.crm.edit("Task", first["Id"], {"Status": "In Progress"})
    book.crm.edit("Task", second["Id"], {"Status": "Parked by the rep"})  # an admin's value
    report = run(ctx)
    assert (report.writes, report.failed, report.map_failures) == ({}, 0, [])
    tasks = read_back(ctx)
    assert tasks[first["Dedupe_Key__c"]].status == "open"
    assert tasks[second["Dedupe_Key__c"]].completed_at is None
    assert tasks[second["Dedupe_Key__c"]].status == "open"
    assert ctx.store.dead_letters.open_count() == 0


def test_only_the_tasks_the_connector_wrote_are_read(crm):  # noqa: F811
    ctx, book, _ = crm
    owner = book.user("Sam Rep")
    acc = book.account("Acme", owner=owner)
    book.contract(acc, soon(80))
    book.crm.insert("Task", {"Subject": "Lunch", "OwnerId": owner, "Status": "Not Started"})
    created = run(ctx).tasks_created
    report = run(ctx)
    assert (report.writes, report.failed, report.map_failures) == ({}, 0, [])
    written = [t for t in book.crm.all("Task") if t.get("Dedupe_Key__c")]
    assert len(read_back(ctx)) == len(written) == created >= 1


def test_the_port_reads_our_tasks_only_and_a_completion_after_the_cursor(h, request):  # noqa: F811
    owner = seed_owner(h)
    account = seed_account(h, owner)
    h.crm.upsert("renewal_opportunity", [renewal("K1", owner, account)])
    task = {"Subject": "Call", "OwnerId": owner, "ActivityDate": "2027-01-04"}
    h.crm.create_missing("task", [OutboundRecord("K1:prep", task, "K1")])
    theirs = h.admin.insert("Task", {"Subject": "Lunch", "OwnerId": owner})
    (ours,) = read_all(h, "task")
    model = to_model(h.crm.mapping, "task", ours.fields)
    assert (model.dedupe_key, model.status, model.completed_at) == ("K1:prep", "open", None)
    assert [r.id for r in h.crm.read_ids("task", [ours.id, theirs])] == [ours.id]
    h.admin.edit("Task", ours.id, {"Status": "Completed"})
    (done,) = read_all(h, "task", Cursor(ours.modified_at, ours.id))
    model = to_model(h.crm.mapping, "task", done.fields)
    assert model.status == "completed"
    assert (model.completed_at is not None) == (
        request.node.callspec.params["h"] in STAMPS_COMPLETION
    )
