"""The sync use case, four steps: gather -> plan -> apply -> record; and dead-letter retry,
which reuses them (`explain`: connector/services/explanation.py)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime

from crm_renewals.connector.domain.book import Book
from crm_renewals.connector.domain.health import Health, health_mix
from crm_renewals.connector.domain.planning.values import ContractPlan, Skip
from crm_renewals.connector.domain.writes import Write, account_health_writes
from crm_renewals.connector.errors import MappingGuardStop
from crm_renewals.connector.ports import Cursor
from crm_renewals.connector.services import runlog
from crm_renewals.connector.services.apply import Applier, Collected, Ledger, collect
from crm_renewals.connector.services.context import Context
from crm_renewals.connector.services.deadletters import Discards, open_letters
from crm_renewals.connector.services.gather import Progress, gather, map_record
from crm_renewals.connector.services.guard import baseline, skip_change, weigh
from crm_renewals.connector.services.insight import assess
from crm_renewals.connector.services.insight import record as record_health
from crm_renewals.connector.services.progress import RunProgress
from crm_renewals.connector.services.runs import recorded_run, tally
from crm_renewals.connector.services.scope import BUILT, Dues, Scope, record_dues, scoped_facts
from crm_renewals.connector.services.sync_report import Show, SyncReport, needs_attention

#: which refused writes a run sends again: all (True), none (False), or these letters'
Retry = bool | frozenset[int]


def today() -> date:
    return datetime.now(UTC).date()


def sync(
    ctx: Context,
    *,
    full: bool = False,
    dry_run: bool = False,
    as_of: date | None = None,
    progress: Progress | None = None,
    retry: Retry = False,
    show: Show = needs_attention,
    force: bool = False,
) -> SyncReport:
    """One run. A killed run leaves nothing half-done that the next run cannot converge from:
    CRM writes are upserts by key, the ledger records them after, cursors move last. Writes
    the CRM refused for good are held back unless `retry` (`deadletters retry`: True for all
    of them, else the ids of the dead letters to send again); writes an admin discarded are
    never sent again (connector.services.deadletters.Discards). Every record
    read is mapped before the first write; too many failures stop the run there (status
    `stopped`, see connector.services.guard) unless `force`. The report hands back the plans
    `show` picks (by default those an admin must act on)."""
    as_of = as_of or today()
    mode = "full" if full else "incremental"
    try:
        with recorded_run(ctx, mode, as_of, dry_run=dry_run, full=full) as report:
            tracker = RunProgress(ctx.store, report, progress)  # the console shows it
            base = baseline(ctx)
            got = gather(
                ctx,
                full=full,
                dry_run=dry_run,
                run_id=report.run_id,
                progress=tracker.read,
                as_of=as_of,
                whole=retry is not False,
            )
            weigh(ctx, report, got.reading, base, enforce=not (dry_run or force))
            tracker.stage("planning")
            plans = plan(ctx, got.book, as_of, got.scope)
            outcome = apply(ctx, plans, report, progress=tracker, retry=retry, show=show)
            tracker.stage("recording")
            record(ctx, report, plans, outcome, got.cursors, got.read_at)
            if got.scope is None:
                report.skip_reasons_change = skip_change(base, report.skip_reasons)
            tracker.flush()
    except MappingGuardStop:
        pass  # recorded as stopped, with why: the report says it
    return report


@dataclass
class BookPlans:
    """What `plan` hands `apply`: the contracts' plans, a stream in planning order (each is
    made as `apply` takes it), and the accounts' health, written onto them last; and for
    `record`, the run's scope (None: the whole book) and each account's next due day."""

    book: Book
    ledger: Ledger
    health: Mapping[str, Health]
    contracts: Iterable[ContractPlan]
    scope: Scope | None = None
    dues: Dues | None = None

    def health_writes(self) -> list[Write]:
        """Health onto accounts: what changed since the ledger last recorded it."""
        records = [h.record() for _, h in sorted(self.health.items())]
        return account_health_writes(records, self.ledger)


def plan(ctx: Context, book: Book, as_of: date, scope: Scope | None = None) -> BookPlans:
    """Score every account and plan every contract of the book (of `scope`: the accounts an
    incremental run loaded), against the ledger."""
    if scope is None:
        ledger = Ledger(ctx.store.ledger.load())
        planner = assess(ctx, book, as_of)
    else:
        ledger = Ledger(ctx.store.ledger.load_accounts(book.plannable_ids(), scope.accounts))
        built = ctx.store.plan_index.meta(BUILT) or {}
        facts = scoped_facts(ctx.config, book, built.get("facts"))
        planner = assess(ctx, book, as_of, scope.accounts, facts)
    dues = Dues(planner, book)
    plans = dues.track(planner.plan_book(book, ledger))
    return BookPlans(book, ledger, planner.health, plans, scope, dues)


@dataclass
class Applied:
    """What `apply` did: the plans as collected, the writes sent (planned, in a dry run) by
    kind.op, the contracts whose writes the CRM refused, and the plans `show` picked."""

    run: Collected
    writes: dict[str, int]
    failed: set[str]
    shown: list[ContractPlan]


def apply(
    ctx: Context,
    plans: BookPlans,
    report: SyncReport,
    *,
    progress: RunProgress | None,
    retry: Retry,
    show: Show,
) -> Applied:
    """Send the plans' writes as they come, the health onto accounts last: the renewal work
    comes first. A dry run sends nothing and counts them."""
    discards = Discards.of(ctx.store)
    contracts = discards.filter(plans.contracts)
    if progress:
        contracts = progress.planning(contracts)
    if report.dry_run:
        run = collect(contracts, plans.book, plans.ledger, None, show)
        run.planned.update(f"{w.kind}.{w.op}" for w in plans.health_writes())
        run.planned.update(discards.dropped)
        runlog.planned(run, dry_run=True)
        return Applied(run, dict(run.planned), set(), run.kept)

    def keep(p: ContractPlan) -> bool:  # and the overdue CPQ forecasts, dead-lettered below
        return show(p) or _cpq_overdue(p)

    written = progress.written if progress else None
    applier = Applier(ctx, plans.ledger, report.run_id, written, retry=retry is True)
    if not isinstance(retry, bool):
        _release(applier, retry)
    report.writes = applier.outcome.writes  # so that a run stopped halfway records what it wrote
    run = collect(contracts, plans.book, plans.ledger, applier, keep)
    applier.outcome.writes.update(discards.dropped)
    _cpq_letters(ctx, run.kept, report.run_id)
    applier.replay_refused_tasks()
    applier.finish()
    health = plans.health_writes()
    if progress:
        progress.plan_total(run.planned + Counter(f"{w.kind}.{w.op}" for w in health))
    for w in health:
        applier.add(w)
    outcome = applier.finish()
    runlog.planned(run, dry_run=False)
    runlog.wrote(outcome)
    shown = [p for p in run.kept if show(p)]
    return Applied(run, outcome.writes, outcome.failed_contracts, shown)


def record(
    ctx: Context,
    report: SyncReport,
    plans: BookPlans,
    applied: Applied,
    cursors: dict[str, Cursor],
    read_at: datetime | None = None,
) -> None:
    """Health and segment history, the planning index, then the cursors, last: they move
    only once the writes they cover are made (a dry run records none); the report's counts."""
    report.health = health_mix(h.grade for h in plans.health.values())
    report.scope = plans.scope.to_json() if plans.scope else None
    if not report.dry_run:
        record_health(ctx, plans.book, plans.health, report.as_of)
        if plans.dues is not None:
            record_dues(ctx, plans.dues, plans.scope, read_at)
        ctx.store.cursors.advance(cursors, read_at)
    report.writes = dict(sorted(applied.writes.items()))
    report.plans = applied.shown
    tally(report, applied.run, applied.failed)
    if plans.scope is not None:  # the contracts that cannot be planned fail every run, as whole
        unplannable = ctx.store.mirror.broken_contracts() - set(report.failed_ids)
        report.failed += len(unplannable)
        report.failed_ids = sorted({*report.failed_ids, *unplannable})
        report.status = "partial" if report.failed else report.status


