"""The report use case: renewal figures over the synced book and the recorded history (no CRM
call)."""

from __future__ import annotations

from datetime import date, timedelta

from connector.config import AppConfig
from connector.domain.health import health_mix
from connector.domain.reports import (
    Period,
    Report,
    coming_due,
    loss_reasons,
    migration,
    outcomes,
    retention_by_period,
)
from connector.domain.segments import period_start
from connector.services.gather import load_book
from connector.state import StateStore


def build_report(
    store: StateStore,
    config: AppConfig,
    as_of: date,
    start: date | None = None,
    end: date | None = None,
    period: Period = "quarter",
) -> Report:
    end = end or as_of
    start = start or end - timedelta(days=365)
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
    mix = health_mix(grades.values())
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
        mix,
    )


def _recorded(periods: list[str], wanted: str) -> str | None:
    """The recorded period `wanted`, else the nearest recorded one after it, else the last."""
    later = [p for p in periods if p >= wanted]
    return later[0] if later else (periods[-1] if periods else None)
