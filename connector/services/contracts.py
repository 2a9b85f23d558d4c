"""Finding a contract in the synced book (the console's contract search): by contract id or
number, account id or name, ending soonest first; each with its account, the owner of its
renewal, its value and its renewal state as the planner's first step sees it (has one, would
get one, or the reason it gets none)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Literal

from crm_renewals.connector.config import AppConfig
from crm_renewals.connector.domain.book import Book
from crm_renewals.connector.domain.planning.eligibility import Eligible, eligibility
from crm_renewals.connector.domain.planning.planner import Planner
from crm_renewals.connector.services.explanation import Party, account_party, owner_party
from crm_renewals.connector.services.sync import today
from crm_renewals.connector.services.synced import SyncedBook, contract_value, synced_book
from crm_renewals.connector.state import StateStore

PER_PAGE = 50
#: a renewal the contract has (open or written by us), one the next sync creates, or none
RenewalState = Literal["has", "would", "none"]


@dataclass(frozen=True)
class ContractRow:
    contract_id: str
    number: str | None
    account: Party | None
    owner: Party | None
    end_date: date | None
    status: str | None
    value: Decimal | None
    currency: str | None
    renewal: RenewalState
    #: the renewal's key and stage, or why there is none ("reason: detail")
    detail: str


@dataclass(frozen=True)
class ContractPage:
    rows: list[ContractRow]
    total: int
    page: int
    pages: int


def search_contracts(
    store: StateStore,
    config: AppConfig,
    query: str = "",
    page: int = 1,
    as_of: date | None = None,
    per_page: int = PER_PAGE,
) -> ContractPage:
    """One page of the contracts whose id, number, account id or account name holds `query`
    (any case; empty: all), those ending soonest first, then those ended, latest first."""
    synced = synced_book(store)
    book, as_of = synced.book, as_of or today()
    found = _matching(book, query.strip().lower())
    found.sort(key=lambda cid: _soonest(book, cid, as_of))
    shown = found[(page - 1) * per_page : page * per_page]
    planner = Planner(config.renewals, config.playbook, as_of)
    rows = [_row(config, synced, planner, cid) for cid in shown]
    return ContractPage(rows, len(found), page, max(1, -(-len(found) // per_page)))


def _matching(book: Book, needle: str) -> list[str]:
    """Synced contracts (and those that failed to map, by id) the needle is in."""
    found = []
    for c in book.contracts.values():
        account = book.accounts.get(c.account_id)
        name = account.name if account is not None else ""
        if not needle or needle in f"{c.id}\n{c.number or ''}\n{c.account_id}\n{name}".lower():
            found.append(c.id)
    found += [cid for cid in book.broken if cid not in book.contracts and needle in cid.lower()]
    return found


def _soonest(book: Book, contract_id: str, as_of: date) -> tuple:
    contract = book.contracts.get(contract_id)
    if contract is None:  # failed to map: no end date known
        return (2, 0, contract_id)
    days = (contract.end_date - as_of).days
    return (0, days, contract_id) if days >= 0 else (1, -days, contract_id)


def _row(config: AppConfig, synced: SyncedBook, planner: Planner, contract_id: str) -> ContractRow:
    book = synced.book
    contract = book.contracts.get(contract_id)
    if contract is None:
        why = book.broken_reason(contract_id) or "not in the synced book"
        return ContractRow(
            contract_id, None, None, None, None, None, None, None, "none", f"missing_data: {why}"
        )
    verdict = eligibility(planner, book, synced.ledger, contract_id)
    if isinstance(verdict, Eligible):
        owner = Party(verdict.owner.id, verdict.owner.name)
        existing = verdict.existing
        if existing is not None:
            state, detail = "has", f"{existing.key} ({existing.stage})"
        elif verdict.baseline is not None:  # written, not read back yet
            state, detail = "has", f"{verdict.key} (written by the connector)"
        else:
            state, detail = "would", f"{verdict.key}: created by the next sync"
    else:
        owner = owner_party(config, book, contract)
        state, detail = "none", f"{verdict.reason}: {verdict.detail}"
    return ContractRow(
        contract.id,
        contract.number,
        account_party(book, contract),
        owner,
        contract.end_date,
        contract.status,
        contract_value(book, contract.id),
        contract.currency,
        state,
        detail,
    )
