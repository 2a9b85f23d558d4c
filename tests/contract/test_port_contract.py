"""The CRM port's promises, checked the same way against every adapter.

The sandbox must behave like the real CRMs (so the demo and e2e tests prove something), and
each real adapter must keep the promises the sync service relies on."""

from __future__ import annotations

import pytest

from crm_renewals.connector.domain.mapping import to_model
from crm_renewals.connector.ports import Cursor, OutboundRecord
from tests.fakes.harness import harness

ADAPTERS = ["sandbox", "salesforce", "hubspot"]


@pytest.fixture(params=ADAPTERS)
def h(request, tmp_path):
    with harness(request.param, tmp_path, page_size=2) as made:
        yield made


def seed_owner(h, active: bool = True) -> str:
    return h.admin.insert("User", {"Name": "Sam Seller", "IsActive": active})


def seed_account(h, owner: str, name: str = "Acme") -> str:
    return h.admin.insert("Account", {"Name": name, "OwnerId": owner})


def renewal(key: str, owner: str, account: str, **extra) -> OutboundRecord:
    fields = {
        "Name": f"Renewal {key}",
        "StageName": "Prospecting",
        "CloseDate": "2027-03-31",
        "OwnerId": owner,
        "AccountId": account,
        **extra,
    }
    return OutboundRecord(key, fields)


def read_all(h, kind, since=None):
    return [r for page in h.crm.read_changes(kind, since) for r in page]


def test_reads_page_by_page_oldest_first_and_resumes_after_a_cursor(h):
    owner = seed_owner(h)
    ids = [seed_account(h, owner, f"A{i}") for i in range(5)]
    pages = list(h.crm.read_changes("account", None))
    assert [len(p) for p in pages] == [2, 2, 1]
    records = [r for p in pages for r in p]
    assert [r.id for r in records] == ids
    assert [r.cursor for r in records] == sorted(r.cursor for r in records)
    h.admin.edit("Account", ids[1], {"Name": "Renamed"})
    later = read_all(h, "account", Cursor(records[-1].modified_at, records[-1].id))
    assert [(r.id, r.fields["Name"]) for r in later] == [(ids[1], "Renamed")]


def test_records_sharing_a_stamp_across_a_page_boundary_are_not_skipped(h):
    owner = seed_owner(h)
    h.freeze_clock()
    ids = {seed_account(h, owner, f"A{i}") for i in range(3)}
    first_page = next(iter(h.crm.read_changes("account", None)))
    # the sync re-reads from the stamp of the last record it took (minus an overlap)
    since = Cursor(first_page[-1].modified_at, "")
    assert ids <= {r.id for r in read_all(h, "account", since)}


def test_deleted_records_come_back_flagged(h):
    owner = seed_owner(h)
    gone = seed_account(h, owner, "Gone")
    h.admin.remove("Account", gone)
    (record,) = [r for r in read_all(h, "account") if r.id == gone]
    assert record.deleted


def test_read_ids_returns_current_state(h):
    owner = seed_owner(h)
    a, b = seed_account(h, owner, "A"), seed_account(h, owner, "B")
    h.admin.remove("Account", b)
    got = {r.id: r for r in h.crm.read_ids("account", [a, b])}
    assert set(got) == {a, b}
    assert got[b].deleted and not got[a].deleted
    assert got[a].fields["Name"] == "A"


def test_upsert_by_key_creates_once_then_updates(h):
    owner = seed_owner(h)
    account = seed_account(h, owner)
    (first,) = h.crm.upsert("renewal_opportunity", [renewal("C1:2027-03-31", owner, account)])
    again = renewal("C1:2027-03-31", owner, account, Amount=1200.0)
    (second,) = h.crm.upsert("renewal_opportunity", [again])
    assert first.ok and first.created and second.ok and not second.created
    assert first.crm_id == second.crm_id
    (opp,) = h.admin.all("Opportunity")
    assert opp["Amount"] == 1200.0 and opp["Renewal_Key__c"] == "C1:2027-03-31"


def test_one_refused_record_does_not_fail_its_batch(h):
    owner, former = seed_owner(h), seed_owner(h, active=False)
    account = seed_account(h, owner)
    results = h.crm.upsert(
        "renewal_opportunity",
        [
            renewal("K1", owner, account),
            renewal("K2", former, account),
            renewal("K3", owner, account),
        ],
    )
    assert [r.ok for r in results] == [True, False, True]
    assert results[1].error_code == h.inactive_owner_code
    assert sorted(o["Renewal_Key__c"] for o in h.admin.all("Opportunity")) == ["K1", "K3"]


def test_children_attach_to_their_parent_and_reconcile_without_duplicates(h):
    owner = seed_owner(h)
    account = seed_account(h, owner)
    h.admin.insert("Product2", {"ProductCode": "SEAT", "Name": "Seat", "ListPrice": 100})
    h.crm.upsert("renewal_opportunity", [renewal("K1", owner, account)])
    line = {"ProductCode": "SEAT", "Quantity": 10, "UnitPrice": 100.0}
    (created,) = h.crm.upsert("renewal_line", [OutboundRecord("K1:SEAT", line, "K1")])
    (updated,) = h.crm.upsert(
        "renewal_line", [OutboundRecord("K1:SEAT", {**line, "Quantity": 12}, "K1")]
    )
    assert created.created and updated.ok and not updated.created
    (read,) = [r for r in read_all(h, "renewal_line") if not r.deleted]
    model = to_model(h.crm.mapping, "renewal_line", read.fields)
    assert (model.quantity, model.renewal_key, model.product_code) == (12, "K1", "SEAT")
    (deleted, unknown) = h.crm.delete("renewal_line", ["K1:SEAT", "K1:NEVER"])
    assert deleted.ok and unknown.ok
    assert all(r.deleted for r in read_all(h, "renewal_line"))


def test_create_missing_leaves_existing_records_untouched(h):
    owner = seed_owner(h)
    account = seed_account(h, owner)
    h.crm.upsert("renewal_opportunity", [renewal("K1", owner, account)])
    task = {"Subject": "Call", "OwnerId": owner, "ActivityDate": "2027-01-04"}
    (first,) = h.crm.create_missing("task", [OutboundRecord("K1:prep", task, "K1")])
    (stored,) = h.admin.all("Task")
    h.admin.edit("Task", stored["Id"], {"Subject": "Rep's words"})
    (second,) = h.crm.create_missing("task", [OutboundRecord("K1:prep", task, "K1")])
    assert first.ok and first.created and second.ok and not second.created
    (stored,) = h.admin.all("Task")
    assert stored["Subject"] == "Rep's words"


def test_every_call_is_counted(h):
    owner = seed_owner(h)
    seed_account(h, owner)
    before = h.crm.api_calls
    read_all(h, "account")
    assert h.crm.api_calls == before + h.calls_per_small_read
