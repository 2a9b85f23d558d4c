"""Bulk API 2.0 ingest jobs: the adapter's lifecycle (connector/adapters/salesforce/
bulk_ingest.py) against the fake org's (tests/fakes/salesforce_ingest.py: the documented rules)."""

from __future__ import annotations

import pytest
import requests
import responses

from crm_renewals.connector.adapters.salesforce.bulk_ingest import BulkIngest, _error
from crm_renewals.connector.adapters.salesforce.transport import SalesforceTransport
from crm_renewals.connector.config_sections import SalesforceSettings
from tests.fakes.salesforce_org import BASE, FakeOrg
from tests.unit.test_salesforce_composite import opportunity as renewal


@pytest.fixture
def org():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield FakeOrg(rsps)


@pytest.fixture
def ingest(org):
    from simple_salesforce import Salesforce

    sf = Salesforce(session_id=org.session, instance_url=BASE.split("/services")[0])
    transport = SalesforceTransport(sf, SalesforceSettings(), sleep=lambda _s: None)
    return BulkIngest(transport)


def call(org: FakeOrg, method: str, path: str, **kw) -> requests.Response:
    auth = {"Authorization": f"Bearer {org.session}"}
    return requests.request(method, BASE + path, headers={**auth, **kw.pop("headers", {})}, **kw)


def test_answers_come_back_in_the_records_order_though_results_are_not(ingest, org):
    records = [renewal(f"K{i}") for i in range(30)]
    answers = ingest.write("Opportunity", "upsert", "Renewal_Key__c", records)
    by_key = {r["Renewal_Key__c"]: r["Id"] for r in org.all("Opportunity")}
    assert [a["id"] for a in answers] == [by_key[f"K{i}"] for i in range(30)]
    assert all(a["success"] and a["created"] for a in answers)


def test_null_clears_a_field_and_a_field_not_sent_is_left_as_it_is(ingest, org):
    ingest.write(
        "Opportunity", "upsert", "Renewal_Key__c", [renewal("A", Amount=5.0), renewal("B")]
    )
    answers = ingest.write(
        "Opportunity",
        "upsert",
        "Renewal_Key__c",
        [renewal("A", Amount=None), {"attributes": {"type": "Opportunity"}, "Renewal_Key__c": "B"}],
    )
    assert [a["created"] for a in answers] == [False, False]
    saved = {r["Renewal_Key__c"]: r for r in org.all("Opportunity")}
    assert saved["A"]["Amount"] is None  # sent as #N/A
    assert saved["B"]["Name"] == "B"  # an empty cell changes nothing


def test_a_refused_record_fails_alone_with_its_code_message_and_fields(ingest, org):
    org.refuse_record = lambda obj, rec: (
        ("UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record")
        if rec["Renewal_Key__c"] == "B"
        else None
    )
    answers = ingest.write("Opportunity", "upsert", "Renewal_Key__c", [renewal(k) for k in "ABC"])
    assert [a["success"] for a in answers] == [True, False, True]
    assert answers[1]["errors"][0]["statusCode"] == "UNABLE_TO_LOCK_ROW"
    assert "exclusive access" in answers[1]["errors"][0]["message"]


def test_an_insert_of_a_key_that_exists_answers_duplicate_value_naming_the_record(ingest, org):
    task = {"attributes": {"type": "Task"}, "Subject": "Call", "Dedupe_Key__c": "T1"}
    (first,) = ingest.write("Task", "insert", "Dedupe_Key__c", [task])
    (again,) = ingest.write("Task", "insert", "Dedupe_Key__c", [task])
    assert first["success"] and not again["success"]
    error = again["errors"][0]
    assert error["statusCode"] == "DUPLICATE_VALUE" and first["id"] in error["message"]
    assert error["fields"] == ["Dedupe_Key__c"]


@pytest.mark.parametrize(
    ("text", "code", "message", "fields"),
    [
        ("REQUIRED_FIELD_MISSING:Required fields are missing: [Name]:Name --",
         "REQUIRED_FIELD_MISSING", "Required fields are missing: [Name]", ["Name"]),
        ("INVALID_FIELD:No such column 'X' on entity:", "INVALID_FIELD",
         "No such column 'X' on entity", []),
        ("ENTITY_IS_DELETED:entity is deleted --", "ENTITY_IS_DELETED", "entity is deleted", []),
        ("something odd happened", "UNKNOWN_ERROR", "something odd happened", []),
    ],
)  # fmt: skip
def test_sf_error_text_is_read_as_code_message_and_fields(text, code, message, fields):
    error = _error(text)
    assert (error["statusCode"], error["message"], error.get("fields", [])) == (
        code,
        message,
        fields,
    )


def test_a_failed_job_answers_what_it_did_not_process_as_retriable(ingest, org):
    org.ingest.fail_next = (2, "InvalidBatch : Failed to process")
    answers = ingest.write("Opportunity", "upsert", "Renewal_Key__c", [renewal(k) for k in "ABCD"])
    assert [a["success"] for a in answers] == [True, True, False, False]
    error = answers[2]["errors"][0]
    assert error["statusCode"] == "SERVER_UNAVAILABLE" and "Failed to process" in error["message"]


def test_a_job_still_running_after_the_longest_wait_is_aborted_and_what_it_did_read_back(
    ingest, org
):
    org.ingest.polls_to_complete = 10**6
    ingest.max_wait = 10.0
    org.ingest.fail_next = (1, "")  # the org got through one row of two
    answers = ingest.write("Opportunity", "upsert", "Renewal_Key__c", [renewal(k) for k in "AB"])
    (job,) = org.ingest.jobs.values()
    assert job["state"] == "Aborted" and job["_polls"] == 4  # waited 1 + 2 + 4 + 8 s
    assert answers[0]["success"]
    assert answers[1]["errors"][0]["statusCode"] == "SERVER_UNAVAILABLE"  # sent again


def test_each_job_request_is_one_call_and_a_clean_job_costs_five_plus_its_extra_polls(ingest, org):
    used = org.api_used
    ingest.write("Opportunity", "upsert", "Renewal_Key__c", [renewal(k) for k in "AB"])
    polls = org.ingest.polls_to_complete + 1
    assert org.api_used - used == 4 + polls  # create, upload, close, polls, successful results


def test_the_fake_refuses_what_the_docs_refuse(org):
    created = call(
        org, "POST", "jobs/ingest", json={"object": "Opportunity", "operation": "upsert"}
    )
    assert created.status_code == 400  # upsert needs externalIdFieldName
    body = {"object": "Opportunity", "operation": "insert", "contentType": "CSV"}
    job = call(org, "POST", "jobs/ingest", json=body).json()
    assert job["state"] == "Open" and job["contentUrl"].endswith("/batches")
    csv_header = {"Content-Type": "text/csv"}
    not_csv = call(org, "PUT", f"jobs/ingest/{job['id']}/batches", data=b"Name\nX\n")
    assert not_csv.status_code == 400
    early = call(org, "GET", f"jobs/ingest/{job['id']}/successfulResults/")
    assert early.status_code == 400  # not complete yet
    upload = call(
        org, "PUT", f"jobs/ingest/{job['id']}/batches", data=b"Name\nX\n", headers=csv_header
    )
    assert upload.status_code == 201 and upload.text == ""
    closed = call(org, "PATCH", f"jobs/ingest/{job['id']}", json={"state": "UploadComplete"})
    assert closed.json()["state"] == "UploadComplete"
    late = call(
        org, "PUT", f"jobs/ingest/{job['id']}/batches", data=b"Name\nY\n", headers=csv_header
    )
    assert late.status_code == 400  # only an Open job takes data
