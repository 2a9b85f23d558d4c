"""Writing to HubSpot: idempotent batch upserts, 207 multi-status, tasks once, update by id."""

from __future__ import annotations

import json

import pytest

from crm_renewals.connector.errors import CrmError
from crm_renewals.connector.ports import OutboundRecord
from tests.fakes.hubspot_server import FIXTURES
from tests.hubspot.conftest import health_by_id


def renewal(key: str, company: str | None = None, **props) -> OutboundRecord:
    fields = {"dealname": f"Renewal {key}", "dealstage": "appointmentscheduled", **props}
    if company:
        fields["associated_company_id"] = company
    return OutboundRecord(key, fields)


def test_batch_upsert_twice_creates_no_new_objects(crm, fake, hub):
    company = hub.company()
    batch = [renewal(f"c{i}:2027-03-31", company) for i in range(100)]
    first = crm.upsert("renewal_opportunity", batch)
    assert all(r.ok and r.created for r in first)
    assert fake.count("deals/batch/upsert") == 1  # 100 inputs, one call
    second = crm.upsert("renewal_opportunity", batch)
    assert all(r.ok and not r.created for r in second)
    assert [r.crm_id for r in second] == [r.crm_id for r in first]
    assert len(fake.live("deals")) == 100
    deal = fake.get("deals", first[0].crm_id)
    assert (deal["pipeline"], deal["renewal_key"]) == ("default", "c0:2027-03-31")


def test_upsert_request_has_the_documented_wire_shape(crm, fake):
    sent = json.loads((FIXTURES / "batch_upsert_request.json").read_text())["inputs"]
    records = [OutboundRecord(i["id"], i["properties"]) for i in sent]
    fake.load_owners()
    fake.properties["deals"].update(
        {n: {"name": n, "type": "string"} for n in ("renewal_health_score", "renewal_health_grade")}
    )
    results = crm.upsert("renewal_opportunity", records)
    assert all(r.ok for r in results)
    stored = fake.find("deals", "renewal_key", "contract-501-2027-03-31")
    assert stored["dealname"] == "Acme Corp - Renewal 2027-03"
    ((route, body),) = [r for r in fake.requests if r[0].endswith("/batch/upsert")]
    assert route == "POST /crm/v3/objects/deals/batch/upsert"
    for got, want in zip(body["inputs"], sent, strict=True):
        assert (got["idProperty"], got["id"], got["properties"]) == (
            want["idProperty"],
            want["id"],
            want["properties"],
        )
    # one trace id per input, unique within the call: answers are matched by it
    traces = [got["objectWriteTraceId"] for got in body["inputs"]]
    assert len(set(traces)) == len(traces) == len(sent)


def test_multi_status_errors_fail_only_their_records_with_category_and_message(crm, fake):
    bad = renewal("k2", renewal_health_scor="38")  # misspelt property, as in the fixture
    results = crm.upsert("renewal_opportunity", [renewal("k1"), bad, renewal("k3")])
    assert [r.ok for r in results] == [True, False, True]
    assert results[1].error_code == "VALIDATION_ERROR"
    assert "renewal_health_scor" in results[1].message
    assert fake.statuses[207] == 1


def test_a_whole_batch_refused_is_split_until_the_bad_record_is_found(crm, fake):
    fake.fail_next(
        "deals/batch/upsert",
        400,
        {"status": "error", "category": "VALIDATION_ERROR", "message": "bad input"},
    )
    results = crm.upsert("renewal_opportunity", [renewal("k1"), renewal("k2")])
    assert [r.ok for r in results] == [True, True]
    assert fake.count("deals/batch/upsert") == 3


def test_associations_are_created_once(crm, fake, hub):
    company = hub.company()
    crm.upsert("renewal_opportunity", [renewal("k1", company)])
    line = OutboundRecord(
        "k1:SEAT", {"hs_sku": "SEAT", "quantity": 1, "renewal_deal_key": "k1"}, "k1"
    )
    crm.upsert("renewal_line", [line])
    crm.upsert("renewal_line", [line])
    deal = fake.find("deals", "renewal_key", "k1")["hs_object_id"]
    item = fake.find("line_items", "renewal_line_key", "k1:SEAT")["hs_object_id"]
    assert fake.associated("line_items", item, "deals") == {deal: {("HUBSPOT_DEFINED", 20)}}
    assert fake.associated("deals", deal, "companies") == {company: {("HUBSPOT_DEFINED", 5)}}
    assert fake.new_links == 2


def test_a_line_known_to_exist_is_updated_in_one_call(crm, fake, hub):
    crm.upsert("renewal_opportunity", [renewal("k1", hub.company())])
    line = OutboundRecord(
        "k1:SEAT", {"hs_sku": "SEAT", "quantity": 1, "renewal_deal_key": "k1"}, "k1"
    )
    crm.upsert("renewal_line", [line])
    crm.ids.clear()  # a later run: it has not read the renewal's id
    before = fake.count("")
    changed = OutboundRecord(line.key, {**line.fields, "quantity": 3}, "k1", exists=True)
    (result,) = crm.upsert("renewal_line", [changed])
    assert result.ok and not result.created
    # no lookup of the renewal, no association again: its line's parent never changes
    assert fake.count("") - before == 1 == fake.count("line_items/batch/upsert") - 1
    item = fake.find("line_items", "renewal_line_key", "k1:SEAT")
    assert float(item["quantity"]) == 3


