"""When a plan may next change though none of its records does: the incremental run's index.

A plan reads its records, the ledger, the account's health and the day. Records and health
are the run's to notice (a change read, a signal received); the day is this module's. For one
contract planned today, `next_due` is a day on or before the first day its plan could differ:
its renewal window opening, a playbook step or a journey segment coming into its creation
window, a CPQ forecast turning overdue. Conservative by construction: a contract with any
task planned today, a renewal still to create, or a CPQ forecast in flight is due tomorrow
(its tasks' due dates and event keys move with the day); a plan that cannot change with the
date alone (the contract renewed, lost, ended, inactive, unmappable) is never due.
`health_due` does the same for an account's health. Pure.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING

from crm_renewals.connector.domain.book import Book
from crm_renewals.connector.domain.health import Health, is_at_risk
from crm_renewals.connector.domain.journey import upcoming
from crm_renewals.connector.domain.models import Contract
from crm_renewals.connector.domain.planning.values import ContractPlan, Skip
from crm_renewals.connector.domain.playbook_dates import (
    SHIFT_DAYS,
    business_day,
    occurrences,
    quarter,
)
from crm_renewals.connector.domain.policy import Scorecard

if TYPE_CHECKING:
    from crm_renewals.connector.domain.planning.planner import Planner

#: skip reasons that change only when the contract's records do
SETTLED = frozenset(
    {
        "renewal_deleted",
        "already_renewed",
        "closed_renewal_exists",
        "contract_not_active",
        "contract_ended",
        "missing_data",
        "no_active_owner",
    }
)


def next_due(p: Planner, book: Book, plan: ContractPlan) -> date | None:
    """The first day after `p.as_of` on which this contract must be planned again though
    nothing of it changed (None: only when something does)."""
    tomorrow = p.as_of + timedelta(days=1)
    contract = book.contracts.get(plan.contract_id)
    renewal = plan.renewal
    if contract is None or (isinstance(renewal, Skip) and renewal.reason in SETTLED):
        return None
    if plan.tasks.writes or p.policy.renewal_mode == "cpq":
        return tomorrow  # writing today, or a forecast in flight: look again tomorrow
    if is_at_risk(p.scorecard, p.health.get(contract.account_id)):
        return tomorrow  # an at-risk task is keyed by the day
    days: list[date] = []
    if isinstance(renewal, Skip):
        if renewal.reason != "not_due":
            return tomorrow  # a reason added later: be safe
        days.append(contract.end_date - timedelta(days=p.policy.lead_time_days))
    elif renewal.action == "create":
        return tomorrow  # written this run: the next run sees it (and its late flag)
    keys = {t.dedupe_key for t in plan.tasks.tasks}
    days += _steps(p, contract, keys)
    if any(":name_contact:" in k for k in keys):
        days.append(_next_quarter(p.as_of))  # asked again each quarter while none is named
    days += _journey(p, book, contract)
    later = [d for d in days if d > p.as_of]
    return max(tomorrow, min(later)) if later else None


def health_due(scorecard: Scorecard, health: Health | None, as_of: date) -> date | None:
    """Tomorrow while an account's health moves with the day alone: a trend that will read
    "flat" once today's score is the one before, an at-risk event keyed by the day, a
    days-since measure (it ages by the day, and its drivers text says so even where its score
    stays flat); else None (its signals and records changing re-plan it)."""
    if health is None:
        return None
    moving = health.trend != "flat" or is_at_risk(scorecard, health)
    if moving or any(name.startswith("days_since_") for name in health.values):
        return as_of + timedelta(days=1)
    return None


def _steps(p: Planner, contract: Contract, planned: set[str]) -> list[date]:
    """For each playbook step, the first day an occurrence not planned today may come into
    its creation window (the bound plan_tasks tests first: a due date moved off weekends and
    holidays moves by at most SHIFT_DAYS), or for one within that bound but not planned
    today, the exact day (its due date on a business day, less its lead)."""
    as_of, out = p.as_of, []
    for step in p.playbook.steps:
        for day, period in occurrences(step, contract):
            opens = day - timedelta(days=step.create_before_days + SHIFT_DAYS)
            if opens > as_of:
                out.append(opens)
                break
            if not step.late_if_missed and day + timedelta(days=SHIFT_DAYS) < as_of:
                continue  # missed for good
            if step.late_if_missed and as_of >= contract.end_date:
                continue
            label = f":{step.id}:{period or quarter(day)}" if step.scope == "account" else ""
            if not any(_is_step(k, step.id, period, label) for k in planned):
                weekend, country = p.playbook.weekend_days, p.playbook.holiday_country
                due = business_day(day, weekend, step.anchor == "end", country)
                out.append(max(as_of + timedelta(days=1), due - timedelta(step.create_before_days)))
                break
    return out


def _is_step(key: str, step: str, period: str | None, account_label: str) -> bool:
    if account_label:
        return key.endswith(account_label)
    return key.endswith(f":{step}:{period}" if period else f":{step}")


def _next_quarter(day: date) -> date:
    month = (day.month - 1) // 3 * 3 + 4
    return date(day.year + (month > 12), (month - 1) % 12 + 1, 1)


def _journey(p: Planner, book: Book, contract: Contract) -> list[date]:
    """Days the account's journey may change its due segments: the next segments coming into
    their creation window, and its contracts starting or ending (in force or not)."""
    j = p.playbook.journey
    if not j.enabled:
        return []
    contracts = book.contracts_of(contract.account_id)
    out = [d for c in contracts for d in (c.start_date, c.end_date + timedelta(days=1)) if d]
    day = p.as_of
    for _ in range(j.segments + 1):
        seg = upcoming(j, contract.account_id, contracts, day)
        if seg is None:
            break
        opens = seg.start - timedelta(days=seg.touchpoint.create_before_days)
        if opens > p.as_of:
            out.append(opens)
            break
        day = seg.start
    return out
