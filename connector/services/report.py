"""The report use case: renewal figures over the synced book and the recorded history (no CRM
call). `renewals report` and the console's report page both call build_report; the console
checks its query string with report_options, as the CLI's options are checked."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from connector.config import AppConfig
from connector.dates import parse_day
from connector.domain.health import health_mix
from connector.domain.report_tables import Report
from connector.domain.reports import (
    Period,
    by_owner,
    coming_due,
    loss_reasons,
    migration,
    outcomes,
    retention_by_period,
)
from connector.domain.segments import period_start
from connector.errors import ConnectorError
from connector.services.gather import load_book
from connector.state import StateStore

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


def build_report(
    store: StateStore,
    config: AppConfig,
    as_of: date,
    start: date | None = None,
    end: date | None = None,
    period: Period = "quarter",
) -> Report:
    start, end = report_window(as_of, start, end)
    book = load_book(store)
    items = outcomes(book, config.renewals)
    rows, total = retention_by_period(items, start, end, period)
    health = store.history.health_on(as_of.isoformat())
    grades = {a: r.grade for a, r in health.items() if r.grade and a in book.accounts}
    segs = config.segments
    recorded = store.history.segment_periods()
    before = _recorded(recorded, period_start(start, segs).isoformat())
    after = _recorded(recorded, period_start(end, segs).isoformat())
    matrix = (
        migration(store.history.segments_in(before), store.history.segments_in(after))
        if before and after
        else {}
    )
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
        by_owner(items, book.owners, start, end),
    )


def _recorded(periods: list[str], wanted: str) -> str | None:
    """The recorded period `wanted`, else the nearest recorded one after it, else the last."""
    later = [p for p in periods if p >= wanted]
    return later[0] if later else (periods[-1] if periods else None)
