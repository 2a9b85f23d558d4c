"""Signals in: product-usage signals that feed the health score, from the webhook (a batch of
parsed signals) or from a CSV file (`renewals signals import`). Both store through
accept_signals."""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crm_renewals.connector.domain.signals import Signal, parse_signal
from crm_renewals.connector.errors import InputFileError
from crm_renewals.connector.inbox import event_row, signal_event
from crm_renewals.connector.services.context import Context
from crm_renewals.connector.services.refresh import sync_records
from crm_renewals.connector.services.sync_report import SyncReport
from crm_renewals.connector.state import StateStore, now


def accept_signals(store: StateStore, items: Sequence[Signal], *, events: bool = True) -> int:
    """Store valid signals; a copy of one already stored is ignored. Returns how many were new.
    With `events`, each account with a new signal gets an inbox event (one while it waits,
    however many signals come: see connector.inbox.signal_event), stored in the same unit of
    work as the signals, so that neither is kept without the other."""
    return store_signals(store, items, events=events)[0]


def store_signals(
    store: StateStore, items: Sequence[Signal], *, events: bool = True
) -> tuple[int, list[str]]:
    """accept_signals, and the accounts that got a new signal (sorted)."""
    by_account: dict[str, list[Signal]] = defaultdict(list)
    for item in items:
        by_account[item.account].append(item)
    new, touched = 0, []
    with store.begin() as uow:
        for account, group in by_account.items():
            added = uow.signals.add(group)
            new += added
            if added:
                touched.append(account)
        if events and touched:
            at = now()
            uow.inbox.add([event_row(signal_event(a), at) for a in touched])
    return new, sorted(touched)


def apply_signals(ctx: Context, accounts: Collection[str]) -> SyncReport | None:
    """One webhook-style run over these accounts (re-scored from their latest signals, their
    contracts planned and written as a sync does; the accounts are not read again). None
    when there is none. The caller holds the run lock."""
    if not accounts:
        return None
    return sync_records(ctx, {}, rescore=sorted(accounts))


@dataclass
class SignalImport:
    rows: int = 0
    stored: int = 0
    duplicates: int = 0
    #: the accounts that got a new signal, sorted
    accounts: list[str] = field(default_factory=list)
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
    # no inbox events: the import applies them itself, in one run (or leaves them to the
    # next sync with --no-apply)
    result.stored, result.accounts = store_signals(store, good, events=False)
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
