"""Customer lifecycle segments: each account, each 30-day period, placed in one segment by the
first configured rule whose conditions all hold over the account's facts at the period's end
(renewals, contract terms, health, activity). Pure."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping
from datetime import date, timedelta
from typing import Any

from crm_renewals.connector.domain.book import Book
from crm_renewals.connector.domain.health import Health
from crm_renewals.connector.domain.models import Contract
from crm_renewals.connector.domain.policy import Condition, RenewalPolicy, SegmentRule, Segments

#: Contract statuses that never were a purchase.
NOT_BOUGHT = ("draft", "cancelled")


def period_start(day: date, segs: Segments) -> date:
    n = (day - segs.epoch).days // segs.period_days
    return segs.epoch + timedelta(days=n * segs.period_days)


def periods(as_of: date, segs: Segments) -> list[date]:
    """Starts of the last `history_periods` periods, the one holding `as_of` last."""
    current = period_start(as_of, segs)
    step = timedelta(days=segs.period_days)
    return [current - step * i for i in range(segs.history_periods - 1, -1, -1)]


def holds(cond: Condition, value: Any) -> bool:
    if value is None:
        return False
    if cond.equals is not None and value != cond.equals:
        return False
    if cond.min is not None and value < cond.min:
        return False
    return cond.max is None or value <= cond.max


def classify(rules: tuple[SegmentRule, ...], facts: Mapping[str, Any]) -> str:
    for rule in rules:
        if all(holds(c, facts.get(name)) for name, c in rule.when.items()):
            return rule.segment
    return "unclassified"


def account_facts(
    book: Book,
    contracts: list[Contract],
    policy: RenewalPolicy,
    end: date,
    health: Health | None,
) -> dict[str, Any]:
    """Facts at the end of a period; health is known for the current period only."""
    terms = sorted(
        (c for c in contracts if (c.start_date or c.end_date) <= end),
        key=lambda c: (c.start_date or c.end_date, c.id),
    )
    won = lost = 0
    for c in terms:
        for r in book.renewals_of(c.id):
            if r.close_date <= end and r.stage in policy.closed_won_stages:
                won += 1
            elif r.close_date <= end and r.stage in policy.closed_lost_stages:
                lost += 1
    gap = 0
    covered_to = None
    for c in terms:
        start = c.start_date or c.end_date
        if covered_to is not None:
            gap = max(gap, (start - covered_to).days - 1)
        covered_to = max(covered_to or c.end_date, c.end_date)
    values = health.values if health else {}
    return {
        "active": any((c.start_date or c.end_date) <= end <= c.end_date for c in terms),
        "terms": len(terms),
        "renewals_won": won,
        "renewals_lost": lost,
        "gap_days": gap,
        "health_score": health.score if health else None,
        "days_since_last_activity": values.get("days_since_last_activity"),
    }


def segment_periods(
    book: Book,
    segs: Segments,
    policy: RenewalPolicy,
    as_of: date,
    health: Mapping[str, Health],
    known: set[str] = frozenset(),
) -> Iterator[list[dict[str, Any]]]:
    """One period's segment rows at a time, over the history window; periods in `known`
    (already recorded) are not recomputed, except the current one, which moves with today's
    data."""
    by_account: dict[str, list[Contract]] = defaultdict(list)
    for c in book.contracts.values():
        if c.status not in NOT_BOUGHT:
            by_account[c.account_id].append(c)
    starts = periods(as_of, segs)
    current = starts[-1]
    for start in starts:
        if start != current and start.isoformat() in known:
            continue
        rows = []
        end = min(start + timedelta(days=segs.period_days - 1), as_of)
        for account_id in sorted(book.accounts):
            h = health.get(account_id) if start == current else None
            facts = account_facts(book, by_account.get(account_id, []), policy, end, h)
            if not facts["terms"]:
                continue  # not a customer yet
            rows.append(
                {
                    "account": account_id,
                    "period_start": start.isoformat(),
                    "segment": classify(segs.rules, facts),
                    "facts": facts,
                }
            )
        yield rows
