"""The report use case: renewal figures over the synced book and the recorded history (no CRM
call). `renewals report` and the console's report page both call build_report; the console
checks its query string with report_options, as the CLI's options are checked."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import date, timedelta

from crm_renewals.connector.config import AppConfig
from crm_renewals.connector.dates import parse_day
from crm_renewals.connector.domain.health import health_mix
from crm_renewals.connector.domain.journey_report import Touchpoint, coverage, touchpoints
from crm_renewals.connector.domain.models import Owner
from crm_renewals.connector.domain.report_tables import Report
from crm_renewals.connector.domain.reports import (
    Outcome,
    Period,
    by_owner,
    coming_due,
    loss_reasons,
    migration,
    outcomes,
    retention_by_period,
)
from crm_renewals.connector.domain.segments import period_start
from crm_renewals.connector.errors import ConnectorError
from crm_renewals.connector.services.synced import stamp as run_stamp
from crm_renewals.connector.services.synced import synced_book
from crm_renewals.connector.state import StateStore

PERIODS: tuple[Period, ...] = ("month", "quarter", "year")


class ReportOptionsError(ConnectorError):
    """A report asked for with a period or dates it cannot be built for."""


@dataclass(frozen=True)
class ReportOptions:
    """What `renewals report` takes: --period, --from, --to, --as-of (None: the default)."""

    period: Period = "quarter"
    start: date | None = None
    end: date | None = None
    as_of: date | None = None


def report_options(
    period: str | None, start: str | None, end: str | None, as_of: str | None
) -> ReportOptions:
    """Options given as text (a query string): empty means the default."""
    if period and period not in PERIODS:
        raise ReportOptionsError(f"period must be one of {', '.join(PERIODS)}, not {period!r}")
    days = {}
    for name, text in (("from", start), ("to", end), ("as_of", as_of)):
        try:
            days[name] = parse_day(text.strip()) if text and text.strip() else None
        except ValueError as exc:
            raise ReportOptionsError(f"{name}: {exc}") from exc
    return ReportOptions(period or "quarter", days["from"], days["to"], days["as_of"])


def report_window(as_of: date, start: date | None, end: date | None) -> tuple[date, date]:
    """[start, end]: end defaults to as_of, start to a year before end; never backwards."""
    end = end or as_of
    start = start or end - timedelta(days=365)
    if start > end:
        raise ReportOptionsError(f"from ({start}) is after to ({end}): give from <= to")
    return start, end


@dataclass
class BookFigures:
    """What a report reads from the synced book (the costly part: the whole book is loaded):
    each bought contract's outcome, the owners, the accounts, the journey's touchpoints."""

    items: list[Outcome]
    owners: dict[str, Owner]
    accounts: frozenset[str]
    touchpoints: list[Touchpoint] = field(default_factory=list)
    #: the recorded segment periods, and migration matrices by (from, to) period: the segment
    #: history changes with runs only, as the book does (filled on first use)
    periods: list[str] | None = None
    matrices: dict[tuple[str, str], dict] = field(default_factory=dict)

    def migration(self, store: StateStore, before: str, after: str) -> dict:
        if (before, after) not in self.matrices:
            self.matrices[(before, after)] = migration(
                store.history.segments_in(before), store.history.segments_in(after)
            )
        return self.matrices[(before, after)]


def book_figures(store: StateStore, config: AppConfig) -> BookFigures:
    synced = synced_book(store)  # loaded once per run for explain and the console too
    book = synced.book
    written = {key: f for (kind, key), f in synced.ledger.rows.items() if kind == "task"}
    return BookFigures(
        outcomes(book, config.renewals),
        book.owners,
        frozenset(book.accounts),
        touchpoints(written, book.tasks.values()),
    )


def build_report(
    store: StateStore,
    config: AppConfig,
    as_of: date,
    start: date | None = None,
    end: date | None = None,
    period: Period = "quarter",
    figures: BookFigures | None = None,
) -> Report:
    """The report; `figures` (book_figures) saves loading the book again when still current."""
    start, end = report_window(as_of, start, end)
    figures = figures or book_figures(store, config)
    items = figures.items
    rows, total = retention_by_period(items, start, end, period)
    graded = store.history.account_grades_on(as_of.isoformat())
    grades = {a: g for a, g in graded.items() if a in figures.accounts}
    segs, journey = config.segments, config.playbook.journey
    if figures.periods is None:
        figures.periods = store.history.segment_periods()
    before = _recorded(figures.periods, period_start(start, segs).isoformat())
    after = _recorded(figures.periods, period_start(end, segs).isoformat())
    matrix = figures.migration(store, before, after) if before and after else {}
    return Report(
        as_of,
        start,
        end,
        period,
        rows,
        total,
        coming_due(items, grades, as_of),
        loss_reasons(items, start, end),
        before,
        after,
        matrix,
        health_mix(grades.values()),
        by_owner(items, figures.owners, start, end),
        coverage(
            figures.touchpoints, items, journey.segments, start, end, as_of, journey.kept_up_share
        ),
    )


class ReportCache:
    """Reports kept until the next run starts or ends: every change to the synced book and its
    history is a run's (a sync, a webhook batch, a retry). The book's figures are kept for the
    latest run, so only the first view after a run loads the book; the reports of the last
    `size` option sets are kept whole."""

    def __init__(self, size: int = 16):
        self.size = size
        self._lock = threading.Lock()
        self._reports: OrderedDict[tuple, Report] = OrderedDict()
        self._figures: tuple[tuple | None, BookFigures] | None = None

    def get(
        self, store: StateStore, config: AppConfig, options: ReportOptions, today: date
    ) -> Report:
        stamp = run_stamp(store)
        as_of = options.as_of or today
        key = (stamp, as_of, options.start, options.end, options.period)
        with self._lock:
            if key in self._reports:
                self._reports.move_to_end(key)
                return self._reports[key]
            kept = self._figures[1] if self._figures and self._figures[0] == stamp else None
        figures = kept or book_figures(store, config)
        report = build_report(
            store, config, as_of, options.start, options.end, options.period, figures
        )
        with self._lock:
            self._figures = (stamp, figures)
            self._reports[key] = report
            while len(self._reports) > self.size:
                self._reports.popitem(last=False)
        return report


def _recorded(periods: list[str], wanted: str) -> str | None:
    """The recorded period `wanted`, else the nearest recorded one after it, else the last."""
    later = [p for p in periods if p >= wanted]
    return later[0] if later else (periods[-1] if periods else None)
