"""The adapter against HubSpot's wire as the spec gives it: batch answers matched by
objectWriteTraceId (no order, no echo of what was not sent), property values as text, no empty
filter group, transient per-record refusals marked retriable."""

from __future__ import annotations

from decimal import Decimal

import pytest

from crm_renewals.connector.adapters.hubspot import writes as hubspot_writes
from crm_renewals.connector.ports import OutboundRecord
from tests.hubspot.conftest import health_by_id


def renewal(key: str, company: str | None = None, **props) -> OutboundRecord:
    # the key goes as the upsert's `id` only, never as a property: HubSpot does not echo it
    fields = {"dealname": f"Renewal {key}", "dealstage": "appointmentscheduled", **props}
    if company:
        fields["associated_company_id"] = company
    return OutboundRecord(key, fields)


def sent(fake, route: str) -> list[dict]:
    return [body for key, body in fake.requests if key.endswith(route)]


# ---------------------------------------------------------------- matching answers to records


def test_upsert_answers_are_matched_to_their_records_by_trace_id_in_any_order(crm, fake):
    records = [renewal(f"k{i}") for i in range(12)]
    results = crm.upsert("renewal_opportunity", records)
    assert all(r.ok and r.created for r in results), results
    for rec, res in zip(records, results, strict=True):
        assert fake.get("deals", res.crm_id)["renewal_key"] == rec.key
    (body,) = sent(fake, "deals/batch/upsert")
    traces = [i["objectWriteTraceId"] for i in body["inputs"]]
    assert len(set(traces)) == len(traces) == 12  # one per input, unique within the call


def test_renewal_lines_written_without_their_key_property_are_matched(crm, fake, hub):
    crm.upsert("renewal_opportunity", [renewal("k1", hub.company())])
    lines = [OutboundRecord(f"k1:{c}", {"hs_sku": c, "quantity": 1}, "k1") for c in "ABCDEF"]
    first = crm.upsert("renewal_line", lines)
    assert all(r.ok and r.created for r in first), first
    changed = [OutboundRecord(ln.key, {"quantity": 2}, "k1", exists=True) for ln in lines]
    second = crm.upsert("renewal_line", changed)
    assert all(r.ok and not r.created for r in second), second
    assert [r.crm_id for r in second] == [r.crm_id for r in first]
    for line, res in zip(lines, second, strict=True):
        item = fake.get("line_items", res.crm_id)
        assert (item["renewal_line_key"], item["quantity"]) == (line.key, "2")


def test_a_refused_input_fails_only_its_own_record_whatever_the_answer_order(crm, fake):
    records = [renewal(f"k{i}") for i in range(8)]
    records[5] = renewal("k5", renewal_health_scor="38")  # misspelt property
    results = crm.upsert("renewal_opportunity", records)
    assert [r.ok for r in results] == [i != 5 for i in range(8)]
    assert results[5].error_code == "VALIDATION_ERROR"
    assert "renewal_health_scor" in results[5].message
    for rec, res in zip(records, results, strict=True):
        if res.ok:
            assert fake.get("deals", res.crm_id)["renewal_key"] == rec.key


def test_created_tasks_are_matched_to_their_records_in_any_order(crm, fake, hub):
    company = hub.company()
    tasks = [
        OutboundRecord(
            f"acct:{i}",
            {"hs_task_subject": f"Task {i}", "associated_company_id": company},
        )
        for i in range(10)
    ]
    results = crm.create_missing("task", tasks)
    assert all(r.ok and r.created for r in results), results
    for rec, res in zip(tasks, results, strict=True):
        assert fake.get("tasks", res.crm_id)["renewal_task_key"] == rec.key
    (body,) = sent(fake, "tasks/batch/create")
    traces = [i["objectWriteTraceId"] for i in body["inputs"]]
    assert len(set(traces)) == len(traces) == 10


def test_batch_updates_by_id_are_matched_in_any_order(crm, fake):
    health_by_id(crm)
    companies = [fake.create("companies", {"name": f"Co {i}"}) for i in range(8)]
    records = [OutboundRecord(c, {"renewal_health_score": i}) for i, c in enumerate(companies)]
    results = crm.upsert("account_health", [*records, OutboundRecord("424242", {})])
    assert [r.crm_id for r in results[:-1]] == companies and all(r.ok for r in results[:-1])
    assert (results[-1].ok, results[-1].error_code) == (False, "OBJECT_NOT_FOUND")
    assert [fake.get("companies", c)["renewal_health_score"] for c in companies] == [
        str(i) for i in range(8)
    ]


# ---------------------------------------------------------------- values as text


@pytest.mark.parametrize(
    "value, wire",
    [
        (None, ""),
        (True, "true"),
        (False, "false"),
        (12, "12"),
        (1234.5, "1234.5"),
        (1e-05, "0.00001"),
        (1e20, "100000000000000000000"),
        (Decimal("1234.50"), "1234.50"),
        (Decimal("1E+3"), "1000"),
        (Decimal("-0.000001"), "-0.000001"),
        ("Acme", "Acme"),
    ],
)
def test_property_values_are_written_as_hubspot_text(value, wire):
    assert hubspot_writes.text(value) == wire


def test_numbers_booleans_and_blanks_go_out_as_strings(crm, fake):
    fake.properties["deals"]["renewal_flag"] = {"name": "renewal_flag", "type": "bool"}
    record = renewal(
        "k1",
        amount=1234.5,
        renewal_uplift_percent=1e-05,
        renewal_health_score=38,
        renewal_flag=True,
        closedate=None,
    )
    (result,) = crm.upsert("renewal_opportunity", [record])
    assert result.ok, result
    (body,) = sent(fake, "deals/batch/upsert")
    props = body["inputs"][0]["properties"]
    assert all(isinstance(v, str) for v in props.values()), props
    assert (props["amount"], props["renewal_uplift_percent"]) == ("1234.5", "0.00001")
    assert (props["renewal_health_score"], props["renewal_flag"]) == ("38", "true")
    assert props["closedate"] == ""


# ---------------------------------------------------------------- search


def test_a_kind_without_filters_is_searched_without_a_filter_group(crm, fake):
    fake.create("companies", {"name": "Acme"})
    records = [r for page in crm.read_changes("account", None) for r in page]
    assert len(records) == 1
    bodies = sent(fake, "companies/search")
    assert bodies and all("filterGroups" not in b for b in bodies)
    assert fake.statuses[400] == 0


# ---------------------------------------------------------------- transient refusals


def test_per_record_rate_limits_and_server_errors_come_back_retriable(crm, fake):
    fake.fail_inputs(1, status=429)
    fake.fail_inputs(1, status=503)
    records = [renewal("k0"), renewal("k1"), renewal("k2", renewal_health_scor="1"), renewal("k3")]
    results = crm.upsert("renewal_opportunity", records)
    assert [(r.ok, r.retriable) for r in results] == [
        (False, True),
        (False, True),
        (False, False),  # a validation error: sending it again changes nothing
        (True, False),
    ]
    assert results[0].error_code == "RATE_LIMITS"
    assert fake.statuses[207] == 1


def test_a_task_create_refused_by_a_server_error_comes_back_retriable(crm, fake, hub):
    company = hub.company()
    fake.fail_inputs(1, status=500, route="tasks/batch/create")
    tasks = [OutboundRecord(f"acct:{i}", {"associated_company_id": company}) for i in range(2)]
    results = crm.create_missing("task", tasks)
    assert [(r.ok, r.retriable) for r in results] == [(False, True), (True, False)]
