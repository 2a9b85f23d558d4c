"""CRM calls of Salesforce syncs against a fake org (tests/fakes/salesforce_org.py, over
`responses`): the real adapter, simple-salesforce and the REST wire format, no network.

Lower bound = the read pages (sum over read kinds of max(1, ceil(records / page_size))) + the
two price-book lookups a run that writes line items needs + ceil(records sent / 200) per write
group. Second figure: a sync with nothing to do.
"""

from __future__ import annotations

import os
import tempfile
import time
from datetime import date
from pathlib import Path

import responses

from benchmarks.calls import CallCounter, _reads, _writes
from benchmarks.common import Verdict, flush, heading, row, verdict
from crm_renewals.connector import bootstrap
from crm_renewals.connector.config import load_config
from crm_renewals.connector.services.sync import sync
from tests.conftest import write_config
from tests.contract.test_sync_contract import SalesforceBook
from tests.fakes.harness import SALESFORCE_ENV
from tests.fakes.salesforce_org import FakeOrg

AS_OF = date(2026, 11, 23)
ROOT = Path(__file__).resolve().parent.parent
PRICE_BOOK_LOOKUPS = 2


def run(contracts: int = 1_000) -> list[Verdict]:
    heading(f"Salesforce calls: sync of {contracts:,} contracts (2 lines each) against a fake org")
    os.environ.update(SALESFORCE_ENV)
    with (
        tempfile.TemporaryDirectory(prefix="renewals-sf-") as tmp,
        responses.RequestsMock(assert_all_requests_are_fired=False) as rsps,
    ):
        org = FakeOrg(rsps)
        book = SalesforceBook(org)
        owner = book.user("Sam Rep")
        t0 = time.perf_counter()
        for i in range(contracts):
            account = book.account(f"Account {i}", owner=owner)
            book.contract(
                account,
                date(2027, 2, 1),
                lines=(("SEAT", 10, 100.0), ("SUPPORT", 1, 1000.0)),
                number=f"{i:08d}",
            )
        row("seeded in", f"{time.perf_counter() - t0:.1f} s")
        path = write_config(
            Path(tmp),
            crm="salesforce",
            salesforce={"auth": "password"},
            mapping=str(ROOT / "mappings" / "salesforce.yaml"),
        )
        ctx = bootstrap.build(load_config(path))
        try:
            counter = CallCounter(ctx.crm)
            flush()
            t0 = time.perf_counter()
            first = sync(ctx, as_of=AS_OF)
            wall = time.perf_counter() - t0
            _reads(counter)
            _writes(counter, first)
            bound = counter.read_bound() + PRICE_BOOK_LOOKUPS + counter.write_bound()
            per_thousand = first.api_calls * 1000 / contracts
            row("first sync", f"{first.api_calls} calls in {wall:.1f} s, lower bound {bound}")
            row("calls per 1,000 contracts", f"{per_thousand:.1f}")
            verdicts = [
                verdict(
                    Verdict(
                        "salesforce",
                        "first sync calls / lower bound",
                        f"{first.api_calls}/{bound} = {first.api_calls / bound:.3f}x",
                        "<= 1.05x",
                        first.api_calls <= bound * 1.05,
                    )
                )
            ]
            counter.reset()
            second = sync(ctx, as_of=AS_OF)
            row("second sync", f"{sum(second.writes.values())} writes, {second.api_calls} calls")
            verdicts.append(
                verdict(
                    Verdict(
                        "salesforce",
                        "second sync writes",
                        str(sum(second.writes.values())),
                        "0",
                        not second.writes,
                    )
                )
            )
            verdicts.append(_full_by_bulk(ctx, contracts))
        finally:
            ctx.close()
    return verdicts


def _full_by_bulk(ctx, contracts: int) -> Verdict:
    """A full sync whose big kinds (above a tenth of the book) are read by Bulk API 2.0 jobs:
    the same records as the REST read, so it plans nothing new."""
    ctx.crm.reads.bulk_threshold = max(1, contracts // 10)
    ctx.crm.reads.read_by.clear()
    ctx.sleep = lambda _s: None  # the job's status polls are counted, not waited for
    full = sync(ctx, as_of=AS_OF, full=True)
    bulk = sorted(k for k, how in ctx.crm.reads.read_by.items() if how == "bulk")
    row(
        f"full sync, bulk_threshold {ctx.crm.reads.bulk_threshold:,}",
        f"{full.api_calls} calls, {sum(full.writes.values())} writes; by bulk: {', '.join(bulk)}",
    )
    return verdict(
        Verdict(
            "salesforce",
            "full sync with bulk reads, writes",
            f"{sum(full.writes.values())} ({len(bulk)} kinds by bulk)",
            "0, >= 3 kinds by bulk",
            not full.writes and len(bulk) >= 3,
        )
    )
