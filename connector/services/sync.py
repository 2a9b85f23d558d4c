"""The sync use case (gather -> plan -> apply -> record), `explain` and dead-letter retry."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from connector.domain.book import Book
from connector.domain.health import health_mix
from connector.domain.renewals import Plan
from connector.domain.writes import account_health_writes
from connector.errors import ConnectorError
from connector.services.apply import Applier, Collected, Ledger, collect
from connector.services.context import Context
from connector.services.gather import Progress, load_book, map_record, pull_changes
from connector.services.insight import assess, record

#: Skip reasons an admin must act on (shown under "Needs attention").
ATTENTION = ("missing_data", "no_active_owner", "renewal_deleted")


@dataclass
class SyncReport:
    run_id: int | None
    as_of: date
    dry_run: bool
    full: bool
    status: str = "ok"
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    failed: int = 0
    api_calls: int = 0
    writes: dict[str, int] = field(default_factory=dict)
    skip_reasons: dict[str, int] = field(default_factory=dict)
    dead_letters: int = 0
    duration_s: float = 0.0
    plans: list[Plan] = field(default_factory=list, repr=False)
    error: str | None = None
    #: accounts by health grade (green, yellow, red) as scored in this run
    health: dict[str, int] = field(default_factory=dict)

    @property
    def tasks_created(self) -> int:
        return self.writes.get("task.create", 0)

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "status": self.status,
            "as_of": self.as_of.isoformat(),
            "dry_run": self.dry_run,
            "full": self.full,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "skipped": self.skipped,
            "failed": self.failed,
            "api_calls": self.api_calls,
            "writes": self.writes,
            "tasks_created": self.tasks_created,
            "skip_reasons": self.skip_reasons,
            "dead_letters": self.dead_letters,
            "duration_s": round(self.duration_s, 3),
            "error": self.error,
            "health": self.health,
        }


def today() -> date:
    return datetime.now(UTC).date()


def sync(
    ctx: Context,
    *,
    full: bool = False,
    dry_run: bool = False,
    as_of: date | None = None,
    progress: Progress | None = None,
) -> SyncReport:
    """One run. A killed run leaves nothing half-done that the next run cannot converge from:
    CRM writes are upserts by key, the ledger records them after, cursors move last."""
    as_of = as_of or today()
    started, calls = time.monotonic(), ctx.crm.api_calls
    store = ctx.store
    run_id = (
        None if dry_run else store.start_run("full" if full else "incremental", as_of.isoformat())
    )
    report = SyncReport(run_id, as_of, dry_run, full)
    try:
        book = load_book(ctx)
        cursors = pull_changes(
            ctx, book, full=full, dry_run=dry_run, run_id=run_id, progress=progress
        )
        ledger = Ledger(store.load_ledger())
        insight, planner = assess(ctx, book, as_of)
        report.health = health_mix(insight.health)
        applier = None if dry_run else Applier(ctx, ledger, run_id, progress)
        run = collect(
            planner.plan_book(book, ledger),
            book,
            ledger,
            applier,
            show_writes=dry_run,
            show_skips=ATTENTION,
        )
        report.plans = run.shown
        failed: set[str] = set()
        health_writes = account_health_writes(
            [
                h.record()
                for _, h in sorted(insight.health.items())
                if h.account_id in book.accounts
            ],
            ledger,
        )
        if applier is None:
            run.planned.update(f"{w.kind}.{w.op}" for w in health_writes)
            report.writes = dict(sorted(run.planned.items()))
        else:
            applier.finish()
            # health onto accounts goes last: the renewal work comes first
            for w in health_writes:
                applier.add(w)
            outcome = applier.finish()
            record(ctx, book, insight, as_of)
            failed |= outcome.failed_contracts
            report.writes = dict(sorted(outcome.writes.items()))
            store.advance_cursors(cursors)
        _count(report, run, failed)
        report.status = "partial" if report.failed else "ok"
    except ConnectorError as exc:
        report.status, report.error = "failed", str(exc)
        raise
    finally:
        report.api_calls = ctx.crm.api_calls - calls
        report.duration_s = time.monotonic() - started
        if run_id is not None:
            report.dead_letters = len(store.list_dead_letters())
            store.finish_run(
                run_id,
                report.status,
                _stored_counts(report),
                report.api_calls,
                report.duration_s,
                report.error,
            )
    return report


def _count(report: SyncReport, run: Collected, failed: set[str]) -> None:
    counts = Counter(run.settled)
    counts.update("failed" if cid in failed else action for cid, action in run.writing.items())
    report.created, report.updated = counts.pop("create", 0), counts.pop("update", 0)
    report.unchanged, report.failed = counts.pop("unchanged", 0), counts.pop("failed", 0)
    report.skipped = sum(counts.values())
    report.skip_reasons = dict(sorted(counts.items()))


def _stored_counts(report: SyncReport) -> dict[str, Any]:
    keys = (
        "created",
        "updated",
        "unchanged",
        "skipped",
        "failed",
        "writes",
        "skip_reasons",
        "tasks_created",
    )
    data = report.to_json()
    return {k: data[k] for k in keys}


@dataclass
class Explanation:
    contract_id: str
    plan: Plan | None
    broken: str | None
    dead_letters: list[dict[str, Any]]


def explain(ctx: Context, contract_id: str, as_of: date | None = None) -> Explanation:
    """Why this contract has or has no renewal: the planner's answer over the synced book."""
    book = load_book(ctx)
    ledger = Ledger(ctx.store.load_ledger())
    _, planner = assess(ctx, book, as_of or today())
    known = contract_id in book.contracts or contract_id in book.broken
    plan = planner.plan(book, ledger, contract_id) if known else None
    letters = [d for d in ctx.store.list_dead_letters() if d["contract_id"] == contract_id]
    return Explanation(contract_id, plan, book.broken_reason(contract_id), letters)


def retry_dead_letters(
    ctx: Context, as_of: date | None = None, progress: Progress | None = None
) -> tuple[int, SyncReport]:
    """Re-map records that failed to map (say, after a mapping fix) from their mirrored CRM
    data, then run a sync, which re-plans every contract and so re-sends refused writes."""
    scratch = Book()  # map_record needs a book; the sync below loads the real one
    fixed = 0
    for letter in ctx.store.list_dead_letters():
        if letter["stage"] != "read":
            continue
        record = ctx.store.mirrored(letter["kind"], letter["record_id"])
        if record is None:
            continue
        row, failure = map_record(ctx.mapping, scratch, letter["kind"], record)
        if failure:
            continue
        ctx.store.save_records([row])
        ctx.store.resolve_dead_letters(letter["kind"], [letter["record_id"]])
        fixed += 1
    return fixed, sync(ctx, as_of=as_of, progress=progress)
