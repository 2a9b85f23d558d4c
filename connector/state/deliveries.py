"""Webhook deliveries as they arrived (the raw signed body), stored on the request path before
the acknowledgement; the inbox worker expands each into inbox events and deletes it."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, insert, select

from crm_renewals.connector.state.database import Db, aware, sqlite_pragmas
from crm_renewals.connector.state.schema import deliveries

if TYPE_CHECKING:  # imported when a delivery is first stored, not by every command
    import sqlite3

#: SQLite (WAL): the request path's connection checkpoints the log only past this many pages
#: (40 MB), not at the default 1,000. A checkpoint writes the log back and syncs the file, tens of
#: ms in which a gevent web worker answers nothing; the inbox worker's writes checkpoint at
#: 1,000 pages in its own process, without holding up writers, so the log stays short.
REQUEST_CHECKPOINT_PAGES = 10_000
_SQLITE_RECEIVE = "INSERT INTO deliveries (source, body, received_at) VALUES (?, ?, ?)"


class InboxBusy(Exception):
    """A delivery could not be stored without waiting (`receive(wait=False)`). `soon`: the
    database is held by another writer for now (SQLite), so trying again in a moment may do;
    else it is only ever tried waiting."""

    def __init__(self, reason: str, *, soon: bool = False):
        super().__init__(reason)
        self.soon = soon


@dataclass(frozen=True, slots=True)
class Delivery:
    """A stored delivery."""

    id: int
    source: str
    body: bytes
    received_at: datetime


class DeliveryRepository:
    """The deliveries table."""

    def __init__(self, db: Db):
        self.db = db
        #: per wait mode, one sqlite3 connection and its lock
        self._conns: dict[bool, sqlite3.Connection] = {}
        self._locks = {True: threading.Lock(), False: threading.Lock()}

    def receive(self, source: str, body: bytes, at: datetime, *, wait: bool = True) -> None:
        """Store one delivery: the request path, so one autocommit statement. `wait=False`:
        raise InboxBusy instead of waiting for the database (SQLite's write lock held by
        another process), so an event-loop server can wait elsewhere."""
        engine = self.db.engine
        if engine.dialect.name == "sqlite" and engine.url.database:
            import sqlite3

            # SQLAlchemy's own DateTime storage form, so the worker reads it back as a datetime
            stamp = at.astimezone(UTC).isoformat(" ", "microseconds")[:26]
            try:
                with self._locks[wait]:
                    self._raw(wait).execute(_SQLITE_RECEIVE, (source, body, stamp))
            except sqlite3.OperationalError as exc:
                busy = "locked" in str(exc) or "busy" in str(exc)
                if wait or not busy:
                    raise
                raise InboxBusy(str(exc), soon=True) from None
            return
        if not wait:
            raise InboxBusy("only SQLite is tried without waiting")
        with self.db.write() as conn:
            conn.execute(insert(deliveries).values(source=source, body=body, received_at=at))

    def _raw(self, wait: bool) -> sqlite3.Connection:
        """One sqlite3 connection in autocommit (no pool, no BEGIN/COMMIT) per wait mode, used
        under its lock: one per process, whether requests run in threads or in greenlets (a
        greenlet-local connection, under gevent, would open one per request)."""
        if wait not in self._conns:
            import sqlite3

            conn = sqlite3.connect(
                self.db.engine.url.database,
                timeout=30 if wait else 0,
                isolation_level=None,
                check_same_thread=False,
            )
            sqlite_pragmas(conn, None)
            conn.execute(f"PRAGMA wal_autocheckpoint={REQUEST_CHECKPOINT_PAGES}")
            self._conns[wait] = conn
        return self._conns[wait]

    def oldest(self, limit: int, *, claim: bool = False) -> list[Delivery]:
        """Up to `limit` stored deliveries, oldest first. `claim` (PostgreSQL, in a unit of
        work): locked until it ends, passing over those another transaction holds (FOR UPDATE
        SKIP LOCKED), so two inbox workers never read the same delivery."""
        query = select(deliveries).order_by(deliveries.c.id).limit(limit)
        if claim:
            query = query.with_for_update(skip_locked=True)
        with self.db.read() as conn:
            return [Delivery(*r) for r in conn.execute(query)]

    def delete(self, ids: list[int]) -> None:
        with self.db.write() as conn:
            conn.execute(delete(deliveries).where(deliveries.c.id.in_(ids)))

    def waiting(self) -> int:
        """Deliveries stored and not yet expanded into events."""
        with self.db.read() as conn:
            return conn.execute(select(func.count()).select_from(deliveries)).scalar_one()

    def first_received(self) -> datetime | None:
        """When the longest-waiting delivery arrived (None: none waits)."""
        with self.db.read() as conn:
            return aware(conn.execute(select(func.min(deliveries.c.received_at))).scalar())
