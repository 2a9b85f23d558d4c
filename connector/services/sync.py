"""The sync use case (gather -> plan -> apply -> record), `explain` and dead-letter retry."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from connector.domain.book import Book, affected_contracts, missing_parents
from connector.domain.health import health_mix
from connector.domain.models import READ_KINDS
from connector.domain.planning.planner import planning_order
from connector.domain.planning.values import ContractPlan, Skip
from connector.domain.writes import account_health_writes
from connector.errors import ApiLimitReached, ConnectorError
from connector.services.apply import Applier, Collected, Ledger, collect
from connector.services.context import Context
from connector.services.gather import Progress, load_book, map_record, pull_changes
from connector.services.insight import assess, record

#: Skip reasons an admin must act on (shown under "Needs attention").
ATTENTION = (
    "missing_data",
    "no_active_owner",
    "renewal_deleted",
    "contract_deleted",
    "cpq_overdue",
)


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
    plans: list[ContractPlan] = field(default_factory=list, repr=False)
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
    retry: bool = False,
) -> SyncReport:
    """One run. A killed run leaves nothing half-done that the next run cannot converge from:
    CRM writes are upserts by key, the ledger records them after, cursors move last. Writes
    the CRM refused for good are held back unless `retry` (`deadletters retry`)."""
    as_of = as_of or today()
    store = ctx.store
    run_id = (
        None if dry_run else store.start_run("full" if full else "incremental", as_of.isoformat())
    )
    report = SyncReport(run_id, as_of, dry_run, full)
    with _recorded(ctx, report):
        book = load_book(ctx.store)
        cursors = pull_changes(
            ctx, book, full=full, dry_run=dry_run, run_id=run_id, progress=progress
        )
        ledger = Ledger(store.load_ledger())
        planner = assess(ctx, book, as_of)
        report.health = health_mix(h.grade for h in planner.health.values())
        applier = None if dry_run else Applier(ctx, ledger, run_id, progress, retry=retry)
        if applier is not None:  # so that a run stopped halfway records what it wrote
            report.writes = applier.outcome.writes
        run = collect(
            planner.plan_book(book, ledger),
            book,
            ledger,
            applier,
            show_writes=dry_run,
            show_skips=ATTENTION,
        )
        report.plans = run.shown
        if not dry_run:
            _cpq_letters(ctx, run.shown, run_id)
        failed: set[str] = set()
        health_writes = account_health_writes(
            [h.record() for _, h in sorted(planner.health.items())],
            ledger,
        )
        if applier is None:
            run.planned.update(f"{w.kind}.{w.op}" for w in health_writes)
            report.writes = dict(sorted(run.planned.items()))
        else:
            applier.replay_refused_tasks()
            applier.finish()
            # health onto accounts goes last: the renewal work comes first
            for w in health_writes:
                applier.add(w)
            outcome = applier.finish()
            record(ctx, book, planner.health, as_of)
            failed |= outcome.failed_contracts
            report.writes = dict(sorted(outcome.writes.items()))
            store.advance_cursors(cursors)
        _count(report, run, failed)
        report.status = "partial" if report.failed else "ok"
    return report


def _cpq_letters(ctx: Context, shown: list[ContractPlan], run_id: int | None) -> None:
    """A renewal forecast CPQ has not honoured is a dead letter (CPQ_RENEWAL_OVERDUE) while
    it lasts: `renewals deadletters list` names it next to the records that failed."""
    overdue = {
        p.contract_id: p.renewal.detail
        for p in shown
        if isinstance(p.renewal, Skip) and p.renewal.reason == "cpq_overdue"
    }
    settled = [
        d["record_id"]
        for d in ctx.store.list_dead_letters()
        if d["kind"] == "cpq_forecast" and d["record_id"] not in overdue
    ]
    ctx.store.resolve_dead_letters("cpq_forecast", settled)
    letters = [
        {
            "stage": "plan",
            "kind": "cpq_forecast",
            "record_id": cid,
            "contract_id": cid,
            "field": None,
            "value": None,
            "error_code": "CPQ_RENEWAL_OVERDUE",
            "message": detail,
        }
        for cid, detail in sorted(overdue.items())
    ]
    ctx.store.add_dead_letters(letters, run_id)


@contextmanager
def _recorded(ctx: Context, report: SyncReport) -> Iterator[None]:
    """The run's API calls, duration and outcome, recorded in the run history whatever happens:
    a ConnectorError marks it `stopped` (API allowance) or `failed`, Ctrl-C `interrupted`, with
    the writes made until then; the exception goes on up."""
    started, calls = time.monotonic(), ctx.crm.api_calls
    try:
        yield
    except ConnectorError as exc:
        report.status = "stopped" if isinstance(exc, ApiLimitReached) else "failed"
        report.error = str(exc)
        _partial_counts(report)
        raise
    except KeyboardInterrupt:
        report.status, report.error = "interrupted", "stopped by Ctrl-C (SIGINT)"
        _partial_counts(report)
        raise
    except BaseException as exc:  # a bug, or the process asked to exit: never recorded ok
        report.status, report.error = "failed", f"{type(exc).__name__}: {exc}"
        _partial_counts(report)
        raise
    finally:
        _finish(ctx, report, started, calls)


def _partial_counts(report: SyncReport) -> None:
    """A run that stopped before counting: its renewals created and updated, from its writes."""
    report.writes = dict(sorted(report.writes.items()))
    report.created = report.writes.get("renewal_opportunity.create", 0)
    report.updated = report.writes.get("renewal_opportunity.update", 0)


def _finish(ctx: Context, report: SyncReport, started: float, calls: int) -> None:
    report.api_calls = ctx.crm.api_calls - calls
    report.duration_s = time.monotonic() - started
    if report.run_id is not None:
        report.dead_letters = len(ctx.store.list_dead_letters())
        ctx.store.finish_run(
            report.run_id,
            report.status,
            _stored_counts(report),
            report.api_calls,
            report.duration_s,
            report.error,
        )


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
    plan: ContractPlan | None
    broken: str | None
    dead_letters: list[dict[str, Any]]


def explain(ctx: Context, contract_id: str, as_of: date | None = None) -> Explanation:
    """Why this contract has or has no renewal: the planner's answer over the synced book."""
    book = load_book(ctx.store)
    ledger = Ledger(ctx.store.load_ledger())
    planner = assess(ctx, book, as_of or today(), _accounts_of(book, [contract_id]))
    known = contract_id in book.plannable_ids()
    plan = planner.plan(book, ledger, contract_id) if known else None
    letters = [d for d in ctx.store.list_dead_letters() if d["contract_id"] == contract_id]
    return Explanation(contract_id, plan, book.broken_reason(contract_id), letters)


