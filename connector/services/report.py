"""The report use case: renewal figures over the synced book and the recorded history (no CRM
call), and the signals import that feeds the health score."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

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
from connector.domain.signals import parse_signal
from connector.errors import InputFileError
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


@dataclass
class SignalImport:
    rows: int = 0
    stored: int = 0
    duplicates: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)


#: Columns of a signals CSV: the required ones, then the optional one.
REQUIRED_COLUMNS = ("account", "measure", "value", "timestamp")
COLUMNS = (*REQUIRED_COLUMNS, "source")
_NOT_UTF8 = re.compile("[\udc80-\udcff]")  # bytes that were not UTF-8 (surrogateescape)


def import_signals(store: StateStore, measures: tuple[str, ...], path: Path) -> SignalImport:
    """Load a CSV of signals (account, measure, value, timestamp[, source]); each row checked by
    the same validation as the webhook; bad rows reported with their line, good rows kept,
    whatever the bad ones hold. The file is UTF-8 (a byte order mark is allowed); a row with
    other bytes is rejected as not UTF-8. A file without the header row is refused whole
    (InputFileError)."""
    result, good = SignalImport(), []
    with path.open(newline="", encoding="utf-8-sig", errors="surrogateescape") as handle:
        reader = csv.reader(handle)
        header = _header(reader, path)
        while True:
            try:
                values = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:  # a field over the size limit, a quote never closed
                result.rows += 1
                result.errors.append((reader.line_num, f"not a CSV row: {exc}"))
                continue
            if not values:
                continue
            result.rows += 1
            problem, signal = _row(header, values, measures)
            if problem:
                result.errors.append((reader.line_num, problem))
            else:
                good.append(signal)
    result.stored = store.signals.add(good)
    result.duplicates = len(good) - result.stored
    return result


def _header(reader, path: Path) -> list[str]:
    """The header row (the first that is not blank), checked: every required column, no
    unknown one."""
    expected = ",".join(REQUIRED_COLUMNS) + "[,source]"
    try:
        header = next((row for row in reader if row), None)
    except csv.Error as exc:
        raise InputFileError(f"{path}: line 1: not a CSV header row ({exc})") from None
    if header is None:
        raise InputFileError(f"{path}: the file is empty: expected a header row {expected}")
    names = [name.strip().lower() for name in header]
    unknown = [n for n in names if n not in COLUMNS]
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if unknown or missing:
        found = ",".join(header)[:80].encode("utf-8", "backslashreplace").decode()
        raise InputFileError(
            f"{path}: line {reader.line_num}: the first row must be the header {expected}; "
            f"found {found!r}" + (f" (unknown column {unknown[0][:40]!r})" if unknown else "")
        )
    return names


def _row(header: list[str], values: list[str], measures) -> tuple[str | None, Any]:
    """(problem, None) or (None, the signal) for one row; never raises for what it holds."""
    if len(values) > len(header):
        return "more values than columns", None
    if any(_NOT_UTF8.search(v) for v in values):
        return "not UTF-8 text: save the file as UTF-8", None
    row = dict(zip(header, values, strict=False))
    try:
        return None, parse_signal(row, measures, source="csv")
    except (ValueError, OverflowError, OSError) as exc:  # SignalError, and any value gone wrong
        return str(exc), None
