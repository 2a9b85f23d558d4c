"""What an incremental run plans: the accounts whose plans may have changed since the last
run, found through indexes, never by reading the whole book.

- the records it read (each names its contract and account; a user names the accounts and
  contracts it owns, and those of the users it manages);
- the accounts the planning index says are due today (connector/domain/planning/due.py);
- the accounts with signals received since signals were last planned;
- the contracts with writes the CRM refused (sent again, or held, as a whole-book run would).

Planning takes whole accounts (an account's tasks and journey read all its contracts). When
the scope is a large share of the book, or the index has never been built (first run, a
database from before it), the run plans the whole book instead: reading the whole mirror
once is then cheaper than reading it account by account.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from crm_renewals.connector.config import AppConfig
from crm_renewals.connector.domain.book import Book
from crm_renewals.connector.domain.planning.due import health_due, next_due
from crm_renewals.connector.domain.planning.planner import Planner, account_of
from crm_renewals.connector.domain.planning.values import ContractPlan
from crm_renewals.connector.domain.upsell import BookFacts, book_facts, book_wide, with_book_wide
from crm_renewals.connector.services.context import Context
from crm_renewals.connector.state import StateStore
from crm_renewals.connector.state.refs import refs_of

#: beyond this share of the indexed accounts (and this many), the run plans the whole book
WHOLE_SHARE, WHOLE_MIN = 0.3, 500
#: plan_meta entries: when the index was last built by a whole-book run (and the book-wide
#: upsell facts it computed), and how far signals have been planned (a receipt time)
BUILT, SIGNALS = "built", "signals_through"


@dataclass
class Touched:
    """What the records an incremental run read name: contracts, accounts, users."""

    contracts: set[str] = field(default_factory=set)
    accounts: set[str] = field(default_factory=set)
    owners: set[str] = field(default_factory=set)

    def add(self, rows: list[dict[str, Any]], before: dict[str, tuple] | None = None) -> None:
        """Learn what these mirror rows name; a row mapping as it did `before` (id ->
        (deleted, data, error) as mirrored) changes no plan: a record re-read, or our own
        write coming back in a field no mapping reads."""
        before = before or {}
        for row in rows:
            kind, rid, was = row["kind"], row["id"], before.get(row["id"])
            if was == (row["deleted"], row["data"], row["error"]):
                continue
            if kind == "owner":
                self.owners.add(rid)
                continue
            # where it belongs now, and where it belonged (a contract moved to another account
            # changes the plans of both)
            for data in (row["data"], was[1] if was else None):
                contract, account = refs_of(kind, rid, row["parent_id"], data)
                self.contracts.update([contract] if contract else [])
                self.accounts.update([account] if account else [])


@dataclass
class Scope:
    """The accounts a run plans (every contract of each), the contracts its reasons named
    (loaded too: one the mirror knows no account of has no other way in), and how many
    accounts each reason brought in."""

    accounts: set[str]
    contracts: set[str]
    why: Counter[str]

    def to_json(self) -> dict[str, int]:
        """The run report's `scope`: accounts planned, and how many each reason brought."""
        return {"accounts": len(self.accounts), **self.why}


def scope(store: StateStore, touched: Touched, as_of: date) -> Scope | None:
    """The run's scope, or None: plan the whole book."""
    index = store.plan_index
    if not index.meta(BUILT):
        return None
    why: Counter[str] = Counter()
    accounts = accounts_named(store, touched)
    why["changed"] = len(accounts)
    # writes the CRM refused are planned again each run (held, or sent once their cause is
    # fixed: services.apply)
    refused = store.dead_letters.refused_writes()
    retried = {d.contract_id for d in refused.values() if d.contract_id}
    contracts = touched.contracts | retried
    held = {key for kind, key in refused if kind == "account_health"}
    if retried:
        held |= store.mirror.accounts_of(retried)
    for reason, found in (
        ("refused", held),
        ("due", index.due(as_of)),
        ("signals", _signalled(store)),
    ):
        why[reason] = len(found - accounts)
        accounts |= found
    if len(accounts) > max(WHOLE_MIN, WHOLE_SHARE * index.size()):
        return None
    return Scope(accounts, contracts, why)


class Dues:
    """Each planned account's next due day, learnt from its contracts' plans as they pass."""

    def __init__(self, planner: Planner, book: Book):
        self.planner, self.book = planner, book
        self.by_account: dict[str, date | None] = {}

    def track(self, plans: Iterable[ContractPlan]) -> Iterator[ContractPlan]:
        for plan in plans:
            account = account_of(self.book, plan.contract_id)
            if account:
                self._merge(account, next_due(self.planner, self.book, plan))
            yield plan

    def _merge(self, account: str, day: date | None) -> None:
        have = self.by_account.get(account)
        self.by_account[account] = min(have, day) if have and day else have or day

    def finish(self, accounts: Iterable[str]) -> dict[str, date | None]:
        """Every planned account's next due day, its health's included."""
        p = self.planner
        for account in accounts:
            self._merge(account, health_due(p.scorecard, p.health.get(account), p.as_of))
        return self.by_account


def record_dues(
    ctx: Context,
    dues: Dues,
    scope: Scope | None,
    read_at: datetime | None,
    *,
    some: bool = False,
) -> None:
    """The index after a run: its accounts' next due days (every account's, and the book-wide
    upsell facts, after a whole-book run), and signals planned up to its start. `some`: the
    run planned some contracts of its accounts (a webhook run's), so their days only come
    forward."""
    index = ctx.store.plan_index
    accounts = scope.accounts if scope else {*dues.book.accounts, *dues.by_account}
    if some:
        index.bring_forward(dues.finish(accounts))
    else:
        index.save(dues.finish(accounts), whole=scope is None)
    meta: dict[str, Any] = {}
    if scope is None:
        facts = dues.planner.facts or BookFacts()
        meta[BUILT] = {"as_of": dues.planner.as_of.isoformat(), "facts": book_wide(facts)}
    if read_at is not None:
        meta[SIGNALS] = read_at.isoformat()
    index.set_meta(meta)


def scoped_facts(cfg: AppConfig, book: Book, stored: dict | None) -> BookFacts:
    """The upsell facts of an incremental run: seats and products owned from the accounts it
    loaded (each account's own), peers and prices from the last whole-book run."""
    seat_products = cfg.upsell.seat_expansion.seat_products
    return with_book_wide(book_facts(book, cfg.renewals.active_statuses, seat_products), stored)


def accounts_named(store: StateStore, touched: Touched) -> set[str]:
    """The accounts of what these records name: theirs, their contracts', and those a user
    owns (or a user they manage owns: an owner leaving moves work to their manager)."""
    accounts = touched.accounts | store.mirror.accounts_of(touched.contracts)
    if touched.owners:
        owners = touched.owners | store.mirror.named_by("owner", "manager_id", touched.owners)
        accounts |= store.mirror.owned_by(owners)
    return accounts


def _signalled(store: StateStore) -> set[str]:
    through = store.plan_index.meta(SIGNALS)
    if not through:
        return set()
    return store.plan_index.signalled_since(datetime.fromisoformat(through))
