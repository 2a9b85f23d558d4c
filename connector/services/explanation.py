"""`explain`: why a contract has or has no renewal, the planner's own answer over the synced
book (no CRM call), with what a person reading it needs: names next to ids, the account's
health, the prices the renewal lines uplift, the contract's dead letters."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from crm_renewals.connector.config import AppConfig
from crm_renewals.connector.domain.book import Book
from crm_renewals.connector.domain.health import Health
from crm_renewals.connector.domain.journey import summary as journey_summary
from crm_renewals.connector.domain.models import Contract
from crm_renewals.connector.domain.planning.terms import uplift_of
from crm_renewals.connector.domain.planning.values import ContractPlan, RenewalPlan
from crm_renewals.connector.services.context import Context
from crm_renewals.connector.services.deadletters import Discards
from crm_renewals.connector.services.insight import assess
from crm_renewals.connector.services.sync import accounts_of, today
from crm_renewals.connector.services.synced import contract_value, synced_book
from crm_renewals.connector.state import DeadLetter


@dataclass(frozen=True)
class Party:
    """A record named in an explanation: its CRM id and name (None: not in the synced book)."""

    id: str
    name: str | None


@dataclass
class Explanation:
    contract_id: str
    plan: ContractPlan | None
    broken: str | None
    dead_letters: list[DeadLetter]
    #: the contract's account, and the renewal's owner (no renewal: the contract's owner)
    account: Party | None = None
    owner: Party | None = None
    #: the account's place in the customer journey (playbook.journey): segment, next touchpoint
    journey: dict | None = None
    #: the contract as synced (None: not in the book, or it failed to map) and its recurring
    #: value
    contract: Contract | None = None
    value: Decimal | None = None
    #: the account's health today, as planning scored it (None: no measure known)
    health: Health | None = None
    #: a renewal's uplift (percent), and each renewal line's contract price before it
    uplift: Decimal | None = None
    prior_prices: dict[str, Decimal] = field(default_factory=dict)
    #: names of the owners and contacts the plan names (its tasks, the renewal now), by id
    names: dict[str, str] = field(default_factory=dict)


def explain(ctx: Context, contract_id: str, as_of: date | None = None) -> Explanation:
    """Why this contract has or has no renewal: the planner's answer over the synced book."""
    synced = synced_book(ctx.store)
    book, ledger = synced.book, synced.ledger
    accounts = accounts_of(book, [contract_id])
    planner = assess(ctx, book, as_of or today(), accounts, synced.facts(ctx.config))
    known = contract_id in book.plannable_ids()
    plan = planner.plan(book, ledger, contract_id) if known else None
    if plan is not None:  # what a sync would send: not the writes an admin discarded
        plan = Discards.of(ctx.store).apply(plan)
    letters = ctx.store.dead_letters.of_contract(contract_id)
    explained = Explanation(contract_id, plan, book.broken_reason(contract_id), letters)
    contract = book.contracts.get(contract_id)
    if contract is None:
        return explained
    explained.contract, explained.value = contract, contract_value(book, contract_id)
    planned_owner = None
    if plan is not None and isinstance(plan.renewal, RenewalPlan):
        planned_owner = plan.renewal.opportunity.owner_id
        explained.uplift = uplift_of(ctx.config.renewals, contract)
        explained.prior_prices = _prior_prices(book, plan.renewal)
    explained.account = account_party(book, contract)
    explained.owner = owner_party(ctx.config, book, contract, planned_owner)
    explained.health = planner.health.get(contract.account_id)
    explained.names = _names(book, plan)
    explained.journey = journey_summary(
        ctx.config.playbook,
        contract.account_id,
        book.contracts_of(contract.account_id),
        planner.as_of,
    )
    return explained


def account_party(book: Book, contract: Contract) -> Party:
    account = book.accounts.get(contract.account_id)
    return Party(contract.account_id, account.name if account is not None else None)


def owner_party(
    config: AppConfig, book: Book, contract: Contract, planned: str | None = None
) -> Party | None:
    """Who owns the contract's renewal: the one planned (`planned`), else the account's owner
    (or the contract's, with `renewals.owner_source: contract`), named."""
    account = book.accounts.get(contract.account_id)
    owner_id = account.owner_id if account is not None else None
    if config.renewals.owner_source == "contract":
        owner_id = contract.owner_id or owner_id
    owner_id = planned or owner_id
    if not owner_id:
        return None
    owner = book.owners.get(owner_id)
    return Party(owner_id, owner.name if owner is not None else None)


def _prior_prices(book: Book, renewal: RenewalPlan) -> dict[str, Decimal]:
    """Renewal line key -> the unit price of the contract line it renews (keys end with the
    contract line's id)."""
    lines = {ln.id: ln for ln in book.lines_of(renewal.opportunity.contract_id)}
    out = {}
    for line in renewal.lines:
        source = lines.get((line.key or "").rsplit(":", 1)[-1])
        if line.kind == "renewal" and source is not None:
            out[line.key] = source.unit_price
    return out


def _names(book: Book, plan: ContractPlan | None) -> dict[str, str]:
    """The owners and contacts the plan's tasks are for, and the renewal's owner in the CRM
    now, by id."""
    if plan is None:
        return {}
    owners = [t.owner_id for t in plan.tasks.tasks]
    if isinstance(plan.renewal, RenewalPlan) and plan.renewal.current is not None:
        owners.append(plan.renewal.current.owner_id)
    names = {o: book.owners[o].name for o in owners if o in book.owners}
    contacts = (t.contact_id for t in plan.tasks.tasks if t.contact_id)
    names |= {c: book.contacts[c].name for c in contacts if c in book.contacts}
    return names
