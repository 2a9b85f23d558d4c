"""The webhook inbox in the state store.

A request stores its delivery as it arrived (one row: the raw signed body) and is acknowledged.
The inbox worker expands deliveries into events, stored once by (source, event id), and
processes those; settled events are kept for the dedupe window so redeliveries have no effect."""

from __future__ import annotations

import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError

from connector.state import StateStore, _upsert, deliveries, inbox, now, sqlite_pragmas

_SQLITE_RECEIVE = "INSERT INTO deliveries (source, body, received_at) VALUES (?, ?, ?)"
#: Inbox row statuses: waiting to be processed, processed, nothing to do, given up.
PENDING, DONE, IGNORED, DEAD = "pending", "done", "ignored", "dead"
#: deliveries read into events in one transaction (up to 100 events each)
EXPAND_BATCH = 100
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

    source: str  # hubspot | salesforce
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


class InboxBusy(Exception):
    """`Inbox.receive(wait=False)` could not store the delivery without waiting."""


class Inbox:
    def __init__(self, store: StateStore, clock: Callable[[], datetime] = now):
        self.store, self.clock = store, clock
        #: per wait mode, one sqlite3 connection and its lock
        self._conns: dict[bool, sqlite3.Connection] = {}
        self._locks = {True: threading.Lock(), False: threading.Lock()}

    def receive(self, source: str, body: bytes, *, wait: bool = True) -> None:
        """Store one delivery as it arrived: the request path, so one autocommit statement
        (the caller has checked its signature and shape; events are read from it later).
        `wait=False`: raise InboxBusy instead of waiting for the database (SQLite's write lock
        held by another process), so an event-loop server can wait elsewhere."""
        at = self.clock()
        if self.store.engine.dialect.name == "sqlite" and self.store.engine.url.database:
            # SQLAlchemy's own DateTime storage form, so the worker reads it back as a datetime
            stamp = at.astimezone(UTC).isoformat(" ", "microseconds")[:26]
            try:
                with self._locks[wait]:
                    self._raw(wait).execute(_SQLITE_RECEIVE, (source, body, stamp))
            except sqlite3.OperationalError as exc:
                busy = "locked" in str(exc) or "busy" in str(exc)
                if wait or not busy:
                    raise
                raise InboxBusy(str(exc)) from None
            return
        if not wait:
            raise InboxBusy("only SQLite is tried without waiting")
        with self.store.engine.begin() as conn:
            conn.execute(insert(deliveries).values(source=source, body=body, received_at=at))

    def _raw(self, wait: bool) -> sqlite3.Connection:
        """One sqlite3 connection in autocommit (no pool, no BEGIN/COMMIT) per wait mode, used
        under its lock: one per process, whether requests run in threads or in greenlets (a
        greenlet-local connection, under gevent, would open one per request)."""
        if wait not in self._conns:
            conn = sqlite3.connect(
                self.store.engine.url.database,
                timeout=30 if wait else 0,
                isolation_level=None,
                check_same_thread=False,
            )
            sqlite_pragmas(conn, None)
            self._conns[wait] = conn
        return self._conns[wait]

    def expand(
        self,
        events_of: Callable[[str, bytes], Sequence[InboxEvent]],
        limit: int = EXPAND_BATCH,
    ) -> Expanded:
        """Turn up to `limit` stored deliveries, oldest first, into inbox events and delete
        them. They are read and parsed first; the events are stored and the deliveries deleted
        in one short transaction (a crash leaves them to read again: copies are ignored), so
        the request path waits for the database as little as possible.
        A delivery that cannot be read or stored goes to the dead letters with its body
        (WEBHOOK_UNREADABLE) and the others go on: when the batch cannot be stored, each
        delivery is stored on its own, so the one at fault is found and set aside."""
        out = Expanded()
        with self.store.engine.connect() as conn:
            stored = conn.execute(select(deliveries).order_by(deliveries.c.id).limit(limit)).all()
        out.deliveries = len(stored)
        readable, unreadable = [], []
        for d in stored:
            try:
                events = events_of(d.source, d.body)
            except Exception as exc:  # noqa: BLE001 - reported, never blocks the others
                unreadable.append((d, exc))
                continue
            readable.append((d, [_row(e, d.received_at) for e in events]))
        try:
            self._store(readable, out)
        except Exception as exc:  # noqa: BLE001 - one of them cannot be stored: find which
            if _not_the_delivery(exc):
                raise
            for delivery, rows in readable:
                try:
                    self._store([(delivery, rows)], out)
                except Exception as one:  # noqa: BLE001 - set aside, the others go on
                    if _not_the_delivery(one):
                        raise
                    unreadable.append((delivery, one))
        for d, exc in sorted(unreadable, key=lambda pair: pair[0].id):
            self._unreadable(d.id, d.source, d.body, _describe(exc))
            out.unreadable[d.source] += 1
        return out

    def _store(self, readable: list[tuple[Any, list[dict[str, Any]]]], out: Expanded) -> None:
        """Store the events of these deliveries and delete them, in one transaction; counted
        in `out` only once committed."""
        if not readable:
            return
        rows = [row for _, rs in readable for row in rs]
        events, new = Counter(), Counter()
        stmt = _upsert(self.store.engine, inbox).on_conflict_do_nothing(
            index_elements=["source", "event_id"]
        )
        with self.store.engine.begin() as conn:
            if rows:  # an id already stored is skipped: RETURNING names only the new ones
                new.update(
                    source for (source,) in conn.execute(stmt.returning(inbox.c.source), rows)
                )
            ids = [d.id for d, _ in readable]
            conn.execute(delete(deliveries).where(deliveries.c.id.in_(ids)))
        for d, rs in readable:
            events[d.source] += len(rs)
        out.events.update(events)
        out.new.update(new)

    def _unreadable(self, delivery_id: int, source: str, body: bytes, error: str) -> None:
        """Dead-letter a delivery (kept whole, so nothing is lost), then forget it."""
        letter = {
            "stage": "webhook",
            "kind": "delivery",
            "record_id": f"{source} delivery {delivery_id}",
            "contract_id": None,
            "field": None,
            "value": body.decode("utf-8", "replace"),
            "error_code": "WEBHOOK_UNREADABLE",
            "message": f"{source} delivery {delivery_id} could not be read or stored: {error}",
        }
        self.store.add_dead_letters([letter], None)
        with self.store.engine.begin() as conn:
            conn.execute(delete(deliveries).where(deliveries.c.id == delivery_id))

    def due(self, limit: int) -> list[dict[str, Any]]:
        """Pending events whose next attempt is due, oldest first: what processing reads."""
        c = inbox.c
        cols = [c.id, c.source, c.event_id, c.object, c.record_id, c.attempts]
        query = (
            select(*cols)
            .where(inbox.c.status == PENDING, inbox.c.next_attempt_at <= self.clock())
            .order_by(inbox.c.id)
            .limit(limit)
        )
        with self.store.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    def settle(self, ids: Iterable[int], status: str, run_id: int | None = None) -> None:
        ids = list(ids)
        if not ids:
            return
        with self.store.engine.begin() as conn:
            conn.execute(
                update(inbox)
                .where(inbox.c.id.in_(ids))
                .values(status=status, processed_at=self.clock(), run_id=run_id, last_error=None)
            )

    def retry_later(self, row: dict[str, Any], error: str, delay_s: float) -> None:
        """Count a failed attempt; try again after `delay_s`."""
        with self.store.engine.begin() as conn:
            conn.execute(
                update(inbox)
                .where(inbox.c.id == row["id"])
                .values(
                    attempts=inbox.c.attempts + 1,
                    next_attempt_at=self.clock() + timedelta(seconds=delay_s),
                    last_error=error[:2000],
                )
            )

    def give_up(self, row: dict[str, Any], error: str) -> None:
        with self.store.engine.begin() as conn:
            conn.execute(
                update(inbox)
                .where(inbox.c.id == row["id"])
                .values(
                    status=DEAD,
                    attempts=inbox.c.attempts + 1,
                    processed_at=self.clock(),
                    last_error=error[:2000],
                )
            )

    def depth(self) -> int:
        """Events waiting to be processed."""
        with self.store.engine.connect() as conn:
            return conn.execute(
                select(func.count()).select_from(inbox).where(inbox.c.status == PENDING)
            ).scalar_one()

    def waiting(self) -> int:
        """Deliveries stored and not yet expanded into events."""
        with self.store.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(deliveries)).scalar_one()

    def oldest_wait(self) -> float:
        """Seconds the longest-waiting work has waited (0 if none): the oldest delivery not yet
        read into events, or the oldest pending event that is due and not yet processed."""
        at = self.clock()
        due = (inbox.c.status == PENDING, inbox.c.next_attempt_at <= at)
        with self.store.engine.connect() as conn:
            firsts = [
                conn.execute(select(func.min(deliveries.c.received_at))).scalar(),
                conn.execute(select(func.min(inbox.c.next_attempt_at)).where(*due)).scalar(),
            ]
        moments = [m if m.tzinfo else m.replace(tzinfo=UTC) for m in firsts if m is not None]
        return max(0.0, (at - min(moments)).total_seconds()) if moments else 0.0

    def counts(self) -> dict[tuple[str, str], int]:
        """(source, status) -> events."""
        query = select(inbox.c.source, inbox.c.status, func.count()).group_by(
            inbox.c.source, inbox.c.status
        )
        with self.store.engine.connect() as conn:
            return {(src, st): n for src, st, n in conn.execute(query)}

    def purge(self, keep_hours: int) -> int:
        """Forget settled events received before the dedupe window."""
        cutoff = self.clock() - timedelta(hours=keep_hours)
        with self.store.engine.begin() as conn:
            return conn.execute(
                delete(inbox).where(inbox.c.status != PENDING, inbox.c.received_at < cutoff)
            ).rowcount

    def all(self) -> list[dict[str, Any]]:
        with self.store.engine.connect() as conn:
            return [dict(r) for r in conn.execute(select(inbox).order_by(inbox.c.id)).mappings()]


def _not_the_delivery(exc: Exception) -> bool:
    """Errors of the database itself (locked, gone, disconnected), not of what a delivery
    holds: the pass fails and is tried again, nothing is dead-lettered for them."""
    if isinstance(exc, OperationalError | DisconnectionError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


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
