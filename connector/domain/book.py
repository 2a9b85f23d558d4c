"""The book: every synced record, indexed the way planning reads it."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import groupby
from operator import attrgetter
from typing import Any, TypeVar

from crm_renewals.connector.domain.models import (
    Account,
    Contact,
    Contract,
    ContractLine,
    Owner,
    RenewalLine,
    RenewalOpportunity,
    Task,
)

R = TypeVar("R")


@dataclass
class Book:
    owners: dict[str, Owner] = field(default_factory=dict)
    accounts: dict[str, Account] = field(default_factory=dict)
    contacts: dict[str, Contact] = field(default_factory=dict)
    contracts: dict[str, Contract] = field(default_factory=dict)
    contract_lines: dict[str, ContractLine] = field(default_factory=dict)
    renewals: dict[str, RenewalOpportunity] = field(default_factory=dict)
    renewal_lines: dict[str, RenewalLine] = field(default_factory=dict)
    #: tasks the connector wrote, as the CRM holds them now (status read back for reports)
    tasks: dict[str, Task] = field(default_factory=dict)
    #: contract id -> {record ref: why it failed to map}; such a contract is not planned
    broken: dict[str, dict[str, str]] = field(default_factory=dict)
    #: renewal key -> keys of its lines the CRM reports deleted
    deleted_lines: dict[str, set[str]] = field(default_factory=dict)
    #: keys of renewal opportunities the CRM reports deleted
    deleted_renewal_keys: set[str] = field(default_factory=set)
    #: ids of contracts the CRM reports deleted (or merged away)
    deleted_contracts: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._index: dict[str, dict] | None = None

    def put(self, kind: str, record_id: str, record) -> None:
        """Store a record under its CRM id (every kind is keyed by CRM id)."""
        getattr(self, _ATTR[kind])[record_id] = record
        if kind == "contract":
            self.deleted_contracts.discard(record_id)  # restored from the recycle bin
        self._index = None

    def drop(self, kind: str, record_id: str) -> None:
        getattr(self, _ATTR[kind]).pop(record_id, None)
        self._index = None

    def mark_broken(self, contract_id: str, ref: str, message: str) -> None:
        self.broken.setdefault(contract_id, {})[ref] = message

    def clear_broken(self, contract_id: str, ref: str) -> None:
        refs = self.broken.get(contract_id)
        if refs is not None:
            refs.pop(ref, None)
            if not refs:
                del self.broken[contract_id]

    def plannable_ids(self) -> set[str]:
        """Every contract the planner has an answer for: synced, broken, or deleted."""
        return {*self.contracts, *self.broken, *self.deleted_contracts}

    def broken_reason(self, contract_id: str) -> str | None:
        refs = self.broken.get(contract_id)
        return "; ".join(refs[k] for k in sorted(refs)) if refs else None

    def _indexes(self) -> dict[str, dict[str, tuple]]:
        if self._index is None:
            self._index = {
                "contacts": _grouped(self.contacts.values(), attrgetter("account_id")),
                "lines": _grouped(
                    self.contract_lines.values(), attrgetter("contract_id"), attrgetter("id")
                ),
                "renewals": _grouped(self.renewals.values(), attrgetter("contract_id")),
                "rlines": _grouped(
                    (rl for rl in self.renewal_lines.values() if rl.renewal_key),
                    attrgetter("renewal_key"),
                ),
            }
        return self._index

    def note_deleted_line(self, line_key: str) -> None:
        self.deleted_lines.setdefault(line_key.rsplit(":", 1)[0], set()).add(line_key)

    def deleted_lines_of(self, renewal_key: str) -> set[str]:
        return self.deleted_lines.get(renewal_key, set())

    def contacts_of(self, account_id: str) -> tuple[Contact, ...]:
        return self._indexes()["contacts"].get(account_id, ())

    def contracts_of(self, account_id: str) -> tuple[Contract, ...]:
        """The account's contracts; indexed on first use only (the customer journey asks), so
        a book planned without it carries no such index."""
        index = self._indexes()
        if "contracts" not in index:
            index["contracts"] = _grouped(self.contracts.values(), attrgetter("account_id"))
        return index["contracts"].get(account_id, ())

    def lines_of(self, contract_id: str) -> tuple[ContractLine, ...]:
        """The contract's lines in id order."""
        return self._indexes()["lines"].get(contract_id, ())

    def renewals_of(self, contract_id: str) -> tuple[RenewalOpportunity, ...]:
        return self._indexes()["renewals"].get(contract_id, ())

    def renewal_lines_of(self, renewal_key: str) -> tuple[RenewalLine, ...]:
        return self._indexes()["rlines"].get(renewal_key, ())


