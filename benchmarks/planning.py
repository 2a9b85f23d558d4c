"""Planning throughput: Planner.plan_book over an in-memory synthetic book, on one core.

Each run plans the whole book into a list (as `sync` does) with a fresh Book index (as after
`load_book`), the garbage collector on as in production and collected before each run. The
figure is the best of `repeat` runs.
"""

from __future__ import annotations

import gc
import time

from benchmarks.common import Verdict, flush, heading, one_core, row, verdict
from benchmarks.synthetic import AS_OF, SEED, EmptyLedger, build_book, summarize
from crm_renewals.connector.domain.book import Book
from crm_renewals.connector.domain.planning.planner import Planner
from crm_renewals.connector.domain.planning.values import ContractPlan
from crm_renewals.connector.domain.policy import Playbook, RenewalPolicy

TARGET = 20_000  # contracts per second


def run(contracts: int = 20_000, repeat: int = 3, seed: int = SEED) -> list[Verdict]:
    heading(f"planning throughput: {contracts:,} contracts, best of {repeat}")
    started = time.perf_counter()
    book = build_book(contracts, seed=seed)
    row("book built in", f"{time.perf_counter() - started:.2f} s (not timed)")
    row(
        "book",
        f"{len(book.owners)} owners, {len(book.accounts):,} accounts, "
        f"{len(book.contacts):,} contacts, {len(book.contracts):,} contracts, "
        f"{len(book.contract_lines):,} lines",
    )
    planner = Planner(RenewalPolicy(), Playbook(), AS_OF)
    with one_core() as pinned:
        row("cpu", pinned)
        times, plans = _runs(planner, book, contracts, repeat, "run")
        # informational: the share of the time spent in the cyclic garbage collector
        gc.disable()
        try:
            no_gc, _ = _runs(planner, book, contracts, repeat, "run, gc off")
        finally:
            gc.enable()
    counts = summarize(plans)
    planned = counts.get("plan.create", 0) + counts.get("plan.update", 0)
    row("as_of", AS_OF.isoformat())
    row("renewal plans", f"{planned:,} ({planned / max(1, len(plans)):.0%} of contracts)")
    row("  lines / tasks / writes", "{lines:,} / {tasks:,} / {writes:,}".format(**counts))
    skips = {k.removeprefix("skip."): v for k, v in counts.items() if k.startswith("skip.")}
    row("skips", ", ".join(f"{k} {v:,}" for k, v in skips.items()))
    best = min(times)
    rate = contracts / best
    row("best", f"{best:.3f} s")
    row(
        "best with gc disabled (info only)",
        f"{min(no_gc):.3f} s ({contracts / min(no_gc):,.0f} contracts/s; "
        f"gc is {1 - min(no_gc) / best:.0%} of the time)",
    )
    return [
        verdict(
            Verdict(
                "planning",
                f"throughput (1 core, best of {repeat})",
                f"{rate:,.0f} contracts/s",
                f">= {TARGET:,} contracts/s",
                rate >= TARGET,
            )
        )
    ]


def _runs(
    planner: Planner, book: Book, contracts: int, repeat: int, label: str
) -> tuple[list[float], list[ContractPlan]]:
    """Time `repeat` full plannings of `book`; returns the times and the last run's plans."""
    times: list[float] = []
    plans: list[ContractPlan] = []
    for i in range(repeat):
        plans = []
        book._index = None  # as after load_book: the index is built on first use
        gc.collect()
        t0 = time.perf_counter()
        plans = list(planner.plan_book(book, EmptyLedger()))
        times.append(time.perf_counter() - t0)
        row(f"{label} {i + 1}", f"{times[-1]:.3f} s  ({contracts / times[-1]:,.0f} contracts/s)")
        flush()
    return times, plans
