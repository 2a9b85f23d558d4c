"""Notices: the alerts sent, one row per episode key, so that an alert goes out once however
many processes check (the key is claimed before sending) and however often they restart."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from crm_renewals.connector.state.database import Db, aware, now
from crm_renewals.connector.state.schema import notices


@dataclass(frozen=True, slots=True)
class Notice:
    """An alert's episode (the notices table's columns)."""

    key: str
    opened_at: datetime
    closed_at: datetime | None
    detail: dict[str, Any] | None

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


class NoticeRepository:
    """The notices table."""

    def __init__(self, db: Db):
        self.db = db

    def open(self, key: str, detail: dict[str, Any]) -> bool:
        """Open the episode `key` (new, or one that was closed); False if it is open already,
        here or in another process: only the caller that gets True sends."""
        at = now()
        try:
            with self.db.write() as conn:
                conn.execute(insert(notices).values(key=key, opened_at=at, detail=detail))
            return True
        except IntegrityError:
            pass
        with self.db.write() as conn:
            reopened = conn.execute(
                update(notices)
                .where(notices.c.key == key, notices.c.closed_at.is_not(None))
                .values(opened_at=at, closed_at=None, detail=detail)
            )
        return reopened.rowcount == 1

    def close(self, key: str) -> bool:
        """End the open episode `key` (the next crossing opens it again); False if none was."""
        notice = self.get(key)  # read first: most checks find nothing to close, and write nothing
        if notice is None or notice.closed_at is not None:
            return False
        with self.db.write() as conn:
            closed = conn.execute(
                update(notices)
                .where(notices.c.key == key, notices.c.closed_at.is_(None))
                .values(closed_at=now())
            )
        return closed.rowcount == 1

    def note(self, key: str, detail: dict[str, Any]) -> None:
        """Replace what the notice `key` records (how its sending went, a watermark)."""
        stmt = self.db.upsert(notices).values(key=key, opened_at=now(), detail=detail)
        with self.db.write() as conn:
            conn.execute(
                stmt.on_conflict_do_update(index_elements=["key"], set_={"detail": detail})
            )

    def get(self, key: str) -> Notice | None:
        with self.db.read() as conn:
            row = conn.execute(select(notices).where(notices.c.key == key)).first()
        return _notice(row) if row else None

    def last(self, prefix: str) -> Notice | None:
        """The notice opened last whose key starts with `prefix`."""
        query = (
            select(notices)
            .where(notices.c.key.startswith(prefix, autoescape=True))
            .order_by(notices.c.opened_at.desc(), notices.c.key.desc())
            .limit(1)
        )
        with self.db.read() as conn:
            row = conn.execute(query).first()
        return _notice(row) if row else None

    def list(self, limit: int = 20) -> list[Notice]:
        """The notices opened last, newest first."""
        query = select(notices).order_by(notices.c.opened_at.desc(), notices.c.key).limit(limit)
        with self.db.read() as conn:
            return [_notice(r) for r in conn.execute(query)]


def _notice(row) -> Notice:
    return Notice(row.key, aware(row.opened_at), aware(row.closed_at), row.detail)