def _cpq_overdue(plan: ContractPlan) -> bool:
    return isinstance(plan.renewal, Skip) and plan.renewal.reason == "cpq_overdue"


def _cpq_letters(ctx: Context, plans: list[ContractPlan], run_id: int | None) -> None:
    """A renewal forecast CPQ has not honoured is a dead letter (CPQ_RENEWAL_OVERDUE) while
    it lasts: `renewals deadletters list` names it next to the records that failed."""
    overdue = {p.contract_id: p.renewal.detail for p in plans if _cpq_overdue(p)}
    settled = [
        d.record_id
        for d in ctx.store.dead_letters.list()
        if d.kind == "cpq_forecast" and d.record_id not in overdue
    ]
    ctx.store.dead_letters.resolve("cpq_forecast", settled)
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
    ctx.store.dead_letters.add(letters, run_id)


def _release(applier: Applier, ids: frozenset[int]) -> None:
    """The refused writes of these dead letters go again this run, as a transient refusal
    would (their cause is taken as fixed); the others stay held."""
    applier.refused = {
        key: replace(letter, retriable=True) if letter.id in ids else letter
        for key, letter in applier.refused.items()
    }


def retry_dead_letters(
    ctx: Context,
    as_of: date | None = None,
    progress: Progress | None = None,
    ids: Collection[int] | None = None,
) -> tuple[int, SyncReport]:
    """Re-map records that failed to map (say, after a mapping fix) from their mirrored CRM
    data, then run a sync, which re-plans every contract and re-sends every refused write
    (those refused for good included: their cause is taken as fixed). With `ids`, only those
    open letters are re-mapped and re-sent (DeadLetterError if one is not open); the sync
    runs all the same."""
    letters = ctx.store.dead_letters.list() if ids is None else open_letters(ctx.store, ids)
    scratch = Book()  # map_record needs a book; the sync below loads the real one
    fixed = 0
    for letter in letters:
        if letter.stage != "read":
            continue
        record = ctx.store.mirror.get(letter.kind, letter.record_id)
        if record is None:
            continue
        row, failure, _ = map_record(ctx.mapping, scratch, letter.kind, record)
        if failure:
            continue
        ctx.store.mirror.save([row])
        ctx.store.dead_letters.resolve(letter.kind, [letter.record_id])
        fixed += 1
    release: Retry = True if ids is None else frozenset(d.id for d in letters)
    return fixed, sync(ctx, as_of=as_of, progress=progress, retry=release)


def accounts_of(book: Book, contracts: Collection[str]) -> set[str]:
    """The accounts of these contracts: whose health planning them reads."""
    return {book.contracts[c].account_id for c in contracts if c in book.contracts}
