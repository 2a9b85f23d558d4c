"""API calls of a first read of a big book's contract lines: the Salesforce adapter reads
`contract_line` (OpportunityLineItem, queryAll) from a fake org holding LINES line items, above
salesforce.bulk_threshold, so through one Bulk API 2.0 query job (tests/fakes/salesforce_bulk.py:
create, status polls, CSV result sets with Sforce-Locator), against the REST pages the same read
costs without bulk: ceil(LINES / 2,000), 2,000 being queryAll's largest page
(headers_queryoptions.htm), which the `salesforce` benchmark's first sync meets exactly.

The job's status polls are those of a job that takes JOB_SECONDS (the adapter's waits, 1 s
doubling to 30 s, are counted, not slept). A read-only pass: no planning, no writes.
"""

from __future__ import annotations

import math
import os
import resource
import time

import responses

from benchmarks.common import Verdict, flush, heading, row, verdict
from crm_renewals.connector.adapters.salesforce import SalesforceCrm, connect
from crm_renewals.connector.adapters.salesforce.bulk import FIRST_POLL, MAX_POLL
from crm_renewals.connector.config_sections import SalesforceSettings
from crm_renewals.connector.mapping_file import load_mapping
from tests.fakes.harness import ROOT, SALESFORCE_ENV
from tests.fakes.salesforce_org import FakeOrg

REST_PAGE = 2_000
LINES_PER_CONTRACT = 100
#: how long Salesforce takes to run the job (an assumption: minutes for a million rows)
JOB_SECONDS = 300
TARGET_CALLS = 50  # "tens of calls"


def polls_for(seconds: float) -> int:
    """Status polls the adapter makes while a job runs `seconds` (its backoff schedule)."""
    waited, pause, polls = 0.0, FIRST_POLL, 0
    while waited < seconds:
        waited += pause
        polls += 1
        pause = min(pause * 2, MAX_POLL)
    return polls


def seed(org: FakeOrg, lines: int) -> None:
    """LINES line items, LINES_PER_CONTRACT to each contract's original opportunity; written
    straight into the org's tables (the fake's per-insert roll-up would take hours)."""
    owner = org.insert("User", {"Name": "Sam Rep", "IsActive": True})
    account = org.insert("Account", {"Name": "Big Book", "OwnerId": owner})
    product = org.insert(
        "Product2", {"Name": "Seat", "ProductCode": "SEAT", "IsRecurring__c": True}
    )
    entry = next(iter(org.records["PricebookEntry"]))
    items = org.records["OpportunityLineItem"]
    opp = ""
    for i in range(lines):
        if i % LINES_PER_CONTRACT == 0:
            contract = org.insert(
                "Contract",
                {"AccountId": account, "EndDate": "2027-03-01", "Status": "Activated"},
            )
            opp = org.insert(
                "Opportunity",
                {"Name": "Original", "AccountId": account, "StageName": "Closed Won",
                 "CloseDate": "2025-01-01", "Contract__c": contract},
            )  # fmt: skip
        rid = f"00kFK{next(org.counter):010d}AAA"
        items[rid] = {
            "Id": rid,
            "OpportunityId": opp,
            "PricebookEntryId": entry,
            "Product2Id": product,
            "ProductCode": "SEAT",
            "Quantity": 1 + i % 20,
            "UnitPrice": 100.0,
            "SystemModstamp": org._stamp(),
        }


def run(lines: int = 1_000_000) -> list[Verdict]:
    heading(f"Salesforce bulk read: first read of {lines:,} contract lines (one Bulk API 2.0 job)")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        org = FakeOrg(rsps)
        t0 = time.perf_counter()
        seed(org, lines)
        row("seeded in", f"{time.perf_counter() - t0:.1f} s")
        org.bulk.polls_to_complete = polls_for(JOB_SECONDS) - 1
        settings = SalesforceSettings(auth="password")  # bulk_threshold: the default, 50,000
        mapping = load_mapping(ROOT / "mappings" / "salesforce.yaml")
        crm = SalesforceCrm(connect(settings, SALESFORCE_ENV), mapping, settings)
        waits: list[float] = []
        crm.sleep = waits.append
        flush()
        t0 = time.perf_counter()
        read = pages = 0
        last = None
        for page in crm.read_changes("contract_line", None):
            read, pages, last = read + len(page), pages + 1, page[-1]
        wall = time.perf_counter() - t0
        calls = crm.api_calls
        results = org.calls_to("/results")
        items = org.records["OpportunityLineItem"].values()
        newest = max((r["SystemModstamp"], r["Id"]) for r in items)
    rest = math.ceil(lines / REST_PAGE)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    row("read by", crm.reads.read_by.get("contract_line"))
    row("records read", f"{read:,} in {pages:,} pages of up to {crm.page_size:,}")
    row(
        "read calls",
        f"{calls} = 1 REST page (its totalSize chose bulk) + 3 describes + 1 job + "
        f"{crm.reads.bulk.polls} polls ({sum(waits):.0f} s waited) + {results} result sets",
    )
    row("REST read calls (computed)", f"{rest:,} pages of {REST_PAGE:,}")
    row("wall (adapter and fake, no waits)", f"{wall:.1f} s; peak RSS {rss:,.0f} MB")
    row("cursor committed", f"{last.modified_at.isoformat()} {last.id}" if last else "-")
    committed = (last.fields["SystemModstamp"], last.id) if last else None
    return [
        verdict(
            Verdict(
                "salesforce",
                f"bulk first read of {lines:,} lines, API calls",
                f"{calls} (REST pages: {rest:,}, {rest / max(calls, 1):.0f}x more)",
                f"<= {TARGET_CALLS}",
                calls <= TARGET_CALLS and read == lines,
            )
        ),
        verdict(
            Verdict(
                "salesforce",
                "bulk read's last record = the newest line (the cursor committed)",
                " ".join(committed) if committed else "-",
                " ".join(newest),
                committed == newest,
            )
        ),
    ]


if __name__ == "__main__":  # python -m benchmarks.salesforce_bulk [LINES]
    import sys

    os.environ.update(SALESFORCE_ENV)
    run(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