def test_a_child_of_an_unknown_renewal_is_refused_without_a_call(crm, fake):
    line = OutboundRecord("k9:SEAT", {"hs_sku": "SEAT", "renewal_deal_key": "k9"}, "k9")
    (result,) = crm.upsert("renewal_line", [line])
    assert (result.ok, result.error_code) == (False, "INVALID_CROSS_REFERENCE_KEY")
    assert fake.count("line_items/batch/upsert") == 0


def test_tasks_are_created_once_per_dedupe_key_with_inline_associations(crm, fake, hub):
    company = hub.company()
    crm.upsert("renewal_opportunity", [renewal("k1", company)])
    task = OutboundRecord(
        "k1:notice",
        {
            "hs_task_subject": "Notify",
            "hs_timestamp": "2027-01-04",
            "hs_task_status": "NOT_STARTED",
            "associated_company_id": company,
        },
        "k1",
    )
    (first,) = crm.create_missing("task", [task])
    fake.edit("tasks", first.crm_id, {"hs_task_status": "COMPLETED"})  # the rep's work
    (second,) = crm.create_missing("task", [task])
    assert (first.created, second.created, second.crm_id) == (True, False, first.crm_id)
    assert fake.get("tasks", first.crm_id)["hs_task_status"] == "COMPLETED"
    assert len(fake.live("tasks")) == 1
    assert set(fake.associated("tasks", first.crm_id, "companies")) == {company}
    assert fake.count("associations/tasks") == 0  # inline, no separate call


def test_delete_archives_by_key_and_a_missing_key_counts_as_deleted(crm, fake):
    crm.upsert("renewal_opportunity", [renewal("k1")])
    line = OutboundRecord("k1:A", {"hs_sku": "A", "renewal_deal_key": "k1"}, "k1")
    crm.upsert("renewal_line", [line])
    results = crm.delete("renewal_line", ["k1:A", "k1:gone"])
    assert all(r.ok for r in results)
    assert fake.live("line_items") == []


def test_key_field_id_kinds_update_by_object_id_only(crm, fake):
    health_by_id(crm)
    company = fake.create("companies", {"name": "Acme"})
    results = crm.upsert(
        "account_health",
        [
            OutboundRecord(company, {"renewal_health_score": 42}),
            OutboundRecord("424242", {"renewal_health_score": 1}),
        ],
    )
    assert [r.ok for r in results] == [True, False]
    assert results[1].error_code == "OBJECT_NOT_FOUND"
    assert fake.get("companies", company)["renewal_health_score"] == "42"
    assert len(fake.live("companies")) == 1


def test_batches_above_100_are_refused_before_any_call(crm, fake):
    with pytest.raises(CrmError, match="100"):
        crm.upsert("renewal_opportunity", [renewal(f"k{i}") for i in range(101)])
    assert sum(fake.calls.values()) == 0


def test_every_task_sits_on_its_company_and_on_its_renewal_and_contact_where_given(crm, fake, hub):
    company = hub.company()
    ann = hub.contact(company, "Ann Buyer")
    crm.upsert("renewal_opportunity", [renewal("k1", company)])
    deal = fake.find("deals", "renewal_key", "k1")["hs_object_id"]

    def task(key: str, parent: str | None, contact: str | None) -> OutboundRecord:
        fields = {
            "hs_task_subject": key,
            "renewal_deal_key": parent,
            "associated_company_id": company,
            "associated_contact_id": contact,
        }
        return OutboundRecord(key, fields, parent)

    # (record, deal expected, contact expected): account-level tasks have no renewal
    cases = [
        (task("k1:notice", "k1", ann), deal, ann),
        (task("k1:prep", "k1", None), deal, None),
        (task("acct:review", None, ann), None, ann),
        (task("acct:nudge", None, None), None, None),
    ]
    results = crm.create_missing("task", [rec for rec, _, _ in cases])
    assert all(r.ok and r.created for r in results), results
    for (rec, want_deal, want_contact), res in zip(cases, results, strict=True):
        tid = res.crm_id
        assert fake.get("tasks", tid)["renewal_task_key"] == rec.key
        assert fake.associated("tasks", tid, "companies") == {company: {("HUBSPOT_DEFINED", 192)}}
        deals = {want_deal: {("HUBSPOT_DEFINED", 216)}} if want_deal else {}
        contacts = {want_contact: {("HUBSPOT_DEFINED", 204)}} if want_contact else {}
        assert fake.associated("tasks", tid, "deals") == deals
        assert fake.associated("tasks", tid, "contacts") == contacts
    assert fake.count("associations/tasks") == 0  # all inline, in the create call
