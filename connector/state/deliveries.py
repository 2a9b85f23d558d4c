"""Webhook deliveries as they arrived (the raw signed body), stored on the request path before
the acknowledgement; the inbox worker expands each into inbox events and deletes it.

SQLite has one writer a file. A state database in a SQLite file keeps its deliveries in a file
of their own beside it (`state.db` -> `state-deliveries.db`, see `deliveries_path`), which only
the request path writes, and the inbox worker reads and deletes from: acknowledging a delivery
never waits for the worker's writes to the state (storing events, settling them), which it
does at a lower CPU priority and so can hold for long on a busy machine. The two files are not
one transaction: the worker deletes deliveries once their events are stored, and a crash in
between only reads them again (copies of events are ignored). PostgreSQL keeps them in the
state database's `deliveries` table, claimed and deleted in the transaction that stores their
events."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, insert, select

from crm_renewals.connector.state.database import Db, aware, open_engine, sqlite_pragmas
from crm_renewals.connector.state.schema import deliveries

if TYPE_CHECKING:  # imported when a delivery is first stored, not by every command
    import sqlite3

    from sqlalchemy.engine import Engine

#: SQLite (WAL): the request path's connections checkpoint the log on their own commit only past
#: this many pages (40 MB), not at SQLite's default 1,000: a checkpoint writes the log back and
#: syncs the file, milliseconds to tens of ms in which a gevent web worker answers nothing.
#: Instead, once CHECKPOINT_BYTES were stored by this process, `checkpoint_due` says so and the
#: server runs `checkpoint` off the request path (renewals serve: in a native thread). Under a
#: steady stream of deliveries those never find the log fully copied with no write since, and
#: only then does the next write start the log over; the commit's own checkpoint past 40 MB
#: (little left to copy by then) is what bounds the file.
REQUEST_CHECKPOINT_PAGES = 10_000
#: about SQLite's default of 1,000 pages (4 KiB each) of log between checkpoints
CHECKPOINT_BYTES = 4_000_000
_SQLITE_RECEIVE = "INSERT INTO deliveries (source, body, received_at) VALUES (?, ?, ?)"
#: the deliveries file's one table: the state database's `deliveries`, its ids never used twice
#: (AUTOINCREMENT), as a dead letter names its delivery by id
_SQLITE_TABLE = (
    "CREATE TABLE IF NOT EXISTS deliveries (id INTEGER PRIMARY KEY AUTOINCREMENT, "
    "source VARCHAR(20) NOT NULL, body BLOB NOT NULL, received_at DATETIME NOT NULL)"
)


def deliveries_path(state: Path) -> Path:
    """The file of a SQLite state database's deliveries: beside it, `state.db` ->
    `state-deliveries.db`."""
    return state.with_name(f"{state.stem}-deliveries{state.suffix}")


def deliveries_file(state: Path) -> Db:
    """The deliveries file of a SQLite state database, created if missing."""
    path = deliveries_path(state)
    engine = open_engine(f"sqlite:///{path}", str(path))
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(_SQLITE_TABLE)
    except BaseException:
        engine.dispose()
        raise
    return Db(engine)


def adopt(state: Engine, own: Db) -> int:
    """Move the deliveries a SQLite state database still holds in its own table (stored by an
    earlier release, or by it while this one started) into its deliveries file, oldest first;
    how many. Copied, then deleted: a crash in between leaves copies, which are ignored."""
    with state.connect() as conn:
        rows = conn.execute(select(deliveries).order_by(deliveries.c.id)).all()
    if not rows:
        return 0
    with own.write() as conn:
        conn.execute(
            insert(deliveries),
            [{"source": r.source, "body": r.body, "received_at": r.received_at} for r in rows],
        )
    with state.begin() as conn:
        conn.execute(delete(deliveries).where(deliveries.c.id <= rows[-1].id))
    return len(rows)


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
    """The deliveries table. `apart`: in a file of its own (SQLite), so never part of a unit
    of work on the state database: what the unit stores from deliveries is stored (committed)
    before they are deleted."""

    def __init__(self, db: Db, *, apart: bool = False):
        self.db, self.apart = db, apart
        #: per use (waiting, not waiting, checkpointing), one sqlite3 connection and its lock
        self._conns: dict[str, sqlite3.Connection] = {}
        self._locks = {use: threading.Lock() for use in ("wait", "no_wait", "checkpoint")}
        #: bytes stored on the request path since the last checkpoint was asked for
        self._unchecked = 0

    def receive(self, source: str, body: bytes, at: datetime, *, wait: bool = True) -> None:
        """Store one delivery: the request path, so one autocommit statement. `wait=False`:
        raise InboxBusy instead of waiting for the database (SQLite's write lock held by
        another process), so an event-loop server can wait elsewhere."""
        engine = self.db.engine
        if engine.dialect.name == "sqlite" and engine.url.database:
            import sqlite3

            # SQLAlchemy's own DateTime storage form, so the worker reads it back as a datetime
            stamp = at.astimezone(UTC).isoformat(" ", "microseconds")[:26]
            use = "wait" if wait else "no_wait"
            try:
                with self._locks[use]:
                    self._raw(use).execute(_SQLITE_RECEIVE, (source, body, stamp))
            except sqlite3.OperationalError as exc:
                busy = "locked" in str(exc) or "busy" in str(exc)
                if wait or not busy:
                    raise
                raise InboxBusy(str(exc), soon=True) from None
            self._unchecked += len(body)
            return
        if not wait:
            raise InboxBusy("only SQLite is tried without waiting")
        with self.db.write() as conn:
            conn.execute(insert(deliveries).values(source=source, body=body, received_at=at))

    def checkpoint_due(self) -> bool:
        """Whether the request path stored enough since the last checkpoint to run one (SQLite:
        its own commits never do); asking says yes once, until that much is stored again."""
        if self._unchecked < CHECKPOINT_BYTES:
            return False
        self._unchecked = 0
        return True

    def checkpoint(self) -> None:
        """Write the log back into the database (PASSIVE: as far as readers allow, never waiting
        for a writer), so it does not grow while only the request path writes."""
        with self._locks["checkpoint"]:
            self._raw("checkpoint").execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def _raw(self, use: str) -> sqlite3.Connection:
        """One sqlite3 connection in autocommit (no pool, no BEGIN/COMMIT) per use, used under
        its lock: one per process, whether requests run in threads or in greenlets (a
        greenlet-local connection, under gevent, would open one per request). The one that
        does not wait gives up at once when another process holds the write lock."""
        if use not in self._conns:
            import sqlite3

            conn = sqlite3.connect(
                self.db.engine.url.database,
                timeout=0 if use == "no_wait" else 30,
                isolation_level=None,
                check_same_thread=False,
            )
            sqlite_pragmas(conn, None)
            conn.execute(f"PRAGMA wal_autocheckpoint={REQUEST_CHECKPOINT_PAGES}")
            self._conns[use] = conn
        return self._conns[use]

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
