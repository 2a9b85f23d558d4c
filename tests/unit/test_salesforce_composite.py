"""Composite writes: five sObject Collections requests of 200 records in one API call, against
the fake org's Composite resource (tests/fakes/salesforce_composite.py: the documented rules)."""

from __future__ import annotations

import pytest
import requests
import responses

from crm_renewals.connector import bootstrap
from crm_renewals.connector.config import load_config
from crm_renewals.connector.ports import OutboundRecord
from crm_renewals.connector.services import sync
from tests.conftest import AS_OF
from tests.contract.test_sync_contract import SalesforceBook
from tests.fakes.harness import salesforce_config
from tests.fakes.salesforce_org import BASE, FakeOrg

PREFIX = "/services/data/v59.0/"
BUSY = [{"errorCode": "SERVER_UNAVAILABLE", "message": "busy"}]


@pytest.fixture
def org():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield FakeOrg(rsps)


@pytest.fixture
def ctx(org, tmp_path, monkeypatch):
    path = salesforce_config(tmp_path, monkeypatch)
    context = bootstrap.build(load_config(path))
    context.sleep = lambda _s: None
    yield context
    context.close()


def post(org: FakeOrg, body) -> tuple[int, object]:
    """A Composite request straight to the fake org, as Salesforce would get it."""
    answer = requests.post(
        f"{BASE}composite", json=body, headers={"Authorization": f"Bearer {org.session}"}
    )
    return answer.status_code, answer.json()


def opportunity(key: str, **fields) -> dict:
    return {
        "attributes": {"type": "Opportunity"},
        "Renewal_Key__c": key,
        "Name": key,
        "StageName": "Prospecting",
        "CloseDate": "2027-03-01",
        **fields,
    }


def collection(ref: str, *records: dict) -> dict:
    return {
        "method": "PATCH",
        "url": f"{PREFIX}composite/sobjects/Opportunity/Renewal_Key__c",
        "referenceId": ref,
        "body": {"allOrNone": False, "records": list(records)},
    }


def renewals(n: int) -> list[OutboundRecord]:
    return [
        OutboundRecord(
            f"C{i}:2027-03-01",
            {"Name": f"Renewal {i}", "StageName": "Prospecting", "CloseDate": "2027-03-01"},
        )
        for i in range(n)
    ]


# ------------------------------------------------------------------ the fake's documented rules


def test_a_composite_request_is_one_api_call_whatever_its_subrequests(org):
    used = org.api_used
    subs = [collection(f"c{i}", opportunity(f"K{i}")) for i in range(5)]
    status, body = post(org, {"allOrNone": False, "compositeRequest": subs})
    assert status == 200 and org.api_used == used + 1
    assert [r["httpStatusCode"] for r in body["compositeResponse"]] == [200] * 5
    assert len(org.all("Opportunity")) == 5


@pytest.mark.parametrize(
    "subs",
    [
        [collection(f"c{i}", opportunity(f"K{i}")) for i in range(6)],  # 6 Collections
        [  # 26 subrequests
            {"method": "GET", "url": f"{PREFIX}limits/", "referenceId": f"l{i}"} for i in range(26)
        ],
    ],
    ids=["six-collections", "twenty-six-subrequests"],
)
def test_past_a_documented_limit_the_whole_request_is_refused_and_nothing_runs(org, subs):
    status, body = post(org, {"allOrNone": False, "compositeRequest": subs})
    assert status == 400 and body[0]["errorCode"] == "LIMIT_EXCEEDED"
    assert org.all("Opportunity") == []


@pytest.mark.parametrize(
    "change",
    [
        {"referenceId": "has-dash"},
        {"httpHeaders": {"Authorization": "Bearer x"}},
    ],
)
def test_a_bad_reference_id_or_a_forbidden_header_refuses_the_whole_request(org, change):
    subs = [collection("ok", opportunity("K1")), {**collection("c2", opportunity("K2")), **change}]
    status, _ = post(org, {"allOrNone": False, "compositeRequest": subs})
    assert status == 400 and org.all("Opportunity") == []


