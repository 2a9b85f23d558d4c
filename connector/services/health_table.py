"""Accounts' health as the console lists it: each account's latest recorded score (what the
last run computed: grade, trend, drivers in words), named, filtered by grade or name, sorted
and paged in the state database."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from crm_renewals.connector.domain.journey import summary
from crm_renewals.connector.domain.policy import Playbook
from crm_renewals.connector.errors import ConnectorError
from crm_renewals.connector.services.synced import synced_book
from crm_renewals.connector.state import StateStore
from crm_renewals.connector.state.browse import GRADE_ORDER, HEALTH_SORTS, HealthRow

PER_PAGE = 50
GRADES = (*GRADE_ORDER, "grey")
SORTS = (*HEALTH_SORTS, *(f"-{s}" for s in HEALTH_SORTS))


class HealthQueryError(ConnectorError):
    """A grade or sort the health table does not know."""


@dataclass(frozen=True)
class HealthPage:
    rows: list[HealthRow]
    total: int
    page: int
    pages: int
    #: accounts matching the name query, by grade (whichever grade is filtered)
    mix: dict[str, int]


def health_table(
    store: StateStore,
    *,
    grade: str | None = None,
    query: str = "",
    sort: str = "grade",
    page: int = 1,
    per_page: int = PER_PAGE,
) -> HealthPage:
    """One page of the accounts' latest health: of `grade` (GRADES) if given, whose name holds
    `query`, sorted by `sort` (SORTS: grade puts red first, score lowest first; "-" reverses)."""
    if grade is not None and grade not in GRADES:
        raise HealthQueryError(f"unknown grade {grade!r}: one of {', '.join(GRADES)}")
    if sort not in SORTS:
        raise HealthQueryError(f"cannot sort by {sort!r}: one of {', '.join(SORTS)}")
    rows, total, mix = store.browse.health(
        grade, query.strip(), sort, per_page, (page - 1) * per_page
    )
    mix = {g: mix.get(g, 0) for g in GRADES}
    return HealthPage(rows, total, page, max(1, -(-total // per_page)), mix)


def journeys(
    store: StateStore, playbook: Playbook, accounts: list[str], day: date
) -> dict[str, dict | None]:
    """Where each account is in its customer journey on `day`: its current segment and next
    touchpoint (connector.domain.journey.summary), over the synced book."""
    book = synced_book(store).book
    return {a: summary(playbook, a, book.contracts_of(a), day) for a in accounts}
