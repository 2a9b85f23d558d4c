"""Big first reads through Bulk API 2.0 query jobs, against the fake org's job lifecycle
(tests/fakes/salesforce_bulk.py): chosen above salesforce.bulk_threshold only, the same records
as the REST read, deleted rows through queryAll, the cursor, failures and polling."""

from __future__ import annotations

from pathlib import Path

import pytest
import responses

from crm_renewals.connector import bootstrap
from crm_renewals.connector.adapters.salesforce import SalesforceCrm, connect
from crm_renewals.connector.adapters.salesforce.reads import max_cursor_last
from crm_renewals.connector.config import load_config
from crm_renewals.connector.config_sections import SalesforceSettings
from crm_renewals.connector.domain.models import READ_KINDS
from crm_renewals.connector.errors import ConfigError, FatalCrmError
from crm_renewals.connector.mapping_file import load_mapping
from crm_renewals.connector.ports import SourceRecord
from crm_renewals.connector.services.sync import sync
from tests.conftest import AS_OF, ROOT, write_config
from tests.contract.test_sync_contract import SalesforceBook
from tests.fakes.harness import SALESFORCE_ENV
from tests.fakes.salesforce_org import FakeOrg

THRESHOLD = 10


@pytest.fixture
def org():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield FakeOrg(rsps)


def adapter(org: FakeOrg, threshold: int | None, waits: list[float] | None = None):
    settings = SalesforceSettings(auth="password", bulk_threshold=threshold)
    mapping = load_mapping(ROOT / "mappings" / "salesforce.yaml")
    crm = SalesforceCrm(connect(settings, SALESFORCE_ENV), mapping, settings, page_size=7)
    crm.sleep = (waits if waits is not None else []).append
    return crm


def seed(org: FakeOrg, contracts: int) -> SalesforceBook:
    return SalesforceBook(org).many(contracts, AS_OF.replace(year=2027, month=3, day=1))


def read(crm: SalesforceCrm, kind: str) -> list[list[SourceRecord]]:
    return list(crm.read_changes(kind, None))


def flat(pages: list[list[SourceRecord]]) -> list[SourceRecord]:
    return [r for p in pages for r in p]


def by_id(records: list[SourceRecord]) -> dict[str, SourceRecord]:
    return {r.id: r for r in records}


def test_kinds_above_the_threshold_are_read_by_a_bulk_job_and_the_rest_by_rest_pages(org):
    seed(org, 8)  # 8 accounts and contracts, 16 lines: lines and opportunities above 10
    crm = adapter(org, THRESHOLD)
    for kind in ("account", "contract", "contract_line"):
        read(crm, kind)
    assert crm.reads.read_by == {"account": "rest", "contract": "rest", "contract_line": "bulk"}
    assert len(org.bulk.jobs) == 1
    job = next(iter(org.bulk.jobs.values()))
    assert job["object"] == "OpportunityLineItem" and job["operation"] == "queryAll"
    # no ORDER BY: it turns off PK chunking (bulk_api_2_0_troubleshoot_query_timeouts.htm)
    assert "ORDER BY" not in job["query"]


def test_bulk_and_rest_reads_give_identical_records_for_every_kind(org):
    book = seed(org, 12)
    org.remove("OpportunityLineItem", org.all("OpportunityLineItem")[0]["Id"])
    org.edit("Account", org.all("Account")[0]["Id"], {"NPS__c": None, "Type": "Enterprise"})
    book.contract(  # a contract without an owner: a null lookup
        book.account("Lone", owner=book.user("Ann")), AS_OF.replace(year=2027), lines=()
    )
    rest, bulk = adapter(org, None), adapter(org, 1)
    for kind in READ_KINDS:
        by_rest, by_bulk = flat(read(rest, kind)), flat(read(bulk, kind))
        assert by_id(by_bulk) == by_id(by_rest), kind
        assert len(by_bulk) == len(by_rest)
    assert "bulk" in bulk.reads.read_by.values() and set(rest.reads.read_by.values()) <= {"rest"}


def test_relationship_fields_are_nested_and_numbers_booleans_and_stamps_typed_as_rest(org):
    seed(org, 11)
    line = by_id(flat(read(adapter(org, THRESHOLD), "contract_line")))
    rec = next(iter(line.values())).fields
    assert isinstance(rec["Product2"], dict) and rec["Product2"]["ProductCode"] in {
        "SEAT",
        "SUPPORT",
    }
    assert isinstance(rec["Opportunity"]["Contract__c"], str)
    assert isinstance(rec["Quantity"], float) and rec["IsDeleted"] is False
    assert rec["SystemModstamp"].endswith("+0000")  # REST's form, not the CSV's Z


def test_deleted_rows_come_back_flagged_through_query_all(org):
    seed(org, 8)
    gone = org.all("OpportunityLineItem")[3]["Id"]
    org.remove("OpportunityLineItem", gone)
    records = by_id(flat(read(adapter(org, THRESHOLD), "contract_line")))
    assert records[gone].deleted and records[gone].fields["IsDeleted"] is True
    assert sum(r.deleted for r in records.values()) == 1


def test_the_last_page_ends_with_the_greatest_cursor_though_bulk_rows_come_unordered(org):
    seed(org, 15)
    pages = read(adapter(org, THRESHOLD), "contract_line")
    records = flat(pages)
    assert all(len(p) <= 7 for p in pages)
    last = pages[-1][-1]
    assert (last.modified_at, last.id) == max((r.modified_at, r.id) for r in records)
    assert [r.id for r in records] != sorted(r.id for r in records)  # really unordered


