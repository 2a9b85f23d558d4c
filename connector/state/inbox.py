"""The webhook inbox: one row per accepted event, unique by (source, event id) so copies and
redeliveries are stored once; settled events are kept for the dedupe window."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import String, cast, delete, func, select, update

from crm_renewals.connector.state.database import Db, aware
from crm_renewals.connector.state.schema import inbox

#: Inbox row statuses: waiting to be processed, processed, nothing to do, given up.
PENDING, DONE, IGNORED, DEAD = "pending", "done", "ignored", "dead"


@dataclass(frozen=True, slots=True)
class DueEvent:
    """A pending event, as processing reads it."""

    id: int
    source: str
    event_id: str
    object: str | None
    record_id: str | None
    attempts: int


@dataclass(frozen=True, slots=True)
class InboxRow:
    """A stored event (the inbox table's columns, in order)."""

    id: int
    source: str
    event_id: str
    object: str | None
    record_id: str | None
    payload: dict[str, Any]
    status: str
    attempts: int
    next_attempt_at: datetime
    received_at: datetime
    processed_at: datetime | None
    run_id: int | None
    last_error: str | None

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


class InboxRepository:
    """The inbox table."""

    def __init__(self, db: Db):
        self.db = db

    def add(self, rows: list[dict[str, Any]]) -> Counter[str]:
        """Store events; one already stored (source, event id) is skipped. Returns how many
        were new, by source."""
        new: Counter[str] = Counter()
        if not rows:
            return new
        stmt = self.db.upsert(inbox).on_conflict_do_nothing(index_elements=["source", "event_id"])
        with self.db.write() as conn:  # RETURNING names only the new ones
            new.update(source for (source,) in conn.execute(stmt.returning(inbox.c.source), rows))
        return new

    def due(self, at: datetime, limit: int) -> list[DueEvent]:
        """Pending events whose next attempt is due at `at`, oldest first."""
        c = inbox.c
        query = (
            select(c.id, c.source, c.event_id, c.object, c.record_id, c.attempts)
            .where(c.status == PENDING, c.next_attempt_at <= at)
            .order_by(c.id)
            .limit(limit)
        )
        with self.db.read() as conn:
            return [DueEvent(*r) for r in conn.execute(query)]

    def claim(self, ids: Iterable[int]) -> None:
        """Give these events ids of their own: `<record id>:<row id>` (an event stored under
        a shared id, such as an account's pending signals, no longer takes in new copies)."""
        ids = list(ids)
        if not ids:
            return
        own = inbox.c.record_id + ":" + cast(inbox.c.id, String)
        with self.db.write() as conn:
            conn.execute(update(inbox).where(inbox.c.id.in_(ids)).values(event_id=own))

    def settle(self, ids: Iterable[int], status: str, at: datetime, run_id: int | None) -> None:
        ids = list(ids)
        if not ids:
            return
        with self.db.write() as conn:
            conn.execute(
                update(inbox)
                .where(inbox.c.id.in_(ids))
                .values(status=status, processed_at=at, run_id=run_id, last_error=None)
            )

    def retry_later(self, event_id: int, error: str, next_attempt_at: datetime) -> None:
        """Count a failed attempt; try again at `next_attempt_at`."""
        with self.db.write() as conn:
            conn.execute(
                update(inbox)
                .where(inbox.c.id == event_id)
                .values(
                    attempts=inbox.c.attempts + 1,
                    next_attempt_at=next_attempt_at,
                    last_error=error[:2000],
                )
            )

    def give_up(self, event_id: int, error: str, at: datetime) -> None:
        with self.db.write() as conn:
            conn.execute(
                update(inbox)
                .where(inbox.c.id == event_id)
                .values(
                    status=DEAD,
                    attempts=inbox.c.attempts + 1,
                    processed_at=at,
                    last_error=error[:2000],
                )
            )

    def pending(self) -> int:
        """Events waiting to be processed."""
        with self.db.read() as conn:
            return conn.execute(
                select(func.count()).select_from(inbox).where(inbox.c.status == PENDING)
            ).scalar_one()

    def first_due(self, at: datetime) -> datetime | None:
        """When the longest-waiting pending event became due (None: none is due)."""
        due = (inbox.c.status == PENDING, inbox.c.next_attempt_at <= at)
        with self.db.read() as conn:
            return aware(
                conn.execute(select(func.min(inbox.c.next_attempt_at)).where(*due)).scalar()
            )

    def counts(self) -> dict[tuple[str, str], int]:
        """(source, status) -> events."""
        query = select(inbox.c.source, inbox.c.status, func.count()).group_by(
            inbox.c.source, inbox.c.status
        )
        with self.db.read() as conn:
            return {(src, st): n for src, st, n in conn.execute(query)}

    def purge(self, received_before: datetime) -> int:
        """Forget settled events received before `received_before`."""
        with self.db.write() as conn:
            return conn.execute(
                delete(inbox).where(
                    inbox.c.status != PENDING, inbox.c.received_at < received_before
                )
            ).rowcount

    def all(self) -> list[InboxRow]:
        with self.db.read() as conn:
            return [InboxRow(*r) for r in conn.execute(select(inbox).order_by(inbox.c.id))]