def retry_dead_letters(
    ctx: Context, as_of: date | None = None, progress: Progress | None = None
) -> tuple[int, SyncReport]:
    """Re-map records that failed to map (say, after a mapping fix) from their mirrored CRM
    data, then run a sync, which re-plans every contract and re-sends every refused write
    (those refused for good included: their cause is taken as fixed)."""
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
    return fixed, sync(ctx, as_of=as_of, progress=progress, retry=True)


@dataclass
class Snapshot:
    """The book and ledger of the last webhook run, kept by the inbox worker for the next one:
    a run only reads its records again into them and keeps the ledger in step, so while no
    other run has happened since, they are what loading the mirror and the ledger would give,
    without reading the whole mirror for every batch of events."""

    book: Book | None = None
    ledger: Ledger | None = None
    #: the run that last brought them up to date
    run_id: int | None = None

    def take(self, ctx: Context, run_id: int) -> tuple[Book, Ledger]:
        """For run `run_id`: kept if the run before it was the last one they saw, else loaded."""
        if self.book is None or self.ledger is None or ctx.store.run_before(run_id) != self.run_id:
            self.book, self.ledger = load_book(ctx.store), Ledger(ctx.store.load_ledger())
        return self.book, self.ledger

    def forget(self) -> None:
        self.book = self.ledger = self.run_id = None


def sync_records(
    ctx: Context,
    refs: dict[str, Collection[str]],
    *,
    as_of: date | None = None,
    snapshot: Snapshot | None = None,
) -> SyncReport:
    """A sync for just these records (kind -> CRM ids), as a webhook names them: refetch them
    from the CRM (an event is a hint, the CRM holds the truth), then plan and apply the
    contracts they affect exactly as `sync` does. Cursors do not move: the next incremental
    sync re-reads these records and finds nothing to do. With a `snapshot`, the book and the
    ledger of the previous such run are used again when no other run came in between."""
    as_of = as_of or today()
    snapshot = snapshot or Snapshot()
    run_id = ctx.store.start_run("webhook", as_of.isoformat())
    report = SyncReport(run_id, as_of, False, False)
    with _recorded(ctx, report):
        try:
            book, ledger = snapshot.take(ctx, run_id)
            rows = _refetch(ctx, book, refs, run_id)
            contracts = affected_contracts(book, rows)
            for _ in range(2):  # a new contract's account, then that account's owner
                rows += _refetch(ctx, book, missing_parents(book, contracts), run_id)
            planner = assess(ctx, book, as_of, _accounts_of(book, contracts))
            applier = Applier(ctx, ledger, run_id)
            plans = (planner.plan(book, ledger, c) for c in planning_order(book, contracts))
            run = collect(plans, book, ledger, applier, show_writes=False, show_skips=ATTENTION)
            report.plans = run.shown
            outcome = applier.finish()
        except BaseException:
            snapshot.forget()  # half-applied: the next run loads the store again
            raise
        snapshot.run_id = run_id
        report.writes = dict(sorted(outcome.writes.items()))
        _count(report, run, outcome.failed_contracts)
        report.status = "partial" if report.failed else "ok"
    return report


def _accounts_of(book: Book, contracts: Collection[str]) -> set[str]:
    """The accounts of these contracts: whose health planning them reads."""
    return {book.contracts[c].account_id for c in contracts if c in book.contracts}


def _refetch(
    ctx: Context, book: Book, refs: dict[str, Collection[str]], run_id: int
) -> list[dict[str, Any]]:
    """Read these records by id into the book and the mirror; their mirror rows."""
    out: list[dict[str, Any]] = []
    for kind in READ_KINDS:
        ids = sorted(set(refs.get(kind, ())))
        if not ids:
            continue
        records = ctx.retrying()(ctx.crm.read_ids, kind, ids)
        rows, letters, fixed = [], [], []
        for rec in records:
            row, letter = map_record(ctx.mapping, book, kind, rec)
            rows.append(row)
            (letters if letter else fixed).append(letter or rec.id)
        ctx.store.save_records(rows)
        ctx.store.add_dead_letters(letters, run_id)
        ctx.store.resolve_dead_letters(kind, fixed)
        out += rows
    return out
