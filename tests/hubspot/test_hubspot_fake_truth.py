"""The fake HubSpot is as unkind as HubSpot: spoken to over raw HTTP, so what it answers is
checked without the adapter in between (../shared/API_NOTES.md F; crm objects batch spec)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest


def post(fake, path: str, body: dict) -> tuple[int, dict]:
    req = urllib.request.Request(
        fake.url + path,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {fake.token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


DEFAULTS = {"hs_object_id", "createdate", "hs_lastmodifieddate"}


def test_batch_upsert_answers_in_no_order_echoing_only_what_was_sent(fake):
    inputs = [
        {
            "idProperty": "renewal_key",
            "id": f"k{i}",
            "properties": {"dealname": f"Deal {i}"},
            "objectWriteTraceId": str(i),
        }
        for i in range(10)
    ]
    status, body = post(fake, "/crm/v3/objects/deals/batch/upsert", {"inputs": inputs})
    assert status == 200
    traces = [r["objectWriteTraceId"] for r in body["results"]]
    assert sorted(traces, key=int) == [str(i) for i in range(10)]
    assert traces != sorted(traces, key=int)  # the spec promises no order
    for result in body["results"]:
        # the idProperty is not echoed: it was not among the properties sent
        assert set(result["properties"]) == {"dealname"} | DEFAULTS
        assert result["properties"]["dealname"] == f"Deal {result['objectWriteTraceId']}"
    assert {d["renewal_key"] for d in fake.live("deals")} == {f"k{i}" for i in range(10)}


def test_batch_create_and_update_echo_only_what_was_sent(fake):
    status, body = post(
        fake,
        "/crm/v3/objects/companies/batch/create",
        {"inputs": [{"properties": {"name": "Acme"}, "objectWriteTraceId": "a"}]},
    )
    assert status == 201
    ((made,),) = [body["results"]]
    assert made["objectWriteTraceId"] == "a" and set(made["properties"]) == {"name"} | DEFAULTS
    fake.edit("companies", made["id"], {"domain": "acme.test"})
    status, body = post(
        fake,
        "/crm/v3/objects/companies/batch/update",
        {"inputs": [{"id": made["id"], "properties": {"name": "Acme Inc"}}]},
    )
    assert status == 200
    assert set(body["results"][0]["properties"]) == {"name"} | DEFAULTS
    assert "objectWriteTraceId" not in body["results"][0]  # none sent, none answered


def test_per_input_errors_carry_the_inputs_trace_id(fake):
    inputs = [
        {"idProperty": "renewal_key", "id": f"k{i}", "properties": props}
        | {"objectWriteTraceId": f"t{i}"}
        for i, props in enumerate([{"dealname": "D"}, {"nope": "x"}, {"nope": "y"}])
    ]
    status, body = post(fake, "/crm/v3/objects/deals/batch/upsert", {"inputs": inputs})
    assert status == 207 and body["numErrors"] == 2
    assert sorted(e["context"]["objectWriteTraceId"][0] for e in body["errors"]) == ["t1", "t2"]
    assert [r["objectWriteTraceId"] for r in body["results"]] == ["t0"]


@pytest.mark.parametrize(
    "route, item",
    [
        ("upsert", {"idProperty": "renewal_key", "id": "k1"}),
        ("create", {}),
        ("update", {"id": "1"}),
    ],
)
@pytest.mark.parametrize("value", [12, 1.5, True, None])
def test_a_batch_with_a_non_string_property_value_is_refused_whole(fake, route, item, value):
    inputs = [
        {**item, "properties": {"dealname": "fine"}},
        {**item, "properties": {"dealname": "also fine", "amount": value}},
    ]
    status, body = post(fake, f"/crm/v3/objects/deals/batch/{route}", {"inputs": inputs})
    assert status == 400 and body["category"] == "VALIDATION_ERROR"
    assert "amount" in body["message"]
    assert fake.live("deals") == []


def test_a_search_filter_group_without_filters_is_refused(fake):
    fake.create("companies", {"name": "Acme"})
    body = {"filterGroups": [{"filters": []}], "limit": 10}
    status, answer = post(fake, "/crm/v3/objects/companies/search", body)
    assert status == 400 and answer["category"] == "VALIDATION_ERROR"
    status, answer = post(fake, "/crm/v3/objects/companies/search", {"limit": 10})
    assert status == 200 and answer["total"] == 1


def test_injected_per_input_errors_come_back_in_a_multi_status_answer(fake):
    fake.fail_inputs(1, status=429)
    fake.fail_inputs(1, status=503, route="deals/batch/upsert")
    inputs = [
        {
            "idProperty": "renewal_key",
            "id": f"k{i}",
            "properties": {"dealname": "D"},
            "objectWriteTraceId": str(i),
        }
        for i in range(3)
    ]
    status, body = post(fake, "/crm/v3/objects/deals/batch/upsert", {"inputs": inputs})
    assert status == 207 and body["numErrors"] == 2
    by_trace = {e["context"]["objectWriteTraceId"][0]: e for e in body["errors"]}
    assert (by_trace["0"]["status"], by_trace["0"]["category"]) == ("429", "RATE_LIMITS")
    assert by_trace["1"]["status"] == "503"
    assert [r["objectWriteTraceId"] for r in body["results"]] == ["2"]
    assert [d["renewal_key"] for d in fake.live("deals")] == ["k2"]  # refused ones not written


def test_an_inline_association_of_an_unknown_type_or_to_a_missing_record_is_refused(fake):
    company = fake.create("companies", {"name": "Acme"})

    def task(trace: str, to: str, type_id: int) -> dict:
        spec = [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}]
        return {
            "properties": {"hs_task_subject": trace},
            "associations": [{"to": {"id": to}, "types": spec}],
            "objectWriteTraceId": trace,
        }

    inputs = [task("ok", company, 192), task("type", company, 9999), task("gone", "424242", 192)]
    status, body = post(fake, "/crm/v3/objects/tasks/batch/create", {"inputs": inputs})
    assert status == 207
    assert {e["context"]["objectWriteTraceId"][0] for e in body["errors"]} == {"type", "gone"}
    assert [t["hs_task_subject"] for t in fake.live("tasks")] == ["ok"]
