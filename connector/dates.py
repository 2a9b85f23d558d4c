"""Dates people give (CLI options, console query strings): YYYY-MM-DD, within the range that
planning and reports can reach back and ahead from by years."""

from __future__ import annotations

from datetime import date

EARLIEST_DATE, LATEST_DATE = date(1900, 1, 1), date(2999, 12, 31)


def parse_day(value: str) -> date:
    """`value` as a date; ValueError with the message to show when it is not one we take."""
    try:
        day = date.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a date (YYYY-MM-DD)") from exc
    if not EARLIEST_DATE <= day <= LATEST_DATE:
        raise ValueError(
            f"{value} is out of range: give a date from {EARLIEST_DATE} to {LATEST_DATE}"
        )
    return day
