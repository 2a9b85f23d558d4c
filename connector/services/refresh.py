"""The webhook run (`sync_records`): refetch the records events name, then plan and apply the
contracts they affect as `sync` does; and the `Snapshot` the inbox worker keeps between runs."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date
from typing import Any

from crm_renewals.connector.domain.book import Book, affected_contracts, missing_parents
from crm_renewals.connector.domain.models import READ_KINDS
from crm_renewals.connector.domain.planning.planner import planning_order
from crm_renewals.connector.domain.upsell import BookFacts
from crm_renewals.connector.services import runlog
from crm_renewals.connector.services.apply import Applier, Ledger, collect
from crm_renewals.connector.services.context import Context
from crm_renewals.connector.services.deadletters import Discards
from crm_renewals.connector.services.gather import ingest, load_book
from crm_renewals.connector.services.insight import assess
from crm_renewals.connector.services.runs import recorded_run, tally
from crm_renewals.connector.services.scope import (
    BUILT,
    Dues,
    Scope,
    Touched,
    accounts_named,
    record_dues,
    scoped_facts,
)
from crm_renewals.connector.services.sync import BookPlans, accounts_of, today
from crm_renewals.connector.services.sync_report import Show, SyncReport, needs_attention


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

    def take(self, ctx: Context, run_id: int) -> tuple[Book, Ledger] | None:
        """For run `run_id`: the kept book and ledger if the run before it was their last
        (they are what it would load), else None."""
        if self.book is None or self.ledger is None or ctx.store.runs.before(run_id) != self.run_id:
            return None
        return self.book, self.ledger

    def load(self, ctx: Context) -> tuple[Book, Ledger]:
        """The whole mirror and ledger, kept for the next run."""
        self.book, self.ledger = load_book(ctx.store), Ledger(ctx.store.ledger.load())
        return self.book, self.ledger

    def forget(self) -> None:
        self.book = self.ledger = self.run_id = None


def sync_records(
    ctx: Context,
    refs: dict[str, Collection[str]],
    *,
    as_of: date | None = None,
    snapshot: Snapshot | None = None,
    show: Show = needs_attention,
    rescore: Collection[str] = (),
) -> SyncReport:
    """A sync for just these records (kind -> CRM ids), as a webhook names them: refetch them
    from the CRM (an event is a hint, the CRM holds the truth), then plan and apply the
    contracts they affect exactly as `sync` does. Cursors do not move: the next incremental
    sync re-reads these records and finds nothing to do. With a `snapshot`, the book and the
    ledger of the previous such run are used again when no other run came in between.
    `rescore`: accounts whose signals changed, planned without reading them again (the
    signals are the change). The health of every account planned is written onto it when it
    changed, as `sync` does."""
    as_of = as_of or today()
    snapshot = snapshot or Snapshot()
    with recorded_run(ctx, "webhook", as_of) as report:
        run_id = report.run_id
        try:
            kept = snapshot.take(ctx, run_id)
            scoped = None if kept else _scoped(ctx, refs, rescore, run_id)
            if scoped is None:
                book, ledger = kept or snapshot.load(ctx)
                rows, facts = _refetch(ctx, book, refs, run_id), None
            else:
                book, ledger, rows, facts = scoped
            contracts = affected_contracts(book, rows) | _contracts_of(book, rescore)
            for _ in range(2):  # a new contract's account, then that account's owner
                rows += _refetch(ctx, book, missing_parents(book, contracts), run_id)
            scored = accounts_of(book, contracts) | {a for a in rescore if a in book.accounts}
            planner = assess(ctx, book, as_of, scored, facts)
            applier = Applier(ctx, ledger, run_id)
            dues = Dues(planner, book)  # the planning index learns what these plans say
            plans = dues.track(
                planner.plan(book, ledger, c) for c in planning_order(book, contracts)
            )
            discards = Discards.of(ctx.store)
            run = collect(discards.filter(plans), book, ledger, applier, show)
            applier.outcome.writes.update(discards.dropped)
            report.plans = run.kept
            applier.finish()
            health = BookPlans(book, ledger, planner.health, ())
            for w in health.health_writes():  # onto the accounts last, as `sync` does
                applier.add(w)
            outcome = applier.finish()
            record_dues(ctx, dues, Scope(scored, contracts, Counter()), None, some=True)
            runlog.planned(run, dry_run=False)
            runlog.wrote(outcome)
        except BaseException:
            snapshot.forget()  # half-applied: the next run loads the store again
            raise
        if scoped is None:
            snapshot.run_id = run_id
        else:
            snapshot.forget()  # a few accounts' book: never taken for the whole one
        report.writes = dict(sorted(outcome.writes.items()))
        tally(report, run, outcome.failed_contracts)
    return report


def _scoped(
    ctx: Context, refs: dict[str, Collection[str]], rescore: Collection[str], run_id: int
) -> tuple[Book, Ledger, list[dict[str, Any]], BookFacts] | None:
    """Once the planning index is built (connector/services/scope.py): the records read into a
    book of their own, then the accounts they belong to (and `rescore`) loaded from the mirror
    with their ledger, as an incremental sync loads them, and their upsell facts. None before:
    the whole mirror is loaded."""
    built = ctx.store.plan_index.meta(BUILT)
    if not built:
        return None
    rows = _refetch(ctx, Book(), refs, run_id)
    touched = Touched()
    touched.add(rows)
    accounts = accounts_named(ctx.store, touched) | set(rescore)
    book = load_book(ctx.store, Scope(accounts, touched.contracts, Counter()))
    ledger = Ledger(ctx.store.ledger.load_accounts(book.plannable_ids(), accounts))
    return book, ledger, rows, scoped_facts(ctx.config, book, built.get("facts"))


def _refetch(
    ctx: Context, book: Book, refs: dict[str, Collection[str]], run_id: int
) -> list[dict[str, Any]]:
    """Read these records by id into the book and the mirror; their mirror rows."""
    out: list[dict[str, Any]] = []
    for kind in READ_KINDS:
        ids = sorted(set(refs.get(kind, ())))
        if not ids:
            continue
        records = ctx.crm.read_ids(kind, ids)
        out += ingest(ctx, book, kind, records, run_id)
        runlog.refetched(kind, len(records))
    return out


def _contracts_of(book: Book, accounts: Collection[str]) -> set[str]:
    """The contracts of these accounts."""
    wanted = set(accounts)
    if not wanted:
        return set()
    return {c.id for c in book.contracts.values() if c.account_id in wanted}
