"""`renewals sync` writing big groups as Bulk API 2.0 ingest jobs, against the fake org's job
lifecycle (tests/fakes/salesforce_ingest.py: the documented rules): the same records as REST
writes, a refused record failing alone, a failed job and a killed run converging."""

from __future__ import annotations

import json
from collections import Counter
from datetime import date

import pytest
import responses

from tests.conftest import cli_for
from tests.contract.test_sync_contract import SalesforceBook
from tests.fakes.harness import salesforce_config
from tests.fakes.salesforce_org import EXTERNAL_IDS, FakeOrg, written_state

AS_OF = "2026-11-23"
END = date(2027, 3, 1)
CONTRACTS = 60
#: groups of more records than this go as ingest jobs: 60 renewals, 60 lines, 240 tasks
THRESHOLD = 50
SETTINGS = {
    # no pause between retries (the CLI's sleeps are real); job polls wait 1 s each
    "sync": {"retry_max_wait_seconds": 0},
}


class Killed(BaseException):
    """The process killed (kill -9) at that point: no handler of ours runs after it."""


def synced_org(tmp_path, monkeypatch, threshold: int | None):
    rsps = responses.RequestsMock(assert_all_requests_are_fired=False)
    rsps.start()
    org = FakeOrg(rsps)
    org.ingest.polls_to_complete = 0  # a job is done at its first poll (1 s of real sleep)
    SalesforceBook(org).many(CONTRACTS, END, (("SEAT", 10, 100.0),))
    folder = tmp_path / f"t{threshold}"
    folder.mkdir()
    config = salesforce_config(
        folder, monkeypatch, salesforce={"bulk_write_threshold": threshold}, **SETTINGS
    )
    return rsps, org, cli_for(config)


@pytest.fixture
def bulk(tmp_path, monkeypatch):
    rsps, org, cli = synced_org(tmp_path, monkeypatch, THRESHOLD)
    yield org, cli
    rsps.stop()
    rsps.reset()


@pytest.fixture
def reference(tmp_path, monkeypatch):
    """The same book synced by REST writes only (bulk_write_threshold: null)."""
    rsps, org, cli = synced_org(tmp_path, monkeypatch, None)
    report = sync(cli)
    rsps.stop()
    rsps.reset()
    assert report["status"] == "ok" and "bulk_ingest" not in report["api_calls_by_kind"]
    return written_state(org)


def sync(cli, *args: str) -> dict:
    result = cli("sync", "--as-of", AS_OF, "--json", *args)
    return json.loads(result.stdout)


def one_row_per_key(org: FakeOrg) -> bool:
    return all(
        max(Counter(r[field] for r in org.all(obj) if r.get(field)).values(), default=1) == 1
        for obj, field in EXTERNAL_IDS.items()
    )


def test_big_groups_go_as_one_job_each_and_leave_what_rest_writes_leave(bulk, reference):
    org, cli = bulk
    first = sync(cli)
    assert first["status"] == "ok" and first["created"] == CONTRACTS
    assert [j["object"] for j in org.ingest.jobs.values()] == [
        "Opportunity",
        "OpportunityLineItem",
        "Task",
    ]
    assert [j["operation"] for j in org.ingest.jobs.values()] == ["upsert", "upsert", "insert"]
    # per job: create, upload, close, one poll, successful results (none failed)
    assert first["api_calls_by_kind"]["bulk_ingest"] == 3 * 5
    assert first["api_calls_by_kind"]["composite"] == 2  # reads: 8 first pages, 5 a call
    assert written_state(org) == reference
    second = sync(cli)
    assert second["writes"] == {} and len(org.ingest.jobs) == 3


def test_a_record_refused_in_a_job_fails_alone_and_is_dead_lettered(bulk):
    org, cli = bulk
    contract = next(c for c in org.all("Contract") if c["ContractNumber"] == "00000007")
    refused = f"{contract['Id']}:{END}"

    def refuse(obj: str, rec: dict):
        if obj == "Opportunity" and rec.get("Renewal_Key__c") == refused:
            return ("FIELD_CUSTOM_VALIDATION_EXCEPTION", "Close date must be a weekday")
        return None

    org.refuse_record = refuse
    first = sync(cli)
    assert first["created"] == CONTRACTS - 1 and first["dead_letters"] == 1
    assert "collections" not in first["api_calls_by_kind"]  # not a transient refusal: no retry
    (letter,) = json.loads(cli("deadletters", "list", "--json").output)
    assert letter["error_code"] == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
    assert "weekday" in letter["message"]
    keys = [r["Renewal_Key__c"] for r in org.all("Opportunity") if r.get("Renewal_Key__c")]
    assert len(keys) == CONTRACTS - 1 and refused not in keys
    # its line and tasks waited for it: none was sent
    lines = org.ingest.jobs[list(org.ingest.jobs)[1]]["_rows"]
    assert len(lines) == CONTRACTS - 1
    org.refuse_record = None
    held = sync(cli)  # the same write is held back, not sent to be refused again
    assert held["writes"] == {"renewal_opportunity.held": 1} and len(org.ingest.jobs) == 3
    retried = json.loads(cli("deadletters", "retry", "--as-of", AS_OF, "--json").output)
    assert retried["remaining"] == 0 and retried["sync"]["created"] == 1
    assert one_row_per_key(org)


def test_a_failed_job_sends_what_it_did_not_process_again_and_converges(bulk, reference):
    org, cli = bulk
    org.ingest.fail_next = (20, "InvalidBatch : Failed to process query: timeout")
    first = sync(cli)
    assert first["status"] == "ok" and first["created"] == CONTRACTS
    assert first["dead_letters"] == 0
    failed = org.ingest.jobs[list(org.ingest.jobs)[0]]
    assert failed["state"] == "Failed" and len(failed["_done"]) == 20
    # the 40 renewals it left were sent again: fewer than the threshold, by REST (one
    # Collections call of up to 200 records)
    assert first["api_calls_by_kind"]["collections"] == 1
    assert written_state(org) == reference and one_row_per_key(org)
    assert sync(cli)["writes"] == {}


def test_a_run_killed_while_its_job_runs_converges_without_duplicates(bulk, reference):
    """Killed after the renewals' job was created, filled and closed, before any poll: the org
    processes it all the same. The next run writes the same keys again by upsert (lines and
    tasks too), and ends with every record once."""
    org, cli = bulk

    def die(job):
        raise Killed

    org.ingest._poll = die
    with pytest.raises(Killed):
        sync(cli)
    del org.ingest._poll  # the org's own polls again
    saved = [r for r in org.all("Opportunity") if r.get("Renewal_Key__c")]
    assert len(saved) == CONTRACTS  # the job ran though its run died
    again = sync(cli)
    assert again["status"] == "ok"
    assert written_state(org) == reference and one_row_per_key(org)
    assert sync(cli)["writes"] == {}
