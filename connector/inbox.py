"""The webhook inbox in the state store: accepted events, stored once by (source, event id),
drained by the inbox worker, kept for the dedupe window so redeliveries have no effect."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update

from connector.state import StateStore, _upsert, inbox, now

_SQLITE_ADD = (
    "INSERT INTO inbox (source, event_id, object, record_id, payload, status, attempts, "
    "next_attempt_at, received_at) VALUES {} ON CONFLICT (source, event_id) DO NOTHING"
)
_SQLITE_ROW = "(?, ?, ?, ?, ?, 'pending', 0, ?, ?)"
#: Inbox row statuses: waiting to be processed, processed, nothing to do, given up.
PENDING, DONE, IGNORED, DEAD = "pending", "done", "ignored", "dead"


@dataclass(frozen=True, slots=True)
class InboxEvent:
    """One accepted event: where from, its id (the dedupe key), what it points at."""

    source: str  # hubspot | salesforce
    event_id: str
    object: str | None  # the CRM object it names, e.g. deal, Contract
    record_id: str | None  # that record's CRM id
    payload: dict[str, Any] = field(default_factory=dict, compare=False)


class Inbox:
    def __init__(self, store: StateStore, clock: Callable[[], datetime] = now):
        self.store, self.clock = store, clock
        self._local = threading.local()

    def add(self, events: Sequence[InboxEvent]) -> int:
        """Store events in one transaction; an id already stored is ignored.
        Returns how many were new."""
        if not events:
            return 0
        at = self.clock()
        if self.store.engine.dialect.name == "sqlite" and self.store.engine.url.database:
            return self._add_sqlite(events, at)
        stmt = _upsert(self.store.engine, inbox).on_conflict_do_nothing(
            index_elements=["source", "event_id"]
        )
        with self.store.engine.begin() as conn:
            return sum(
                conn.execute(
                    stmt,
                    {
                        "source": e.source,
                        "event_id": e.event_id,
                        "object": e.object,
                        "record_id": e.record_id,
                        "payload": e.payload,
                        "status": PENDING,
                        "attempts": 0,
                        "next_attempt_at": at,
                        "received_at": at,
                    },
                ).rowcount
                for e in events
            )

    def _add_sqlite(self, events: Sequence[InboxEvent], at: datetime) -> int:
        """The hot path of every webhook request: one executemany straight to sqlite3, values
        in the forms SQLAlchemy's JSON and DateTime types store and read back."""
        stamp = at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        values: list[Any] = []
        for e in events:
            values += (e.source, e.event_id, e.object, e.record_id, json.dumps(e.payload))
            values += (stamp, stamp)
        sql = _SQLITE_ADD.format(", ".join([_SQLITE_ROW] * len(events)))
        # one statement in autocommit: its own transaction, no pool or BEGIN/COMMIT round trips;
        # rowcount is the rows it inserted (copies of a stored id insert none)
        return self._raw().execute(sql, values).rowcount

    def _raw(self) -> sqlite3.Connection:
        """This thread's own sqlite3 connection to the state database (the request path)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.store.engine.url.database, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

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