def test_max_cursor_last_keeps_every_record_once_and_the_maximum_last():
    from datetime import UTC, datetime, timedelta

    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    stamps = [5, 1, 9, 3, 9, 2, 7]
    records = [SourceRecord(f"id{i}", t0 + timedelta(seconds=s), {}) for i, s in enumerate(stamps)]
    pages = list(max_cursor_last(records, 3))
    out = [r for p in pages for r in p]
    assert sorted(r.id for r in out) == sorted(r.id for r in records)
    assert out[-1].id == "id4"  # stamp 9, the greater id of the two 9s
    assert [len(p) for p in pages] == [3, 3, 1]


def test_a_failed_job_stops_the_read_with_its_error_message(org):
    seed(org, 8)
    org.bulk.fail_next = ("Failed", "InvalidBatch : Failed to process query")
    with pytest.raises(FatalCrmError, match="Failed to process query") as info:
        read(adapter(org, THRESHOLD), "contract_line")
    assert info.value.code == "BULK_JOB_FAILED"


def test_an_unsupported_query_is_refused_as_the_docs_say(org):
    crm = adapter(org, THRESHOLD)
    with pytest.raises(FatalCrmError, match="aggregate functions") as info:
        list(crm.reads.bulk.rows("SELECT COUNT() FROM Account", include_deleted=False))
    assert info.value.status == 400
    with pytest.raises(FatalCrmError, match="No such column"):
        list(crm.reads.bulk.rows("SELECT Nope__c FROM Account", include_deleted=False))


def test_polls_wait_longer_each_time_without_really_sleeping(org):
    seed(org, 8)
    org.bulk.polls_to_complete = 5
    waits: list[float] = []
    crm = adapter(org, THRESHOLD, waits)
    read(crm, "contract_line")
    assert crm.reads.bulk.polls == 6
    assert waits == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0]


def test_results_are_read_a_set_at_a_time_following_the_locator(org):
    seed(org, 12)  # 24 lines
    crm = adapter(org, THRESHOLD)
    crm.reads.bulk.result_set_records = 10
    before = crm.api_calls
    records = flat(read(crm, "contract_line"))
    assert len(records) == 24
    # first REST page (its totalSize chooses bulk), 3 describes (line, opportunity, product),
    # create, 3 polls, 3 result sets
    assert crm.api_calls - before == 1 + 3 + 1 + 3 + 3
    assert org.calls_to("/results") == 3


def test_bulk_requests_count_against_the_daily_allocation(org):
    seed(org, 8)
    used = org.api_used
    crm = adapter(org, THRESHOLD)
    read(crm, "contract_line")
    assert org.api_used - used == crm.api_calls


def test_below_the_threshold_choosing_costs_no_call(org):
    seed(org, 4)
    rest_calls = adapter(org, None)
    read(rest_calls, "contract_line")
    chosen = adapter(org, THRESHOLD)
    read(chosen, "contract_line")
    assert chosen.api_calls == rest_calls.api_calls and not org.bulk.jobs


def test_incremental_reads_never_use_bulk(org):
    from crm_renewals.connector.ports import Cursor

    seed(org, 8)
    crm = adapter(org, 1)
    since = Cursor(org.now.replace(year=2020))
    assert len(flat(list(crm.read_changes("contract_line", since)))) == 16
    assert not org.bulk.jobs and crm.reads.read_by == {}


def test_threshold_must_be_positive_or_null():
    assert SalesforceSettings(bulk_threshold=None).bulk_threshold is None
    assert SalesforceSettings().bulk_threshold == 50_000
    with pytest.raises(ValueError):
        SalesforceSettings(bulk_threshold=0)


def config(folder, monkeypatch, threshold) -> Path:
    for name, value in SALESFORCE_ENV.items():
        monkeypatch.setenv(name, value)
    return write_config(
        folder,
        crm="salesforce",
        salesforce={"auth": "password", "bulk_threshold": threshold},
        mapping=str(ROOT / "mappings" / "salesforce.yaml"),
    )


def test_threshold_zero_in_app_yaml_is_a_config_error(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="bulk_threshold"):
        load_config(config(tmp_path, monkeypatch, 0))


# ------------------------------------------------------------------ through the sync


@pytest.fixture
def context(org, tmp_path, monkeypatch):
    ctx = bootstrap.build(load_config(config(tmp_path, monkeypatch, THRESHOLD)))
    ctx.sleep = lambda _s: None
    yield ctx
    ctx.close()


def test_a_first_sync_by_bulk_plans_as_one_by_rest(org, context):
    seed(org, 12)
    report = sync(context, as_of=AS_OF)
    assert report.status == "ok", report
    assert context.crm.reads.read_by.get("contract_line") == "bulk"
    created = org.all("Opportunity")
    renewals = [o for o in created if o.get("Renewal_Key__c")]
    assert len(renewals) == 12
    cursor = context.store.cursors.get("contract_line")
    lines = org.all("OpportunityLineItem", include_deleted=True)
    originals = [r for r in lines if not r.get("Renewal_Line_Key__c")]
    assert cursor.record_id in {r["Id"] for r in originals}


def test_a_failed_job_fails_the_run_and_moves_no_cursor(org, context):
    seed(org, 12)
    org.bulk.fail_next = ("Aborted", "Job aborted by an administrator")
    with pytest.raises(FatalCrmError, match="Job aborted by an administrator"):
        sync(context, as_of=AS_OF)
    assert context.store.runs.list()[0].status == "failed"
    assert all(context.store.cursors.get(k) is None for k in READ_KINDS)
    assert not [o for o in org.all("Opportunity") if o.get("Renewal_Key__c")]
