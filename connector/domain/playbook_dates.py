"""Playbook dates: due dates moved off weekends and public holidays, months and quarters
counted from an anchor date, and when a step falls due in a contract's term. Pure."""

from __future__ import annotations

from calendar import monthrange
from collections.abc import Iterator
from datetime import date, timedelta
from functools import cache, lru_cache

from crm_renewals.connector.domain.models import Contract
from crm_renewals.connector.domain.policy import PlaybookStep

#: More than any run of weekend days and public holidays a due date can be moved across.
SHIFT_DAYS = 14


@cache
def _holidays(country: str, year: int) -> frozenset[date]:
    import holidays

    return frozenset(holidays.country_holidays(country, years=year))


def is_business_day(day: date, weekend: tuple[int, ...], country: str | None = None) -> bool:
    return day.weekday() not in weekend and (
        country is None or day not in _holidays(country, day.year)
    )


@lru_cache(maxsize=4096)  # a book's due dates fall on a few hundred days
def business_day(
    day: date, weekend: tuple[int, ...], backwards: bool, country: str | None = None
) -> date:
    """Move a due date off weekends and holidays: back for deadlines, forward for follow-ups."""
    step = timedelta(days=-1 if backwards else 1)
    while not is_business_day(day, weekend, country):
        day += step
    return day


def add_months(day: date, months: int) -> date:
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    if day.day <= 28:  # every month has it: no need to find the month's last day
        return date(year, month, day.day)
    return date(year, month, min(day.day, monthrange(year, month)[1]))


def occurrences(step: PlaybookStep, contract: Contract) -> Iterator[tuple[date, str | None]]:
    """(unshifted due date, period label) of each time the step falls due in the term."""
    anchor = contract.end_date if step.anchor == "end" else contract.start_date
    if anchor is None:
        return
    first = anchor + timedelta(days=step.offset_days)
    if step.repeat == "once":
        yield first, None
        return
    yield from quarters(first, contract.end_date, 1)


def quarters(first: date, end: date, i: int) -> Iterator[tuple[date, str | None]]:
    while (day := add_months(first, 3 * i)) < end:
        yield day, quarter(day)
        i += 1


def quarter(day: date) -> str:
    return f"{day.year}-Q{(day.month - 1) // 3 + 1}"
