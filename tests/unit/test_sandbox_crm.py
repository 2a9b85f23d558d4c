"""The sandbox CRM keeps the semantics of the real CRMs the demo and e2e tests rely on."""

from __future__ import annotations

from pathlib import Path

import pytest

from crm_renewals.connector.adapters.sandbox import SandboxCrm
from crm_renewals.connector.errors import CrmError
from crm_renewals.connector.mapping_file import load_mapping
from crm_renewals.connector.ports import OutboundRecord

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def crm(tmp_path):
    mapping = load_mapping(ROOT / "mappings" / "sandbox.yaml")
    sandbox = SandboxCrm(tmp_path / "crm.db", mapping, batch_size=3, page_size=2)
    yield sandbox
    sandbox.close()


def test_reads_page_by_page_with_one_call_per_page(crm):
    for i in range(4):
        crm.insert("User", {"Name": f"U{i}", "IsActive": True})
    pages = list(crm.read_changes("owner", None))
    assert [len(p) for p in pages] == [2, 2]
    assert crm.api_calls == 2  # no extra empty page after a full one


def test_upsert_by_external_key_never_duplicates(crm):
    user = crm.insert("User", {"Name": "Sam", "IsActive": True})
    acc = crm.insert("Account", {"Name": "Acme", "OwnerId": user})
    rec = OutboundRecord(
        "K1",
        {
            "Name": "R",
            "StageName": "Prospecting",
            "CloseDate": "2027-01-01",
            "OwnerId": user,
            "AccountId": acc,
        },
    )
    first, second = (
        crm.upsert("renewal_opportunity", [rec]),
        crm.upsert("renewal_opportunity", [rec]),
    )
    assert first[0].created and not second[0].created and first[0].crm_id == second[0].crm_id
    assert len(crm.all("Opportunity")) == 1


def test_one_bad_record_in_a_batch_does_not_sink_the_others(crm):
    user = crm.insert("User", {"Name": "Sam", "IsActive": True})
    gone = crm.insert("User", {"Name": "Gone", "IsActive": False})
    acc = crm.insert("Account", {"Name": "Acme", "OwnerId": user})
    base = {"Name": "R", "StageName": "Prospecting", "CloseDate": "2027-01-01", "AccountId": acc}
    results = crm.upsert(
        "renewal_opportunity",
        [
            OutboundRecord("A", {**base, "OwnerId": user}),
            OutboundRecord("B", {**base, "OwnerId": gone}),
        ],
    )
    assert [r.ok for r in results] == [True, False]
    assert results[1].error_code == "INACTIVE_OWNER_OR_USER"


def test_batches_over_the_limit_are_refused(crm):
    with pytest.raises(CrmError, match="exceeds the limit of 3"):
        crm.create_missing("task", [OutboundRecord(str(i), {}) for i in range(4)])


def test_create_missing_leaves_existing_records_alone(crm):
    user = crm.insert("User", {"Name": "Sam", "IsActive": True})
    task = {"Subject": "Call", "OwnerId": user, "ActivityDate": "2027-01-01"}
    crm.create_missing("task", [OutboundRecord("T1", task)])
    crm.create_missing("task", [OutboundRecord("T1", {**task, "Subject": "Changed"})])
    assert [t["Subject"] for t in crm.all("Task")] == ["Call"]


def test_deleted_records_show_up_in_change_reads(crm):
    uid = crm.insert("User", {"Name": "Sam", "IsActive": True})
    crm.remove("User", uid)
    (page,) = list(crm.read_changes("owner", None))
    assert page[0].deleted and page[0].fields["IsDeleted"] is True


def test_read_ids_returns_current_state_deleted_flagged_unknown_absent(crm):
    a = crm.insert("User", {"Name": "A", "IsActive": True})
    b = crm.insert("User", {"Name": "B", "IsActive": True})
    crm.remove("User", b)
    got = {r.id: r for r in crm.read_ids("owner", [a, b, "005NOPE", a])}
    assert set(got) == {a, b}
    assert got[b].deleted and not got[a].deleted
    assert got[a].fields["Name"] == "A"


def test_writes_are_checked_against_the_schema_as_salesforce_checks_them(crm):
    user = crm.insert("User", {"Name": "Sam", "IsActive": True})
    acc = crm.insert("Account", {"Name": "Acme", "OwnerId": user})
    base = {"Name": "R", "StageName": "Prospecting", "CloseDate": "2027-01-01", "OwnerId": user}
    base["AccountId"] = acc
    results = crm.upsert(
        "renewal_opportunity",
        [
            OutboundRecord("A", {**base, "Amount_Total__c": 10}),
            OutboundRecord("B", {**base, "StageName": "Won-ish"}),
            OutboundRecord("C", base),
        ],
    )
    assert [(r.ok, r.error_code) for r in results] == [
        (False, "INVALID_FIELD"),
        (False, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"),
        (True, None),
    ]
    assert "No such column 'Amount_Total__c' on sobject of type Opportunity" in results[0].message
    task = {"Subject": "Call", "OwnerId": user, "ActivityDate": "2027-01-01", "AccountId": acc}
    (refused,) = crm.upsert("task", [OutboundRecord("T1", task)])
    assert refused.error_code == "INVALID_FIELD_FOR_INSERT_UPDATE"  # derived from WhatId


def test_the_demo_book_fits_the_sandbox_schema(tmp_path):
    """One source of truth: every field the seed writes is in the schema, every picklist
    value among its values (the schema is what `mappings validate --online` checks)."""
    from datetime import date

    from crm_renewals.connector.adapters.sandbox.schema import OBJECTS
    from crm_renewals.connector.adapters.sandbox.seed import seed

    mapping = load_mapping(ROOT / "mappings" / "sandbox.yaml")
    crm = SandboxCrm(tmp_path / "demo.db", mapping)
    seed(crm, as_of=date(2026, 11, 30))
    for obj, fields in OBJECTS.items():
        for record in crm.all(obj):
            assert set(record) <= set(fields), (obj, set(record) - set(fields))
            for name, value in record.items():
                allowed = fields[name].picklist
                assert not allowed or value is None or value in allowed, (obj, name, value)
    crm.close()
