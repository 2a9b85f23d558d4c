"""The sync's input: the mirror (each CRM record as last read, and its mapped form) and the
cursors (how far each kind has been read)."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from datetime import datetime
from typing import Any, NotRequired, TypedDict

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Row

from crm_renewals.connector.ports import Cursor, SourceRecord
from crm_renewals.connector.state.database import Db, aware, now
from crm_renewals.connector.state.refs import refs_of
from crm_renewals.connector.state.schema import cursors, mirror

#: ids per IN list: well within SQLite's and PostgreSQL's limits on bound parameters
CHUNK = 500


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
    #: the run that read it (None: re-mapped outside a run)
    run_id: NotRequired[int | None]


class MirrorRepository:
    """The mirror table."""

    def __init__(self, db: Db):
        self.db = db

    def save(self, rows: list[MirrorRow]) -> None:
        """Upsert mirror rows."""
        if not rows:
            return
        rows = [_with_refs(r) for r in rows]
        with self.db.write() as conn:
            stmt = self.db.upsert(mirror)
            cols = ("parent_id", "modified_at", "deleted", "raw", "data", "error")
            cols += ("contract_id", "account_id", "run_id")
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
            yield from conn.execution_options(yield_per=5000).execute(_ROWS)

    def stream_accounts(
        self, accounts: Collection[str], contracts: Collection[str] = ()
    ) -> Iterator[Row[tuple[str, str, str | None, bool, Any, str | None]]]:
        """As `stream`, for the records of these accounts (the accounts, their contacts,
        contracts and tasks, and everything of those contracts), of these `contracts`
        besides, and every owner (who manages whom is the book's), each once."""
        contracts = set(contracts) | self.contracts_of(accounts)
        seen: set[tuple[str, str]] = set()
        with self.db.read() as conn:
            queries = [_ROWS.where(mirror.c.kind == "owner")]
            queries += [_ROWS.where(mirror.c.account_id.in_(c)) for c in chunks(accounts)]
            queries += [_ROWS.where(mirror.c.contract_id.in_(c)) for c in chunks(contracts)]
            for query in queries:
                for row in conn.execute(query):
                    if (row[0], row[1]) not in seen:
                        seen.add((row[0], row[1]))
                        yield row

    def mapped(self, kind: str, ids: Collection[str]) -> dict[str, tuple[tuple, int | None]]:
        """id -> ((deleted, data, error), the run that saved it) of these records of `kind`."""
        out: dict[str, tuple[tuple, int | None]] = {}
        query = select(
            mirror.c.id, mirror.c.deleted, mirror.c.data, mirror.c.error, mirror.c.run_id
        )
        with self.db.read() as conn:
            for chunk in chunks(ids):
                rows = conn.execute(query.where(mirror.c.kind == kind, mirror.c.id.in_(chunk)))
                out.update((rid, ((bool(d), data, err), run)) for rid, d, data, err, run in rows)
        return out

    def broken_contracts(self) -> set[str]:
        """Contracts a record of which failed to map (the book's `broken`)."""
        query = select(mirror.c.parent_id).where(
            mirror.c.error.is_not(None), mirror.c.parent_id.is_not(None)
        )
        with self.db.read() as conn:
            return set(conn.execute(query.distinct()).scalars())

    def contracts_of(self, accounts: Collection[str]) -> set[str]:
        """Ids of the mirrored contracts of these accounts."""
        return self._ids("contract", mirror.c.account_id, accounts, mirror.c.id)

    def accounts_of(self, contracts: Collection[str]) -> set[str]:
        """The accounts of these mirrored contracts."""
        return self._ids("contract", mirror.c.id, contracts, mirror.c.account_id)

    def owned_by(self, owners: Collection[str]) -> set[str]:
        """Accounts whose record or one of whose contracts names one of these owners."""
        return self.named_by(("account", "contract"), "owner_id", owners, mirror.c.account_id)

    def named_by(self, kinds, field: str, values: Collection[str], want=mirror.c.id) -> set[str]:
        """`want` of the records of `kinds` whose mapped `field` is one of `values`."""
        kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds)
        value = mirror.c.data[field].as_string()
        out: set[str] = set()
        with self.db.read() as conn:
            for chunk in chunks(values):
                query = select(want).where(mirror.c.kind.in_(kinds), value.in_(chunk))
                out.update(v for v in conn.execute(query).scalars() if v)
        return out

    def _ids(self, kind: str, by, values: Collection[str], want) -> set[str]:
        out: set[str] = set()
        with self.db.read() as conn:
            for chunk in chunks(values):
                query = select(want).where(mirror.c.kind == kind, by.in_(chunk))
                out.update(v for v in conn.execute(query).scalars() if v)
        return out

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


_ROWS = select(
    mirror.c.kind, mirror.c.id, mirror.c.parent_id, mirror.c.deleted, mirror.c.data, mirror.c.error
)


def chunks(values: Collection[str]) -> Iterator[list[str]]:
    """The values in sorted IN lists of CHUNK."""
    ordered = sorted(values)
    for i in range(0, len(ordered), CHUNK):
        yield ordered[i : i + CHUNK]


def _with_refs(row: MirrorRow) -> dict[str, Any]:
    contract, account = refs_of(row["kind"], row["id"], row["parent_id"], row["data"])
    return {**row, "contract_id": contract, "account_id": account, "run_id": row.get("run_id")}


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

    def read_at(self, kind: str) -> datetime | None:
        """When the run that last moved the cursors read `kind` (None: before this was kept)."""
        with self.db.read() as conn:
            value = conn.execute(select(cursors.c.read_at).where(cursors.c.kind == kind)).scalar()
        return aware(value) if value is not None else None

    def advance(self, new: dict[str, Cursor], read_at: datetime | None = None) -> None:
        """Move cursors forward only (never back), all in one transaction; `read_at`: when
        this run read (set on every kind's cursor, moved or not)."""
        with self.db.write() as conn:
            if read_at is not None:
                conn.execute(update(cursors).values(read_at=read_at))
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
                        read_at=read_at,
                    )
                )
