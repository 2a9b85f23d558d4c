"""The sync's input: the mirror (each CRM record as last read, and its mapped form) and the
cursors (how far each kind has been read)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, TypedDict

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Row

from crm_renewals.connector.ports import Cursor, SourceRecord
from crm_renewals.connector.state.database import Db, aware, now
from crm_renewals.connector.state.schema import cursors, mirror


class MirrorRow(TypedDict):
    """A record to mirror, as the sync maps it."""

    kind: str
    id: str
    parent_id: str | None
    modified_at: Any
    deleted: bool
    raw: Any
    data: Any
    error: str | None


class MirrorRepository:
    """The mirror table."""

    def __init__(self, db: Db):
        self.db = db

    def save(self, rows: list[MirrorRow]) -> None:
        """Upsert mirror rows."""
        if not rows:
            return
        with self.db.write() as conn:
            stmt = self.db.upsert(mirror)
            cols = ("parent_id", "modified_at", "deleted", "raw", "data", "error")
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["kind", "id"], set_={c: stmt.excluded[c] for c in cols}
                ),
                rows,
            )

    def stream(self) -> Iterator[Row[tuple[str, str, str | None, bool, Any, str | None]]]:
        """(kind, id, parent_id, deleted, data, error) for every mirrored record, streamed
        (a large book is never held twice): plain result rows, no object built per row."""
        with self.db.read() as conn:
            result = conn.execution_options(yield_per=5000).execute(
                select(
                    mirror.c.kind,
                    mirror.c.id,
                    mirror.c.parent_id,
                    mirror.c.deleted,
                    mirror.c.data,
                    mirror.c.error,
                )
            )
            yield from result

    def records(self, kind: str) -> Iterator[SourceRecord]:
        """Every mirrored CRM record of `kind` as last read (raw), streamed: to re-map them
        with another mapping without calling the CRM (`renewals mappings preview`)."""
        query = select(mirror.c.id, mirror.c.modified_at, mirror.c.raw, mirror.c.deleted).where(
            mirror.c.kind == kind
        )
        with self.db.read() as conn:
            for rid, modified, raw, deleted in conn.execution_options(yield_per=5000).execute(
                query.order_by(mirror.c.id)
            ):
                yield SourceRecord(rid, aware(modified), raw, deleted)

    def get(self, kind: str, record_id: str) -> SourceRecord | None:
        """The CRM record as last read, to re-map it without calling the CRM."""
        with self.db.read() as conn:
            row = conn.execute(
                select(mirror.c.raw, mirror.c.modified_at, mirror.c.deleted).where(
                    mirror.c.kind == kind, mirror.c.id == record_id
                )
            ).first()
        return SourceRecord(record_id, aware(row[1]), row[0], row[2]) if row else None


class CursorRepository:
    """The cursors table: one (modified_at, record_id) per kind, only ever moved forward."""

    def __init__(self, db: Db):
        self.db = db

    def get(self, kind: str) -> Cursor | None:
        with self.db.read() as conn:
            row = conn.execute(
                select(cursors.c.modified_at, cursors.c.record_id).where(cursors.c.kind == kind)
            ).first()
        return Cursor(aware(row[0]), row[1]) if row else None

    def advance(self, new: dict[str, Cursor]) -> None:
        """Move cursors forward only (never back), all in one transaction."""
        with self.db.write() as conn:
            for kind, cur in new.items():
                old = conn.execute(
                    select(cursors.c.modified_at, cursors.c.record_id).where(cursors.c.kind == kind)
                ).first()
                if old and Cursor(aware(old[0]), old[1]) >= cur:
                    continue
                conn.execute(delete(cursors).where(cursors.c.kind == kind))
                conn.execute(
                    insert(cursors).values(
                        kind=kind,
                        modified_at=cur.modified_at,
                        record_id=cur.record_id,
                        updated_at=now(),
                    )
                )
