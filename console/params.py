"""Reading a page's query string and form fields: a value that is not what the page takes
raises BadParam, which the pages answer with a 400 page saying what was wrong (never a 500)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import date

from flask import render_template

#: a page number past this is not a page anyone asked for
MAX_PAGE = 100_000
#: the dates the CLI's --as-of takes (connector/cli_common.py)
EARLIEST_DATE, LATEST_DATE = date(1900, 1, 1), date(2999, 12, 31)


class BadParam(ValueError):
    """A query or form value the page cannot use: the message says which and why."""


def digits(raw: str) -> bool:
    """Whether `raw` is ASCII digits only: str.isdigit() also takes "²" (int() refuses it) and
    other scripts' digits."""
    return raw.isascii() and raw.isdigit()


def page_number(args: Mapping[str, str]) -> int:
    raw = (args.get("page") or "1").strip()
    if not digits(raw) or not 1 <= int(raw) <= MAX_PAGE:
        raise BadParam(f"page must be a whole number from 1 to {MAX_PAGE}, not {raw[:20]!r}")
    return int(raw)


def day(args: Mapping[str, str], name: str = "as_of") -> date | None:
    raw = (args.get(name) or "").strip()
    if not raw:
        return None
    try:
        value = date.fromisoformat(raw)
    except ValueError:
        raise BadParam(f"{name} must be a date (YYYY-MM-DD), not {raw[:20]!r}") from None
    if not EARLIEST_DATE <= value <= LATEST_DATE:
        raise BadParam(f"{name} must be from {EARLIEST_DATE} to {LATEST_DATE}")
    return value


def choice(args: Mapping[str, str], name: str, allowed: Collection[str], default=None):
    raw = (args.get(name) or "").strip()
    if not raw:
        return default
    if raw not in allowed:
        raise BadParam(f"{name} must be one of {', '.join(allowed)}, not {raw[:40]!r}")
    return raw


def text(args: Mapping[str, str], name: str, limit: int = 200) -> str:
    raw = (args.get(name) or "").strip()
    if len(raw) > limit:
        raise BadParam(f"{name} is too long ({len(raw)} characters; at most {limit})")
    return raw


def ids(values: list[str], name: str = "ids") -> list[int]:
    """Record ids from repeated fields (`ids=3&ids=5`), each a positive whole number."""
    out = []
    for raw in values:
        raw = raw.strip()
        if not digits(raw) or int(raw) < 1 or len(raw) > 12:
            raise BadParam(f"{name} must be record ids (whole numbers), not {raw[:20]!r}")
        out.append(int(raw))
    return sorted(set(out))


def bad_param(exc: BadParam):
    """The 400 page for a BadParam (register on a blueprint: `bp.errorhandler(BadParam)`)."""
    return render_template("console/error.html", message=str(exc)), 400
