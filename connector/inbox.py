"""The webhook inbox, over the state store's deliveries and inbox repositories.

A request stores its delivery as it arrived (one row: the raw signed body) and is acknowledged.
The inbox worker expands deliveries into events, stored once by (source, event id), and
processes those; settled events are kept for the dedupe window so redeliveries have no effect."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from crm_renewals.connector.state import (
    PENDING,
    Delivery,
    DueEvent,
    InboxRow,
    Letter,
    StateStore,
    UnitOfWork,
    database_failure,
    now,
)
from crm_renewals.connector.state.store import Repositories

#: deliveries read into events in one transaction (up to 100 events each)
EXPAND_BATCH = 100
#: events stored in one unit of work, at most (a delivery's are never split): on SQLite the
#: request path waits while it holds the write lock, and the inbox worker runs at a lower CPU
#: priority, so on a busy machine a long hold is held longer still
STORE_EVENTS = 200
#: the longest event id, object and record id an inbox row holds (its columns' sizes)
EVENT_ID_CHARS, OBJECT_CHARS, RECORD_ID_CHARS = 200, 80, 80


def storable(text: str, max_chars: int | None = None) -> str | None:
    """Why the state store could not hold `text` in a column (a lone surrogate cannot be
    encoded, PostgreSQL refuses NUL, columns have a size), or None if it can."""
    if "\x00" in text:
        return "holds a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode (a lone surrogate)"
    if max_chars is not None and len(text) > max_chars:
        return f"is longer than {max_chars} characters"
    return None


@dataclass(frozen=True, slots=True)
class InboxEvent:
    """One accepted event: where from, its id (the dedupe key), what it points at."""

    source: str  # hubspot | salesforce | signals
    event_id: str
    object: str | None  # the CRM object it names, e.g. deal, Contract
    record_id: str | None  # that record's CRM id
    payload: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass
class Expanded:
    """What expanding stored deliveries did: how many it read, the events they held and how
    many of those were new (the others: copies, redeliveries) by source, and how many
    deliveries could not be read."""

    deliveries: int = 0
    events: Counter[str] = field(default_factory=Counter)
    new: Counter[str] = field(default_factory=Counter)
    unreadable: Counter[str] = field(default_factory=Counter)


class Inbox:
    """The inbox as its worker and routes use it: the deliveries and events repositories of
    the store, on one clock."""

    def __init__(self, store: StateStore, clock: Callable[[], datetime] = now):
        self.store, self.clock = store, clock

    def receive(self, source: str, body: bytes, *, wait: bool = True) -> None:
        """Store one delivery as it arrived (the caller has checked its signature and shape;
        events are read from it later). `wait=False`: raise InboxBusy instead of waiting for
        the database, so an event-loop server can wait elsewhere."""
        self.store.deliveries.receive(source, body, self.clock(), wait=wait)

    def checkpoint_due(self) -> bool:
        """Whether deliveries stored since the last checkpoint call for one (SQLite's log,
        which the request path never writes back on its own: see `checkpoint`)."""
        return self.store.deliveries.checkpoint_due()

    def checkpoint(self) -> None:
        """Write SQLite's log back into the database: slow enough to keep off the request
        path (renewals serve runs it in a native thread)."""
        self.store.deliveries.checkpoint()

    def expand(
        self,
        events_of: Callable[[str, bytes], Sequence[InboxEvent]],
        limit: int = EXPAND_BATCH,
    ) -> Expanded:
        """Turn up to `limit` stored deliveries, oldest first, into inbox events and delete
        them (a crash leaves them to read again: copies are ignored).
        SQLite (one writer a file): they are read from their own file and parsed first, then
        the events are stored in one short transaction on the state database, and the
        deliveries deleted after it (state/deliveries.py), so the request path, which writes
        only the deliveries file, waits for the worker as little as possible.
        PostgreSQL (several workers and hosts at once): one transaction claims the deliveries
        (FOR UPDATE SKIP LOCKED: the other workers pass over them), stores their events and
        deletes them, so no two workers read the same delivery.
        A delivery that cannot be read or stored goes to the dead letters with its body
        (WEBHOOK_UNREADABLE) and the others go on: when the batch cannot be stored, each
        delivery is stored on its own, so the one at fault is found and set aside."""
        if self.store.engine.dialect.name != "postgresql":
            stored = self.store.deliveries.oldest(limit)
            return self._expand(stored, events_of, self.store, self.store.begin)
        with self.store.begin() as uow:
            claimed = uow.deliveries.oldest(limit, claim=True)
            return self._expand(claimed, events_of, uow, partial(_savepoint, uow))

    def _expand(
        self,
        stored: list[Delivery],
        events_of: Callable[[str, bytes], Sequence[InboxEvent]],
        repos: Repositories,
        unit: Callable[[], AbstractContextManager[Repositories]],
    ) -> Expanded:
        """Expand `stored`: each store of events in a `unit` of work, the deliveries that
        cannot be read or stored set aside through `repos`."""
        out = Expanded(deliveries=len(stored))
        readable, unreadable = [], []
        for d in stored:
            try:
                events = events_of(d.source, d.body)
            except Exception as exc:  # noqa: BLE001 - reported, never blocks the others
                unreadable.append((d, exc))
                continue
            readable.append((d, [_row(e, d.received_at) for e in events]))
        for chunk in _chunks(readable, STORE_EVENTS):
            try:
                self._store(chunk, out, repos, unit)
            except Exception as exc:  # noqa: BLE001 - one of them cannot be stored: find which
                if database_failure(exc):
                    raise
                for delivery, rows in chunk:
                    try:
                        self._store([(delivery, rows)], out, repos, unit)
                    except Exception as one:  # noqa: BLE001 - set aside, the others go on
                        if database_failure(one):
                            raise
                        unreadable.append((delivery, one))
        for d, exc in sorted(unreadable, key=lambda pair: pair[0].id):
            self._unreadable(d, _describe(exc), repos)
            out.unreadable[d.source] += 1
        return out

    def _store(
        self,
        readable: list[tuple[Delivery, list[dict[str, Any]]]],
        out: Expanded,
        repos: Repositories,
        unit: Callable[[], AbstractContextManager[Repositories]],
    ) -> None:
        """Store the events of these deliveries and delete them: in one unit of work, or
        (deliveries in a file apart) once the unit stored the events; counted in `out` only
        once it ended well."""
        if not readable:
            return
        rows = [row for _, rs in readable for row in rs]
        ids, apart = [d.id for d, _ in readable], repos.deliveries.apart
        with unit() as uow:
            new = uow.inbox.add(rows)
            if not apart:
                uow.deliveries.delete(ids)
        if apart:
            repos.deliveries.delete(ids)
        for d, rs in readable:
            out.events[d.source] += len(rs)
        out.new.update(new)

    def _unreadable(self, d: Delivery, error: str, repos: Repositories) -> None:
        """Dead-letter a delivery (kept whole, so nothing is lost), then forget it."""
        letter: Letter = {
            "stage": "webhook",
            "kind": "delivery",
            "record_id": f"{d.source} delivery {d.id}",
            "contract_id": None,
            "field": None,
            "value": d.body.decode("utf-8", "replace"),
            "error_code": "WEBHOOK_UNREADABLE",
            "message": f"{d.source} delivery {d.id} could not be read or stored: {error}",
        }
        repos.dead_letters.add([letter], None)
        repos.deliveries.delete([d.id])

    def due(self, limit: int) -> list[DueEvent]:
        """Pending events whose next attempt is due, oldest first: what processing reads. It
        reads them holding the run lock and settles them before letting go, so however many
        workers and hosts share the database (the lock is the database's: an advisory lock on
        PostgreSQL), one takes up an event, once; planning reads the ledger, so runs must not
        overlap anyway, and no row lock (SKIP LOCKED) is needed here."""
        return self.store.inbox.due(self.clock(), limit)

    def claim(self, ids: Iterable[int]) -> None:
        """Take up these signal events: their ids become their own, so that a signal stored
        from now on makes a new event instead of joining one being processed."""
        self.store.inbox.claim(ids)

    def settle(self, ids: Iterable[int], status: str, run_id: int | None = None) -> None:
        self.store.inbox.settle(ids, status, self.clock(), run_id)

    def retry_later(self, row: DueEvent, error: str, delay_s: float) -> None:
        """Count a failed attempt; try again after `delay_s`."""
        self.store.inbox.retry_later(row.id, error, self.clock() + timedelta(seconds=delay_s))

    def give_up(self, row: DueEvent, error: str) -> None:
        self.store.inbox.give_up(row.id, error, self.clock())

    def depth(self) -> int:
        """Events waiting to be processed."""
        return self.store.inbox.pending()

    def waiting(self) -> int:
        """Deliveries stored and not yet expanded into events."""
        return self.store.deliveries.waiting()

    def oldest_wait(self) -> float:
        """Seconds the longest-waiting work has waited (0 if none): the oldest delivery not yet
        read into events, or the oldest pending event that is due and not yet processed."""
        at = self.clock()
        firsts = [self.store.deliveries.first_received(), self.store.inbox.first_due(at)]
        moments = [m for m in firsts if m is not None]
        return max(0.0, (at - min(moments)).total_seconds()) if moments else 0.0

    def counts(self) -> dict[tuple[str, str], int]:
        """(source, status) -> events."""
        return self.store.inbox.counts()

    def purge(self, keep_hours: int) -> int:
        """Forget settled events received before the dedupe window."""
        return self.store.inbox.purge(self.clock() - timedelta(hours=keep_hours))

    def all(self) -> list[InboxRow]:
        return self.store.inbox.all()


#: the source of the events stored signals make: one per account, object "account"
SIGNALS, SIGNALS_OBJECT = "signals", "account"


def signal_event(account: str) -> InboxEvent:
    """The piece of work new signals of an account make. Its id is the account's while it
    waits: a burst of signals for one account is one event (stored once by (source, event
    id)). The inbox worker renames it when it takes it up (`claim`), so a signal stored from
    then on is new work."""
    return InboxEvent(SIGNALS, f"{account}:pending", SIGNALS_OBJECT, account)


def event_row(e: InboxEvent, at: datetime) -> dict[str, Any]:
    """The inbox row of a new event received at `at` (due at once)."""
    return _row(e, at)


def _chunks(readable: list[tuple[Delivery, list]], most: int) -> Iterator[list]:
    """The deliveries in order, in runs holding at most `most` events (a larger one alone)."""
    chunk: list = []
    size = 0
    for delivery, rows in readable:
        if chunk and size + len(rows) > most:
            yield chunk
            chunk, size = [], 0
        chunk.append((delivery, rows))
        size += len(rows)
    if chunk:
        yield chunk


@contextmanager
def _savepoint(uow: UnitOfWork) -> Iterator[UnitOfWork]:
    """A unit of work inside `uow`'s transaction: what fails in it is undone, the rest kept."""
    with uow.connection.begin_nested():
        yield uow


def _describe(exc: Exception) -> str:
    """A one-line error for a dead letter: storable itself (escapes for what is not)."""
    text = f"{type(exc).__name__}: {exc}".splitlines()[0] if str(exc) else type(exc).__name__
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")[:500]


def _row(e: InboxEvent, at: datetime) -> dict[str, Any]:
    return {
        "source": e.source,
        "event_id": e.event_id,
        "object": e.object,
        "record_id": e.record_id,
        "payload": e.payload,
        "status": PENDING,
        "attempts": 0,
        "next_attempt_at": at,
        "received_at": at,
    }
