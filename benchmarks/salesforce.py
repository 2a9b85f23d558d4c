"""CRM calls of Salesforce syncs against a fake org (tests/fakes/salesforce_org.py, over
`responses`): the real adapter, simple-salesforce and the REST wire format, no network.

Lower bound = the read pages (sum over read kinds of max(1, ceil(records / page_size))) + the
two price-book lookups a run that writes line items needs + ceil(records sent / records a call)
per write group. Records a call, from Salesforce's documented limits (connector/adapters/
salesforce/composite.py): 200 for sObject Collections (the old bound), 1,000 for a Composite
request of five Collections subrequests, which counts as one API call (the bound now).

Also: a second sync with nothing to do; the same book synced through the Collections path
(`salesforce.write_api: collections`) on a twin org leaves the same records; a Composite path
whose calls fail (the first whole call 503, then one subrequest 500) converges.
"""

from __future__ import annotations

import math
import time
from datetime import date

from benchmarks.calls import CallCounter, _reads, _writes
from benchmarks.common import Verdict, flush, heading, row, verdict
from benchmarks.salesforce_twins import faulted, with_org
from crm_renewals.connector.adapters.salesforce.composite import (
    COLLECTION_SIZE,
    RECORDS_PER_COMPOSITE,
)
from crm_renewals.connector.services.apply import STAGES
from crm_renewals.connector.services.sync import sync
from tests.fakes.salesforce_org import written_state as state

AS_OF = date(2026, 11, 23)
PRICE_BOOK_LOOKUPS = 2
TARGET_SHARE = 1 / 5  # of the old Collections bound (issue 23)


def run(contracts: int = 1_000) -> list[Verdict]:
    heading(f"Salesforce calls: sync of {contracts:,} contracts (2 lines each) against a fake org")
    t0 = time.perf_counter()
    (verdicts, composite_state), _ = with_org(contracts, "composite", _composite_path)
    row("composite path", f"{time.perf_counter() - t0:.1f} s")
    flush()
    t0 = time.perf_counter()
    calls, twin = with_org(contracts, "collections", _collections_path)
    row("collections path (twin org)", f"{calls} calls in {time.perf_counter() - t0:.1f} s")
    same = state(twin) == composite_state
    sizes = ", ".join(f"{o} {len(v):,}" for o, v in composite_state.items())
    verdicts.append(
        verdict(
            Verdict(
                "salesforce",
                "final state, composite vs collections path",
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
    t0 = time.perf_counter()
    first = sync(ctx, as_of=AS_OF)
    wall = time.perf_counter() - t0
    _reads(counter)
    _writes(counter, first)
    reads = counter.read_bound() + PRICE_BOOK_LOOKUPS
    old = reads + _write_bound(counter, COLLECTION_SIZE)
    bound = reads + _write_bound(counter, RECORDS_PER_COMPOSITE)
    ratio = first.api_calls / old
    row("first sync", f"{first.api_calls} calls in {wall:.1f} s")
    row("calls by kind of request", _by_kind(first))
    row("bound, Composite (1,000 a call)", bound)
    row("old bound, Collections (200 a call)", f"{old} (1/5: {old / 5:.1f})")
    row("calls / old bound", f"{ratio:.3f} (1/{1 / ratio:.2f})")
    verdicts = [
        verdict(
            Verdict(
                "salesforce",
                "first sync calls / Composite lower bound",
                f"{first.api_calls}/{bound} = {first.api_calls / bound:.3f}x",
                "<= 1.05x",
                first.api_calls <= bound * 1.05,
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


def _write_bound(counter: CallCounter, per_call: int) -> int:
    return sum(math.ceil(counter.sent[kind, method] / per_call) for kind, _, method in STAGES)


def _by_kind(report) -> str:
    kinds = getattr(report, "api_calls_by_kind", None) or {}
    return ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())) or "-"


def _faulted(contracts: int) -> Verdict:
    first, second, org = faulted(contracts)
    row(
        f"faulted composite path ({contracts:,} contracts)",
        f"first: created {first.created:,}, failed {first.failed}, dead letters "
        f"{first.dead_letters}, {first.api_calls} calls; second: "
        f"{sum(second.writes.values())} writes",
    )
    ok = (first.created, first.failed, first.dead_letters) == (contracts, 0, 0)
    ok = ok and not second.writes and not org.composite.call_faults and not org.composite.faults
    return verdict(
        Verdict(
            "salesforce",
            "composite call 503 + subrequest 500 converge",
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
