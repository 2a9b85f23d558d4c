"""The synced book as the last run left it, loaded once per process and state database (one
per CRM connection) and kept until a run changes that database: `explain` and the console's
contract search read it instead of loading the whole mirror and ledger on every call (seconds
on a 10,000-contract book).

Only runs change the mirror and the ledger (sync, `deadletters retry`, webhook runs, signals
applied), and each run starts and finishes in the run history: the latest run's id, status
and end are the key. A run still going is the same key until it ends (its reads show after
it). Readers must not change what they get: a sync loads its own book (and the inbox
worker keeps its own, connector/services/refresh.py)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from crm_renewals.connector.config import AppConfig
from crm_renewals.connector.domain.book import Book
from crm_renewals.connector.domain.upsell import BookFacts, book_facts
from crm_renewals.connector.services.apply import Ledger
from crm_renewals.connector.services.gather import load_book
from crm_renewals.connector.state import StateStore


@dataclass
class SyncedBook:
    """The book and ledger as of `stamp`, and what is derived from them on first use."""

    stamp: tuple[Any, ...]
    book: Book
    ledger: Ledger
    _facts: dict[tuple, BookFacts] = field(default_factory=dict, repr=False)

    def facts(self, config: AppConfig) -> BookFacts:
        """The book-wide facts the planner reads (seats, medians): O(book), so kept."""
        seats = tuple(config.upsell.seat_expansion.seat_products)
        key = (tuple(config.renewals.active_statuses), seats)
        if key not in self._facts:
            self._facts[key] = book_facts(self.book, key[0], seats)
        return self._facts[key]


_lock = threading.Lock()
#: the kept book of each state database (by its name: one per connection), the least
#: recently used dropped past MAX_BOOKS (a process that opened many databases: tests)
_books: OrderedDict[str, SyncedBook] = OrderedDict()
MAX_BOOKS = 32


def stamp(store: StateStore) -> tuple[Any, ...]:
    """What changes whenever a run may have changed the mirror or the ledger."""
    latest = store.runs.list(1)
    run = latest[0] if latest else None
    if run is None:
        return (store.name, None)
    return (store.name, run.id, run.status, run.finished_at)


def synced_book(store: StateStore) -> SyncedBook:
    """The synced book of `store`'s database, loaded again only after a run changed it."""
    key = stamp(store)
    with _lock:  # one load at a time: a second caller waits for the first's book
        kept = _books.get(store.name)
        if kept is None or kept.stamp != key:
            _books.pop(store.name, None)  # the old book can go before the new one is built
            kept = _books[store.name] = SyncedBook(
                key, load_book(store), Ledger(store.ledger.load())
            )
            while len(_books) > MAX_BOOKS:
                _books.popitem(last=False)
        _books.move_to_end(store.name)
        return kept


def forget() -> None:
    """Drop the kept books (tests; a process that wants its memory back)."""
    with _lock:
        _books.clear()


def contract_value(book: Book, contract_id: str) -> Decimal:
    """The recurring value of the contract's term (its recurring lines), as the reports
    count it."""
    return sum(
        (ln.quantity * ln.unit_price for ln in book.lines_of(contract_id) if ln.recurring),
        Decimal(0),
    )