def affected_contracts(book: Book, rows: list[dict[str, Any]]) -> set[str]:
    """The contracts whose renewal planning reads these (mirror rows of) records."""
    out: set[str] = set()
    accounts: set[str] = set()
    owners: set[str] = set()
    renewal_contract: dict[str, str] | None = None  # renewal key -> contract, built if needed
    for row in rows:
        kind, data = row["kind"], row["data"] or {}
        if kind == "contract":
            out.add(row["id"])
        elif kind in ("contract_line", "renewal_opportunity") or row["parent_id"]:
            out.add(data.get("contract_id") or row["parent_id"])
        elif kind == "renewal_line" and data.get("renewal_key"):
            if renewal_contract is None:
                renewal_contract = {r.key: r.contract_id for r in book.renewals.values()}
            key = data["renewal_key"]
            # keys are "<contract id>:<term end date>"
            out.add(renewal_contract.get(key) or key.rsplit(":", 1)[0])
        elif kind == "account":
            accounts.add(row["id"])
        elif kind == "contact" and data.get("account_id"):
            accounts.add(data["account_id"])
        elif kind == "owner":
            owners.add(row["id"])
    if owners:  # an owner leaving moves work to their manager: their reports' accounts too
        owners |= {o.id for o in book.owners.values() if o.manager_id in owners}
        accounts |= {a.id for a in book.accounts.values() if a.owner_id in owners}
    out |= {
        c.id for c in book.contracts.values() if c.account_id in accounts or c.owner_id in owners
    }
    out.discard(None)  # type: ignore[arg-type]
    return out


def missing_parents(book: Book, contracts: set[str]) -> dict[str, set[str]]:
    """Accounts and owners the affected contracts name but the book lacks (a contract created
    since the last sync under a new account): read them too, so the contract can be planned."""
    need: dict[str, set[str]] = {"account": set(), "owner": set()}
    for cid in contracts:
        contract = book.contracts.get(cid)
        if contract is None:
            continue
        account = book.accounts.get(contract.account_id)
        if account is None:
            need["account"].add(contract.account_id)
        elif account.owner_id and account.owner_id not in book.owners:
            need["owner"].add(account.owner_id)
        if contract.owner_id and contract.owner_id not in book.owners:
            need["owner"].add(contract.owner_id)
    return need


def _grouped(
    records: Iterable[R], key: Callable[[R], str], within: Callable[[R], str] | None = None
) -> dict[str, tuple[R, ...]]:
    """Records by `key`, each group in `within` order (else in the order given). Tuples cut
    from one list sorted in place: the index holds a group per contract and per account, a
    list costs a third more, and a second sorted copy would raise the peak."""
    ordered = list(records)
    if within is not None:
        ordered.sort(key=within)
    ordered.sort(key=key)  # stable: keeps the `within` order inside each group
    return {k: tuple(group) for k, group in groupby(ordered, key)}


_ATTR = {
    "owner": "owners",
    "account": "accounts",
    "contact": "contacts",
    "contract": "contracts",
    "contract_line": "contract_lines",
    "renewal_opportunity": "renewals",
    "renewal_line": "renewal_lines",
    "task": "tasks",
}
