"""Renewal reporting: pure functions over the book's contracts and their renewal outcomes.

- renewal rate = contracts renewed / contracts decided (renewed or lost) among those that
  reached their end date in the period (by count, and by value: the contracts' recurring
  value); churn rate = lost / decided. A renewal still open is neither: it is counted apart
- gross revenue retention = sum over renewed contracts of min(renewal amount, prior value) /
  prior value of the decided contracts; net revenue retention = renewal amounts / that value
- average renewal value = renewal amount / renewals won
- coming due: open contracts ending in the next months, by month, with their health mix
- reasons for non-renewal: lost renewals counted by their loss reason
- segment migration: accounts counted by (segment in one period -> segment in another)
- by owner: the retention figures per rep (the renewal's owner, else the owner planning would
  give the renewal)

The report as one value (its JSON and CSV): connector.domain.report_tables.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

from crm_renewals.connector.domain.book import Book
from crm_renewals.connector.domain.models import Contract, Owner
from crm_renewals.connector.domain.planning.terms import owner_of
from crm_renewals.connector.domain.policy import RenewalPolicy
from crm_renewals.connector.domain.segments import NOT_BOUGHT

Period = Literal["month", "quarter", "year"]
RATE = Decimal("0.0001")
CENT = Decimal("0.01")
GRADES = ("green", "yellow", "red", "unknown")


@dataclass(frozen=True, slots=True)
class Outcome:
    contract_id: str
    account_id: str
    end_date: date
    value: Decimal  # recurring value of the term that ends
    status: Literal["renewed", "lost", "open"]
    renewal_amount: Decimal = Decimal(0)
    loss_reason: str | None = None
    #: the rep: the renewal's owner, else the owner planning would give the renewal
    owner_id: str | None = None


def outcomes(book: Book, policy: RenewalPolicy) -> list[Outcome]:
    """Every bought contract with what became of its renewal."""
    return [
        _outcome(book, policy, c)
        for c in sorted(book.contracts.values(), key=lambda c: c.id)
        if c.status not in NOT_BOUGHT
    ]


def _outcome(book: Book, policy: RenewalPolicy, c: Contract) -> Outcome:
    """The last decided renewal decides (by close date); none decided: open."""
    value = sum(
        (ln.quantity * ln.unit_price for ln in book.lines_of(c.id) if ln.recurring), Decimal(0)
    )
    renewals = sorted(book.renewals_of(c.id), key=lambda r: r.close_date)
    status, amount, reason, decider = "open", Decimal(0), None, None
    for r in renewals:
        if r.stage in policy.closed_won_stages:
            status, amount, reason, decider = "renewed", r.amount, None, r
        elif r.stage in policy.closed_lost_stages:
            status, amount, reason, decider = "lost", Decimal(0), r.loss_reason, r
    rep = decider or (renewals[-1] if renewals else None)
    owner = rep.owner_id if rep else _planned_owner(book, policy, c)
    return Outcome(c.id, c.account_id, c.end_date, value, status, amount, reason, owner)


def _planned_owner(book: Book, policy: RenewalPolicy, c: Contract) -> str | None:
    """No renewal yet: the rep planning would give it (connector.domain.planning.terms)."""
    account = book.accounts.get(c.account_id)
    if account is None:
        return c.owner_id
    owner, _ = owner_of(policy, book.owners, c, account)
    return owner.id if owner else (c.owner_id or account.owner_id)


def period_label(day: date, period: Period) -> str:
    if period == "month":
        return f"{day:%Y-%m}"
    if period == "quarter":
        return f"{day.year}-Q{(day.month - 1) // 3 + 1}"
    return str(day.year)


def labels(start: date, end: date, period: Period) -> list[str]:
    out: list[str] = []
    year, month = start.year, start.month
    while (year, month) <= (end.year, end.month):
        label = period_label(date(year, month, 1), period)
        if label not in out:
            out.append(label)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def ratio(num: Decimal | int, den: Decimal | int) -> Decimal | None:
    if not den:
        return None
    return (Decimal(num) / Decimal(den)).quantize(RATE, ROUND_HALF_UP)


@dataclass(frozen=True, slots=True)
class Retention:
    period: str
    due: int
    renewed: int
    lost: int
    open: int
    due_value: Decimal
    #: recurring value of the contracts decided (renewed or lost) and still open
    decided_value: Decimal
    open_value: Decimal
    renewed_value: Decimal
    renewal_amount: Decimal
    renewal_rate: Decimal | None
    renewal_rate_value: Decimal | None
    churn_rate: Decimal | None
    churn_rate_value: Decimal | None
    gross_revenue_retention: Decimal | None
    net_revenue_retention: Decimal | None
    average_renewal_value: Decimal | None


def retention(label: str, due: Iterable[Outcome]) -> Retention:
    """Rates over the decided contracts: an open renewal has not churned (yet)."""
    due = list(due)
    won = [o for o in due if o.status == "renewed"]
    lost = [o for o in due if o.status == "lost"]
    decided = len(won) + len(lost)
    due_value = _value(due)
    renewed_value, lost_value = _value(won), _value(lost)
    decided_value = renewed_value + lost_value
    amount = sum((o.renewal_amount for o in won), Decimal(0))
    kept = sum((min(o.renewal_amount, o.value) for o in won), Decimal(0))
    avg = (amount / len(won)).quantize(CENT, ROUND_HALF_UP) if won else None
    return Retention(
        label,
        len(due),
        len(won),
        len(lost),
        len(due) - decided,
        due_value,
        decided_value,
        due_value - decided_value,
        renewed_value,
        amount,
        ratio(len(won), decided),
        ratio(renewed_value, decided_value),
        ratio(len(lost), decided),
        ratio(lost_value, decided_value),
        ratio(kept, decided_value),
        ratio(amount, decided_value),
        avg,
    )


def _value(items: list[Outcome]) -> Decimal:
    return sum((o.value for o in items), Decimal(0))


def retention_by_period(
    items: list[Outcome], start: date, end: date, period: Period
) -> tuple[list[Retention], Retention]:
    """Per period and in total, over contracts whose end date falls in [start, end]."""
    due = [o for o in items if start <= o.end_date <= end]
    rows = [
        retention(label, (o for o in due if period_label(o.end_date, period) == label))
        for label in labels(start, end, period)
    ]
    return rows, retention("total", due)


@dataclass(frozen=True, slots=True)
class DueMonth:
    month: str
    contracts: int
    value: Decimal
    health: dict[str, int]


def coming_due(
    items: list[Outcome], grades: Mapping[str, str], as_of: date, months: int = 12
) -> list[DueMonth]:
    """Open contracts ending from `as_of` over the next `months` months, by month."""
    year, month_no = as_of.year, as_of.month
    window = []
    for _ in range(months):
        window.append(f"{year:04d}-{month_no:02d}")
        year, month_no = (year + 1, 1) if month_no == 12 else (year, month_no + 1)
    by_month: dict[str, list[Outcome]] = {month: [] for month in window}
    for o in items:  # one pass: a large book is not walked once a month
        if o.status == "open" and o.end_date >= as_of:
            by_month.get(f"{o.end_date.year:04d}-{o.end_date.month:02d}", []).append(o)
    out = []
    for month, due in by_month.items():
        mix = Counter(grades.get(o.account_id, "unknown") for o in due)
        out.append(
            DueMonth(
                month,
                len(due),
                sum((o.value for o in due), Decimal(0)),
                {g: mix.get(g, 0) for g in GRADES},
            )
        )
    return out


def loss_reasons(items: list[Outcome], start: date, end: date) -> dict[str, int]:
    counts = Counter(
        o.loss_reason or "unspecified"
        for o in items
        if o.status == "lost" and start <= o.end_date <= end
    )
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def migration(before: Mapping[str, str], after: Mapping[str, str]) -> dict[str, dict[str, int]]:
    """from segment -> to segment -> accounts, over accounts placed in both periods."""
    matrix: dict[str, dict[str, int]] = {}
    for account in sorted(before.keys() & after.keys()):
        row = matrix.setdefault(before[account], {})
        row[after[account]] = row.get(after[account], 0) + 1
    return {k: dict(sorted(v.items())) for k, v in sorted(matrix.items())}


@dataclass(frozen=True, slots=True)
class OwnerRow:
    """One rep's contracts that reached their end date in the report's window."""

    owner_id: str | None
    #: the owner's name (their id when the book lacks them; UNASSIGNED: none found)
    owner: str
    due: int
    renewed: int
    lost: int
    open: int
    #: recurring value of the contracts due
    value: Decimal
    renewal_amount: Decimal
    renewal_rate: Decimal | None


UNASSIGNED = "(no owner)"


def by_owner(
    items: list[Outcome], owners: Mapping[str, Owner], start: date, end: date
) -> list[OwnerRow]:
    """The retention figures per rep over contracts ending in [start, end], most value first."""
    mine: dict[str | None, list[Outcome]] = {}
    for o in items:
        if start <= o.end_date <= end:
            mine.setdefault(o.owner_id, []).append(o)
    rows = []
    for owner_id, due in mine.items():
        r = retention("", due)
        name = owners[owner_id].name if owner_id in owners else owner_id or UNASSIGNED
        rows.append(
            OwnerRow(
                owner_id,
                name,
                r.due,
                r.renewed,
                r.lost,
                r.open,
                r.due_value,
                r.renewal_amount,
                r.renewal_rate,
            )
        )
    return sorted(rows, key=lambda r: (-r.value, r.owner.casefold()))
