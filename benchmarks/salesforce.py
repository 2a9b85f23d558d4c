"""CRM calls of Salesforce syncs against a fake org (tests/fakes/salesforce_org.py, over
`responses`): the real adapter, simple-salesforce and the REST wire format, no network.

Lower bound = the reads + the two price-book lookups a run that writes line items needs + the
calls of each write group, from the documented limits of the request type each uses. Reads: the
first page of every kind, five query subrequests to a Composite call (ceil(kinds / 5)), then
each further page (sum over kinds of max(1, ceil(records / page_size)) - 1); the old bound took
a call per page. Writes:
- sObject Collections, 200 records a call (the old bound, every group);
- a Composite request of five Collections subrequests, 1,000 records, counted as one API call
  (connector/adapters/salesforce/composite.py): ceil(records / 1,000) for a group at or below
  salesforce.bulk_write_threshold;
- a Bulk API 2.0 ingest job above it (connector/adapters/salesforce/bulk_ingest.py): 5 calls a
  job of up to 50,000 records (create, upload, close, one poll, the successful results; the
  failed results only when some failed). Polls past the first are the wait for Salesforce to
  process the job, shown apart (the fake org answers InProgress twice, as for query jobs).

Also: a second sync with nothing to do; the same book synced through the Collections path
(`salesforce.write_api: collections`, no bulk writes) on a twin org leaves the same records; a
run whose calls fail (the first Composite call 503, one subrequest 500, the first ingest job
Failed part way) converges.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import date

from benchmarks.calls import CallCounter, _reads, _writes
from benchmarks.common import Verdict, flush, heading, row, verdict
from benchmarks.salesforce_twins import faulted, with_org
from crm_renewals.connector.adapters.salesforce.bulk_ingest import JOB_RECORDS
from crm_renewals.connector.adapters.salesforce.composite import (
    COLLECTION_SIZE,
    COLLECTIONS_PER_COMPOSITE,
    RECORDS_PER_COMPOSITE,
)
from crm_renewals.connector.domain.models import READ_KINDS
from crm_renewals.connector.services.apply import STAGES
from crm_renewals.connector.services.sync import sync
from tests.fakes.salesforce_org import written_state as state

AS_OF = date(2026, 11, 23)
PRICE_BOOK_LOOKUPS = 2
#: create, upload, close, one poll, successful results: the fewest calls of an ingest job
CALLS_A_JOB = 5
TARGET_SHARE = 1 / 5  # of the old Collections bound (issue 23)


def run(contracts: int = 1_000) -> list[Verdict]:
    heading(f"Salesforce calls: sync of {contracts:,} contracts (2 lines each) against a fake org")
    t0 = time.perf_counter()
    (verdicts, composite_state), _ = with_org(contracts, "composite", _composite_path)
    row("composite path", f"{time.perf_counter() - t0:.1f} s")
    flush()
    t0 = time.perf_counter()
    calls, twin = with_org(contracts, "collections", _collections_path, bulk_writes=False)
    row("collections path (twin org)", f"{calls} calls in {time.perf_counter() - t0:.1f} s")
    same = state(twin) == composite_state
    sizes = ", ".join(f"{o} {len(v):,}" for o, v in composite_state.items())
    verdicts.append(
        verdict(
            Verdict(
                "salesforce",
                "final state, bulk + composite vs collections path",
                f"{'identical' if same else 'DIFFERENT'} ({sizes})",
                "identical",
                same,
            )
        )
    )
    verdicts.append(_faulted(min(contracts, 1_000)))
    return verdicts


def _composite_path(ctx, org) -> tuple[list[Verdict], dict]:
    counter = CallCounter(ctx.crm)
    flush()
    t0, c0 = time.perf_counter(), time.process_time()
    first = sync(ctx, as_of=AS_OF)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    _reads(counter)
    ahead = [r for r in org.composite.requests if r["compositeRequest"][0]["method"] == "GET"]
    row(
        "first pages read ahead",
        f"{sum(len(r['compositeRequest']) for r in ahead)} kinds in {len(ahead)} Composite "
        "calls (not in the calls column above)",
    )
    _writes(counter, first)
    old_reads = counter.read_bound() + PRICE_BOOK_LOOKUPS
    reads = _read_bound(counter) + PRICE_BOOK_LOOKUPS
    old = old_reads + _write_bound(counter, lambda n: math.ceil(n / COLLECTION_SIZE))
    composite = reads + _write_bound(counter, lambda n: math.ceil(n / RECORDS_PER_COMPOSITE))
    threshold = ctx.config.salesforce.bulk_write_threshold
    bound = reads + _write_bound(counter, lambda n: _group_bound(n, threshold))
    jobs = len(org.ingest.jobs)
    waiting = _job_polls(org) - jobs  # polls past the first: the wait, not the request type
    ratio = first.api_calls / old
    row("first sync", f"{first.api_calls} calls in {wall:.1f} s, CPU {cpu:.1f} s")
    row("calls by kind of request", _by_kind(first))
    row(
        "bound, by the request types used",
        f"{bound} (Composite <= {threshold:,} records a group, else ingest jobs: {jobs} jobs "
        f"x {CALLS_A_JOB}); polls past the first: {waiting}",
    )
    row("bound, Composite writes only (1,000 a call)", composite)
    row("old bound, Collections (200 a call)", f"{old} (1/5: {old / 5:.1f})")
    row("calls / old bound", f"{ratio:.3f} (1/{1 / ratio:.2f})")
    verdicts = [
        verdict(
            Verdict(
                "salesforce",
                "first sync calls, polls past the first apart / lower bound",
                f"({first.api_calls} - {waiting})/{bound} = "
                f"{(first.api_calls - waiting) / bound:.3f}x",
                "<= 1.05x",
                first.api_calls - waiting <= bound * 1.05,
            )
        ),
        verdict(
            Verdict(
                "salesforce",
                "first sync calls / old Collections bound",
                f"{first.api_calls}/{old} = {ratio:.3f}",
                f"<= {TARGET_SHARE:.2f}",
                ratio <= TARGET_SHARE,
            )
        ),
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
    composite_state = state(org)
    verdicts.append(_full_by_bulk(ctx, len(composite_state["Opportunity"])))
    return verdicts, composite_state


def _collections_path(ctx, org) -> int:
    return sync(ctx, as_of=AS_OF).api_calls


def _read_bound(counter: CallCounter) -> int:
    """First pages five to a Composite call, then a call a page (reads.py: prefetch)."""
    pages = {
        k: max(1, math.ceil(counter.read_records[k] / counter.crm.page_size)) for k in READ_KINDS
    }
    return math.ceil(len(pages) / COLLECTIONS_PER_COMPOSITE) + sum(n - 1 for n in pages.values())


def _write_bound(counter: CallCounter, calls: Callable[[int], int]) -> int:
    """Sum over the write groups of `calls(records sent)`."""
    return sum(calls(counter.sent[kind, method]) for kind, _, method in STAGES)


def _group_bound(records: int, threshold: int | None) -> int:
    """The fewest calls of one write group: Composite calls, or ingest jobs above the
    threshold (as connector/adapters/salesforce/writes.py chooses)."""
    if threshold is not None and records > threshold:
        return CALLS_A_JOB * math.ceil(records / JOB_RECORDS)
    return math.ceil(records / RECORDS_PER_COMPOSITE)


def _job_polls(org) -> int:
    """Status polls of ingest jobs the org answered (GET jobs/ingest/<id>)."""
    return sum(
        method == "GET" and path.startswith("jobs/ingest/") and path.count("/") == 2
        for method, path in org.calls
    )


def _by_kind(report) -> str:
    kinds = getattr(report, "api_calls_by_kind", None) or {}
    return ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())) or "-"


def _faulted(contracts: int) -> Verdict:
    first, second, org = faulted(contracts)
    row(
        f"faulted path ({contracts:,} contracts)",
        f"first: created {first.created:,}, failed {first.failed}, dead letters "
        f"{first.dead_letters}, {first.api_calls} calls; second: "
        f"{sum(second.writes.values())} writes",
    )
    ok = (first.created, first.failed, first.dead_letters) == (contracts, 0, 0)
    ok = ok and not second.writes and not org.composite.call_faults and not org.composite.faults
    ok = ok and org.ingest.fail_next is None
    return verdict(
        Verdict(
            "salesforce",
            "composite call 503 + subrequest 500 + a Failed ingest job converge",
            f"created {first.created:,}/{contracts:,}, {first.dead_letters} dead letters, "
            f"then {sum(second.writes.values())} writes",
            "all created, 0 dead letters, then 0 writes",
            ok,
        )
    )


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
