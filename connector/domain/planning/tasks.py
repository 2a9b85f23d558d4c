"""A contract's playbook tasks, planned whichever way its renewal went: with the renewal
(reminders, notices, QBRs, at risk, the account's own tasks), or before the renewal is due
(onboarding, adoption, QBRs, prep, risk)."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import TYPE_CHECKING

from crm_renewals.connector.domain.book import Book
from crm_renewals.connector.domain.health import is_at_risk
from crm_renewals.connector.domain.journey import Segment, due_segments, journey_tasks
from crm_renewals.connector.domain.models import Account, Contract, Task
from crm_renewals.connector.domain.planning.cpq import cpq_terms
from crm_renewals.connector.domain.planning.eligibility import Eligible
from crm_renewals.connector.domain.planning.renewal import Priced
from crm_renewals.connector.domain.planning.terms import (
    amount_of,
    owner_of,
    renewal_key,
    renewal_lines,
    uplift_of,
)
from crm_renewals.connector.domain.planning.values import NO_TASKS, TaskPlan
from crm_renewals.connector.domain.playbook import TaskContext, may_be_due, on_account
from crm_renewals.connector.domain.playbook import plan_tasks as playbook_tasks
from crm_renewals.connector.domain.writes import LedgerView, task_writes

if TYPE_CHECKING:
    from crm_renewals.connector.domain.planning.planner import Planner


def plan_tasks(p: Planner, book: Book, ledger: LedgerView, e: Eligible, priced: Priced) -> TaskPlan:
    """The tasks of a renewal being planned, hung off it (CPQ: off CPQ's renewal, once CPQ has
    made it; until then there is nothing to hang them off)."""
    contract, owner = e.contract, e.owner
    cpq = p.policy.renewal_mode == "cpq"
    if cpq and contract.cpq_renewal_id is None:
        return NO_TASKS
    task_owner, amount, uplift = owner, priced.opportunity.amount, priced.uplift
    if cpq:
        terms = cpq_terms(p.policy, book.owners, contract, e.lines, owner, amount)
        task_owner, amount, uplift = terms
    health = priced.health
    tc = TaskContext(
        e.key,
        e.key,
        contract,
        e.account,
        task_owner,
        book.contacts_of(e.account.id),
        amount,
        uplift,
        health,
        priced.upsell,
        is_at_risk(p.scorecard, health),
    )
    tasks = playbook_tasks(p.playbook, p.as_of, tc, p.schedule()) + _journey(p, book, tc, None)
    if cpq:
        # the account's own tasks (QBR, at risk) stay with the account's owner
        tasks = tuple(replace(t, owner_id=owner.id) if on_account(t) else t for t in tasks)
    return _task_plan(contract, tasks, ledger, contract.cpq_renewal_id if cpq else None)


def early_tasks(p: Planner, book: Book, ledger: LedgerView, contract: Contract) -> TaskPlan:
    """Playbook tasks due before the renewal exists: onboarding, adoption, QBRs, prep, risk."""
    account: Account | None = book.accounts.get(contract.account_id)
    if account is None:
        return NO_TASKS
    health = p.health.get(account.id)
    at_risk = is_at_risk(p.scorecard, health)
    contacts = book.contacts_of(account.id)
    named = any(c.renewal_contact for c in contacts)
    segments = _pending(p, book, ledger, account.id)
    if named and not at_risk and not segments and not may_be_due(p.schedule(), contract):
        return NO_TASKS  # most contracts, most days: nothing to do, so nothing to compute
    owner, _ = owner_of(p.policy, book.owners, contract, account)
    if owner is None:
        return NO_TASKS
    uplift = uplift_of(p.policy, contract)

    def amount() -> Decimal:  # what the renewal will amount to; only a template may ask
        lines = book.lines_of(contract.id)
        return amount_of(renewal_lines("", (ln for ln in lines if ln.recurring), uplift))

    key = renewal_key(contract)
    tc = TaskContext(
        key, None, contract, account, owner, contacts, amount, uplift, health, (), at_risk
    )
    tasks = playbook_tasks(p.playbook, p.as_of, tc, p.schedule()) + _journey(p, book, tc, segments)
    return _task_plan(contract, tasks, ledger, None)


def _pending(p: Planner, book: Book, ledger: LedgerView, account_id: str) -> list[Segment]:
    """The account's journey segments due today, if any of their tasks is not written yet
    (most days, for most accounts, all are: nothing to plan)."""
    segments = _segments(p, book, account_id)
    if all(ledger.written("task", s.key) is not None for s in segments):
        return []
    return segments


def _segments(p: Planner, book: Book, account_id: str) -> list[Segment]:
    if not p.playbook.journey.enabled:
        return []
    memo = p.memo
    if memo.get("segments_of") != account_id:
        contracts = book.contracts_of(account_id)
        memo.update(segments_of=account_id, tasks_of=None)
        memo["segments"] = due_segments(p.playbook, p.as_of, account_id, contracts)
    return memo["segments"]


def _journey(
    p: Planner, book: Book, tc: TaskContext, segments: list[Segment] | None
) -> tuple[Task, ...]:
    """The account's journey tasks, built by its first contract that plans tasks and handed
    to the others as they are (a run sends them once: services.apply)."""
    account_id = tc.account.id
    if segments is None:
        segments = _segments(p, book, account_id)
    if not segments:
        return ()
    memo = p.memo
    if memo.get("tasks_of") != account_id:
        tasks = journey_tasks(p.playbook, p.as_of, tc, segments, p.schedule())
        memo.update(tasks_of=account_id, tasks=tasks)
    return memo["tasks"]


def _task_plan(
    contract: Contract, tasks: tuple[Task, ...], ledger: LedgerView, renewal_id: str | None
) -> TaskPlan:
    if not tasks:
        return NO_TASKS
    return TaskPlan(tasks, tuple(task_writes(contract.id, tasks, ledger, renewal_id)))