def test_references_pass_an_id_on_and_a_failed_subrequest_halts_only_its_dependents(org):
    account = {"method": "POST", "url": f"{PREFIX}composite/sobjects", "referenceId": "acc"}
    line = {
        "attributes": {"type": "Opportunity"},
        "Name": "by reference",
        "StageName": "Prospecting",
        "CloseDate": "2027-03-01",
        "Renewal_Key__c": "@{acc[0].id}",
    }
    subs = [
        {**account, "body": {"allOrNone": False, "records": [opportunity("PARENT")]}},
        collection("child", line),
        collection("bad", opportunity("NOPE", OwnerId="005NOSUCHUSER0000")),
        collection("after_bad", opportunity("@{bad[0].id}")),
        collection("independent", opportunity("FREE")),
    ]
    status, body = post(org, {"allOrNone": False, "compositeRequest": subs})
    results = {r["referenceId"]: r for r in body["compositeResponse"]}
    parent_id = results["acc"]["body"][0]["id"]
    assert status == 200
    assert [o["Renewal_Key__c"] for o in org.all("Opportunity")] == ["PARENT", parent_id, "FREE"]
    # a Collections answer is 200 with the record's own error inside
    assert results["bad"]["httpStatusCode"] == 200
    assert results["bad"]["body"][0]["errors"][0]["statusCode"] == "INACTIVE_OWNER_OR_USER"
    # a reference to a value that is not there: not run
    assert results["after_bad"]["httpStatusCode"] == 400
    assert results["after_bad"]["body"][0]["errorCode"] == "PROCESSING_HALTED"


def test_all_or_none_true_rolls_the_whole_request_back(org):
    subs = [
        collection("good", opportunity("K1")),
        {"method": "GET", "url": f"{PREFIX}sobjects/Nope/describe", "referenceId": "bad"},
    ]
    status, body = post(org, {"allOrNone": True, "compositeRequest": subs})
    assert status == 200 and org.all("Opportunity") == []
    assert [r["httpStatusCode"] for r in body["compositeResponse"]] == [400, 404]


# ------------------------------------------------------------------ the adapter


def test_a_thousand_records_go_in_one_call_of_five_collections_mapped_back_in_order(ctx, org):
    ctx.crm.writes._pricebook = org.standard_pricebook  # no price-book lookup in the count
    calls = ctx.crm.api_calls
    results = ctx.crm.upsert("renewal_opportunity", renewals(1000))
    assert ctx.crm.api_calls == calls + 1
    (request,) = org.composite.requests
    assert request["allOrNone"] is False and request["collateSubrequests"] is False
    sizes = [len(s["body"]["records"]) for s in request["compositeRequest"]]
    assert sizes == [200] * 5
    assert all(s["body"]["allOrNone"] is False for s in request["compositeRequest"])
    by_key = {o["Renewal_Key__c"]: o["Id"] for o in org.all("Opportunity")}
    assert [(r.key, r.crm_id, r.created) for r in results] == [
        (f"C{i}:2027-03-01", by_key[f"C{i}:2027-03-01"], True) for i in range(1000)
    ]


def test_a_refused_record_fails_alone_and_a_failed_subrequest_fails_only_its_records(ctx, org):
    ctx.crm.writes._pricebook = org.standard_pricebook
    org.refuse_record = lambda obj, rec: (
        ("FIELD_CUSTOM_VALIDATION_EXCEPTION", "no") if rec["Name"] == "Renewal 7" else None
    )
    org.composite.fail_subrequest(2, 503, BUSY)  # records 400..599
    results = ctx.crm.upsert("renewal_opportunity", renewals(1000))
    failed = {i for i, r in enumerate(results) if not r.ok}
    assert failed == {7, *range(400, 600)}
    assert not results[7].retriable
    assert all(results[i].retriable for i in range(400, 600))
    assert len(org.all("Opportunity")) == 799


def test_a_composite_call_answered_503_is_sent_again_whole(ctx, org):
    ctx.crm.writes._pricebook = org.standard_pricebook
    org.fail_next(503, BUSY)
    results = ctx.crm.upsert("renewal_opportunity", renewals(450))
    assert all(r.ok for r in results) and len(org.all("Opportunity")) == 450
    assert len(org.composite.requests) == 1  # the refused try never reached the subrequests
    assert org.calls_to("composite") == 2


