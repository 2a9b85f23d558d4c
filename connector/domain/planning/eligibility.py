"""Whether a contract gets a renewal now: the guards, in the order they are asked, the first
that refuses giving the Skip and its reason; a contract no guard refuses is Eligible, with
what the guards found (its account, recurring lines, owner)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

from crm_renewals.connector.domain.book import Book
from crm_renewals.connector.domain.models import (
    Account,
    Contract,
    ContractLine,
    Owner,
    RenewalOpportunity,
)
from crm_renewals.connector.domain.planning.cpq import forecast_wait
from crm_renewals.connector.domain.planning.terms import owner_of, renewal_key
from crm_renewals.connector.domain.planning.values import Skip, SkipReason
from crm_renewals.connector.domain.policy import RenewalPolicy
from crm_renewals.connector.domain.writes import LedgerView

if TYPE_CHECKING:
    from crm_renewals.connector.domain.planning.planner import Planner


class Term(NamedTuple):
    """What the guards read of a contract's current term. A tuple, not a dataclass: one is
    built for every contract planned, most of which are simply skipped."""

    contract: Contract
    key: str  # this term's renewal key
    found: RenewalOpportunity | None  # this term's renewal, else the contract's latest
    existing: RenewalOpportunity | None  # `found` unless it was lost: the one to update
    baseline: dict[str, Any] | None  # what the ledger says we last wrote to `existing`


class Eligible(NamedTuple):
    """A contract to plan a renewal for, with what the guards found. Immutable; a tuple (as
    `Term`) because one is built for every renewal planned: a frozen dataclass's __init__
    costs several times as much, measurably so over a book."""

    contract: Contract
    account: Account
    key: str  # the renewal's key: the existing renewal's (an amended end date) or this term's
    existing: RenewalOpportunity | None
    baseline: dict[str, Any] | None
    lines: tuple[ContractLine, ...]  # the recurring ones: what renews
    owner: Owner
    owner_note: str


#: A guard: why the contract gets no renewal now (the Skip's detail), or None.
Guard = Callable[["Planner", Book, LedgerView, Term], "str | None"]


def eligibility(p: Planner, book: Book, ledger: LedgerView, contract_id: str) -> Skip | Eligible:
    """The first guard's refusal, or the contract as Eligible."""
    contract = book.contracts.get(contract_id)
    if contract is None or book.broken.get(contract_id):
        return _unplannable(p.policy, book, contract_id, contract)
    term = _term(p.policy, book, ledger, contract)
    for reason, guard in CPQ_GUARDS if p.policy.renewal_mode == "cpq" else GUARDS:
        if (detail := guard(p, book, ledger, term)) is not None:
            return Skip(reason, detail)
    return _eligible(p.policy, book, term)


def _unplannable(
    policy: RenewalPolicy, book: Book, contract_id: str, contract: Contract | None
) -> Skip:
    """A contract deleted in the CRM, or one the book lacks or could not map."""
    if contract is None and contract_id in book.deleted_contracts:
        closed = policy.closed_won_stages + policy.closed_lost_stages
        open_ = [r.key for r in book.renewals_of(contract_id) if r.stage not in closed]
        left = f"; open renewal {', '.join(open_)} left as is" if open_ else ""
        return Skip(
            "contract_deleted",
            "contract was deleted (or merged away) in the CRM: no renewal is created" + left,
        )
    return Skip("missing_data", book.broken_reason(contract_id) or "contract is not in the book")


def _term(policy: RenewalPolicy, book: Book, ledger: LedgerView, contract: Contract) -> Term:
    key = renewal_key(contract)
    found = _found_renewal(book.renewals_of(contract.id), key)
    existing = None if found is not None and found.stage in policy.closed_lost_stages else found
    baseline = ledger.written("renewal_opportunity", existing.key if existing else key)
    return Term(contract, key, found, existing, baseline)


