"""Webhook runs on a large book: what the inbox worker spends per batch of events.

A sandbox of N contracts (the demo seed, scaled) is synced once, which builds the planning
index; then batches of 20 contract events are run through `sync_records` as the inbox worker
runs them. Each reads its records again and loads just their accounts from the mirror, with
their ledger (connector/services/scope.py), whether or not another run came in between: the
first batch, the next ones, one after another sync, one without a Snapshot. (Before the index
existed, a batch after another run loaded the whole mirror: 0.7-0.9 s at 10,000 contracts.)
The health of only the accounts a batch plans for is scored.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

from benchmarks.common import Verdict, flush, heading, row, verdict
from crm_renewals.connector import bootstrap
from crm_renewals.connector.adapters.sandbox.seed import seed
from crm_renewals.connector.config import load_config
from crm_renewals.connector.services.gather import load_book
from crm_renewals.connector.services.refresh import Snapshot, sync_records
from crm_renewals.connector.services.sync import sync
from tests.conftest import write_config

AS_OF = date(2026, 11, 23)
BATCH = 20
#: a batch costs its own accounts, not the book: a tenth of loading the whole mirror
TARGET_S = 0.1


def run(contracts: int = 10_000, batches: int = 10) -> list[Verdict]:
    heading(f"webhook runs: batches of {BATCH} contract events on a {contracts:,}-contract book")
    with tempfile.TemporaryDirectory(prefix="bench-webhook-runs-") as tmp:
        ctx = bootstrap.build(load_config(write_config(Path(tmp))))
        try:
            started = time.perf_counter()
            seed(ctx.crm, as_of=AS_OF, accounts=contracts * 3 // 5, contracts=contracts)
            sync(ctx, as_of=AS_OF)
            row("seed and first sync", f"{time.perf_counter() - started:.1f} s")
            ids = sorted(load_book(ctx.store).contracts)
            step = max(1, len(ids) // (batches + 2))
            groups = [set(ids[i * step : i * step + BATCH]) for i in range(batches + 2)]
            kept = Snapshot()
            first = _timed(ctx, groups[0], kept)
            warm = [_timed(ctx, g, kept) for g in groups[1:batches]]
            sync(ctx, as_of=AS_OF)  # another run: the next batch must load again
            after_sync = _timed(ctx, groups[batches], kept)
            fresh = _timed(ctx, groups[batches + 1], Snapshot())
        finally:
            ctx.close()
    typical = statistics.median(warm)
    row("first batch", f"{first * 1000:,.0f} ms")
    row("next batches, median", f"{typical * 1000:,.0f} ms ({len(warm)} batches)")
    row("after another run", f"{after_sync * 1000:,.0f} ms")
    row("without a Snapshot", f"{fresh * 1000:,.0f} ms")
    flush()
    every = [first, after_sync, fresh, *warm]
    median, worst = statistics.median(every), max(every)
    return [
        verdict(
            Verdict(
                "webhook_runs",
                f"a batch of {BATCH} events, {contracts:,} contracts",
                f"median {median * 1000:,.0f} ms (slowest {worst * 1000:,.0f} ms)",
                f"median <= {TARGET_S * 1000:,.0f} ms (the whole mirror: 700-900 ms)",
                median <= TARGET_S,
            )
        )
    ]


def _timed(ctx, contract_ids: set[str], snapshot: Snapshot) -> float:
    started = time.perf_counter()
    report = sync_records(ctx, {"contract": contract_ids}, as_of=AS_OF, snapshot=snapshot)
    if report.status != "ok":
        raise RuntimeError(f"webhook run {report.status}: {report.error}")
    return time.perf_counter() - started
