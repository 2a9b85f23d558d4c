"""Health, usage and segments for a run: read signals and history from the state store, score
the book with the pure domain functions, and record what was computed."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from datetime import UTC, date, datetime, time

from crm_renewals.connector.config import AppConfig
from crm_renewals.connector.domain.book import Book
from crm_renewals.connector.domain.health import Health, Previous, history_row, score_book
from crm_renewals.connector.domain.planning.planner import Planner
from crm_renewals.connector.domain.segments import periods, segment_periods
from crm_renewals.connector.domain.signals import Signal
from crm_renewals.connector.domain.upsell import BookFacts, book_facts
from crm_renewals.connector.services.context import Context


def assess(
    ctx: Context,
    book: Book,
    as_of: date,
    accounts: Collection[str] | None = None,
    facts: BookFacts | None = None,
) -> Planner:
    """Score every account (or just `accounts`: all a run plans for) from signals and earlier
    scores in the store, and build the planner (with the book's `facts` if known already)."""
    signals = ctx.store.signals.latest(datetime.combine(as_of, time.max, UTC), accounts)
    previous = {
        account: Previous(row.score, row.grade, row.values)
        for account, row in ctx.store.history.health_before(as_of.isoformat(), accounts).items()
    }
    computed = ctx.mapping.computed_fields("renewal_opportunity")
    return planner_for(ctx.config, book, signals, previous, as_of, accounts, computed, facts)


def planner_for(
    cfg: AppConfig,
    book: Book,
    signals: Mapping[str, Mapping[str, Signal]],
    previous: Mapping[str, Previous],
    as_of: date,
    accounts: Collection[str] | None = None,
    computed: frozenset[str] = frozenset(),
    facts: BookFacts | None = None,
) -> Planner:
    """No I/O: the health (of every account, or of `accounts`), usage and upsell facts of the
    book (computed unless given), and the planner that reads them."""
    if facts is None:
        seat_products = cfg.upsell.seat_expansion.seat_products
        facts = book_facts(book, cfg.renewals.active_statuses, seat_products)
    scored = (
        book.accounts
        if accounts is None
        else {a: book.accounts[a] for a in accounts if a in book.accounts}
    )
    health = score_book(cfg.scorecard, scored, signals, facts.seats, previous, as_of)
    usage = SignalValues(signals)
    planner = Planner(
        cfg.renewals,
        cfg.playbook,
        as_of,
        scorecard=cfg.scorecard,
        upsell=cfg.upsell,
        health=health,
        usage=usage,
        facts=facts,
        computed=computed,
    )
    return planner


class SignalValues(Mapping[str, Mapping[str, float]]):
    """Account id -> its latest signal values by measure. Kept for the whole run, so held
    compactly: per account one tuple (its measure names, shared between accounts, then the
    values) instead of a dict; the dict is made when asked (once per renewal planned)."""

    def __init__(self, signals: Mapping[str, Mapping[str, Signal]]):
        names: dict[tuple[str, ...], tuple[str, ...]] = {}
        self._rows: dict[str, tuple] = {}
        for account, by in signals.items():
            key = tuple(by)
            self._rows[account] = (names.setdefault(key, key), *(s.value for s in by.values()))

    def __getitem__(self, account: str) -> dict[str, float]:
        names, *values = self._rows[account]
        return dict(zip(names, values, strict=True))

    def get(self, account: str, default=None):
        return self[account] if account in self._rows else default

    def __contains__(self, account: object) -> bool:
        return account in self._rows

    def __iter__(self) -> Iterator[str]:
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)


def record(ctx: Context, book: Book, health: Mapping[str, Health], as_of: date) -> None:
    """Today's health history and the segment history (backfilled over the window)."""
    ctx.store.history.save_health([history_row(h, as_of) for h in health.values()])
    if not book.accounts:
        return
    starts = [d.isoformat() for d in periods(as_of, ctx.config.segments)[:-1]]
    known = ctx.store.history.recorded_periods(starts)  # the current one is always recomputed
    for rows in segment_periods(
        book, ctx.config.segments, ctx.config.renewals, as_of, health, known
    ):
        # a period at a time: a large book stays small in memory
        ctx.store.history.save_segments(rows)