def _found_renewal(renewals: tuple[RenewalOpportunity, ...], key: str) -> RenewalOpportunity | None:
    """This term's renewal, else the contract's latest one (the end date was amended)."""
    if not renewals:
        return None
    for r in renewals:
        if r.key == key:
            return r
    return max(renewals, key=lambda r: r.close_date)


def _renewal_deleted(p: Planner, book: Book, ledger: LedgerView, t: Term) -> str | None:
    if t.key in book.deleted_renewal_keys and ledger.written("renewal_opportunity", t.key):
        return f"renewal {t.key} was deleted in the CRM; it is not created again"
    return None


def _renewed(p: Planner, book: Book, ledger: LedgerView, t: Term) -> str | None:
    found = t.found
    if found is not None and found.stage in p.policy.closed_won_stages:
        return f"renewal {found.key} is {found.stage}"
    return None


def _lost_this_term(p: Planner, book: Book, ledger: LedgerView, t: Term) -> str | None:
    found = t.found
    if found is not None and found.stage in p.policy.closed_lost_stages and found.key == t.key:
        return f"renewal {found.key} is {found.stage}"
    return None


def _not_active(p: Planner, book: Book, ledger: LedgerView, t: Term) -> str | None:
    status = t.contract.status
    return None if status in p.policy.active_statuses else f"contract status is {status}"


def _awaiting_cpq(p: Planner, book: Book, ledger: LedgerView, t: Term) -> str | None:
    wait = forecast_wait(p, ledger, t.contract)
    return wait[1] if wait is not None and not wait[0] else None


def _cpq_overdue(p: Planner, book: Book, ledger: LedgerView, t: Term) -> str | None:
    wait = forecast_wait(p, ledger, t.contract)
    return wait[1] if wait is not None and wait[0] else None


def _not_due(p: Planner, book: Book, ledger: LedgerView, t: Term) -> str | None:
    if t.existing is not None or t.baseline is not None:
        return None  # the renewal exists: kept up to date whatever the date
    end, days = t.contract.end_date, p.policy.lead_time_days
    opens = end - timedelta(days=days)
    if p.as_of < opens:
        return f"renewal window opens {opens} ({days} days before the end date {end})"
    return None


def _ended(p: Planner, book: Book, ledger: LedgerView, t: Term) -> str | None:
    end = t.contract.end_date
    if t.existing is None and t.baseline is None and p.as_of > end:
        return f"contract ended {end} with no renewal"
    return None


#: The guards in the order they are asked: the first refusal is the contract's Skip. The
#: last three (account, recurring lines, owner) find what planning needs: `_eligible`.
CPQ_GUARDS: tuple[tuple[SkipReason, Guard], ...] = (
    ("renewal_deleted", _renewal_deleted),
    ("already_renewed", _renewed),
    ("closed_renewal_exists", _lost_this_term),
    ("contract_not_active", _not_active),
    ("awaiting_cpq", _awaiting_cpq),
    ("cpq_overdue", _cpq_overdue),
    ("not_due", _not_due),
    ("contract_ended", _ended),
)
#: Without CPQ (renewal_mode: connector) its guards never refuse: not asked.
GUARDS = tuple((r, g) for r, g in CPQ_GUARDS if g not in (_awaiting_cpq, _cpq_overdue))


def _eligible(policy: RenewalPolicy, book: Book, t: Term) -> Skip | Eligible:
    """The last guards, which keep what they find for building the renewal and its tasks."""
    contract, existing = t.contract, t.existing
    account = book.accounts.get(contract.account_id)
    if account is None:
        return Skip("missing_data", f"account {contract.account_id} is not in the synced book")
    lines = tuple([ln for ln in book.lines_of(contract.id) if ln.recurring])
    if not lines:
        return Skip("missing_data", "contract has no recurring lines to renew")
    owner, note = owner_of(policy, book.owners, contract, account)
    if owner is None:
        return Skip("no_active_owner", note)
    key = existing.key if existing is not None else t.key
    return Eligible(contract, account, key, existing, t.baseline, lines, owner, note)