def test_more_than_200_deletes_share_one_composite_call(ctx, org):
    ctx.crm.writes._pricebook = org.standard_pricebook
    records = renewals(450)
    ctx.crm.upsert("renewal_opportunity", records)
    calls = ctx.crm.api_calls
    results = ctx.crm.delete("renewal_opportunity", [r.key for r in records])
    assert all(r.ok for r in results) and org.all("Opportunity") == []
    assert ctx.crm.api_calls == calls + 1


def test_a_sync_whose_composite_calls_fail_converges(ctx, org):
    """One subrequest of the first write call fails as a whole, and another call is answered
    503: the run retries what failed, and the next run has nothing to write."""
    SalesforceBook(org).many(450, AS_OF.replace(year=2027, month=3, day=1), (("SEAT", 1, 1.0),))
    org.composite.fail_subrequest(1, 500, [{"errorCode": "UNKNOWN_EXCEPTION", "message": "x"}])
    org.composite.fail_call(503, BUSY)  # the first composite call, then sent again whole
    first = sync(ctx, as_of=AS_OF)
    assert (first.created, first.failed, first.dead_letters) == (450, 0, 0)
    assert len(org.all("Opportunity")) == 900  # 450 original deals, 450 renewals
    again = sync(ctx, as_of=AS_OF)
    assert again.writes == {}
    assert org.composite.call_faults == [] and org.composite.faults == {}


# ------------------------------------------------------------------ calls by kind of request


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        (f"{BASE}composite", "composite"),
        (f"{BASE}composite/sobjects/Opportunity/Renewal_Key__c", "collections"),
        (f"{BASE}composite/sobjects?ids=a,b&allOrNone=false", "collections"),
        (f"{BASE}queryAll/?q=SELECT+Id+FROM+Contract", "query"),
        (f"{BASE}query/01gFAKE1-2000", "query"),
        (f"{BASE}jobs/query/750FAKE/results", "bulk"),
        (f"{BASE}sobjects/Opportunity/describe", "describe"),
        (f"{BASE}limits/", "limits"),
        (f"{BASE}tooling/sobjects/CustomField/", "tooling"),
        ("https://fake.my.salesforce.com/services/data/", "versions"),
    ],
)
def test_each_request_is_counted_under_its_kind(url, kind):
    from crm_renewals.connector.adapters.salesforce.request_kinds import request_kind

    assert request_kind(url) == kind


def test_a_sync_reports_and_records_its_calls_by_kind_of_request(ctx, org):
    SalesforceBook(org).many(300, AS_OF.replace(year=2027, month=3, day=1), (("SEAT", 1, 1.0),))
    report = sync(ctx, as_of=AS_OF)
    kinds = report.to_json()["api_calls_by_kind"]
    assert sum(kinds.values()) == report.api_calls == report.to_json()["api_calls"]
    assert kinds["composite"] == len(org.composite.requests) >= 1
    assert kinds["composite"] >= 2  # a first page of each kind read, five to a call
    assert kinds["query"] == 2  # the price-book lookups
    assert ctx.store.runs.get(report.run_id).counts["api_calls_by_kind"] == kinds


# ------------------------------------------------------------------ reads: five queries a call


def test_the_first_page_of_every_kind_is_read_five_queries_to_a_composite_call(ctx, org):
    """Composite counts as one call and takes up to five query subrequests: a run's reads ask
    for the first page of all eight kinds in two calls, not eight (further pages, found only
    from the page before, go one a call as before)."""
    SalesforceBook(org).many(30, AS_OF.replace(year=2027, month=3, day=1), (("SEAT", 1, 1.0),))
    first = sync(ctx, as_of=AS_OF)
    assert first.created == 30
    reads = [r for r in org.composite.requests if r["compositeRequest"][0]["method"] == "GET"]
    assert [len(r["compositeRequest"]) for r in reads] == [5, 3]
    assert org.calls_to("queryAll/") == 0  # the price-book lookups still go on their own
    org.composite.requests.clear()
    calls = ctx.crm.api_calls
    second = sync(ctx, as_of=AS_OF)
    assert second.writes == {}
    assert ctx.crm.api_calls - calls == 2  # nothing changed: two calls read the eight kinds
    assert second.api_calls_by_kind == {"composite": 2}
