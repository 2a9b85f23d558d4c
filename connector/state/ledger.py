"""The write ledger: what the connector wrote to the CRM, by (kind, key), with the fields it
sent, so that a run writes only what changed and never writes the same thing twice."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, TypedDict

from sqlalchemy import and_, delete, or_, select

from crm_renewals.connector.state.database import Db, now
from crm_renewals.connector.state.mirror import chunks as _chunks
from crm_renewals.connector.state.schema import ledger


class LedgerRow(TypedDict):
    """One write as the ledger records it; fields None: the record was deleted."""

    kind: str
    key: str
    contract_id: str | None
    crm_id: str | None
    fields: dict[str, Any] | None


class LedgerRepository:
    """The ledger table."""

    def __init__(self, db: Db):
        self.db = db

    def load(self) -> dict[tuple[str, str], dict[str, Any]]:
        """(kind, key) -> the fields written, for every record written."""
        with self.db.read() as conn:
            return {
                (k, key): f
                for k, key, f in conn.execute(select(ledger.c.kind, ledger.c.key, ledger.c.fields))
            }

    def load_accounts(
        self, contracts: Collection[str], accounts: Collection[str]
    ) -> dict[tuple[str, str], dict[str, Any]]:
        """As `load`, for what planning these contracts and accounts reads: the contracts'
        writes, the accounts' health and their account tasks (keyed `<account id>:...`)."""
        cols = select(ledger.c.kind, ledger.c.key, ledger.c.fields)
        queries = [cols.where(ledger.c.contract_id.in_(c)) for c in _chunks(contracts)]
        for chunk in _chunks(accounts):
            queries.append(cols.where(ledger.c.kind == "account_health", ledger.c.key.in_(chunk)))
            # "<id>:" up to "<id>;" (the next character): a range of the primary key each
            task = ledger.c.kind == "task"
            ranges = [and_(task, ledger.c.key >= f"{a}:", ledger.c.key < f"{a};") for a in chunk]
            queries.append(cols.where(or_(*ranges)))
        out: dict[tuple[str, str], dict[str, Any]] = {}
        with self.db.read() as conn:
            for query in queries:
                out.update(((k, key), f) for k, key, f in conn.execute(query))
        return out

    def keys(self, kind: str) -> set[str]:
        """Keys of what the connector wrote of one kind."""
        with self.db.read() as conn:
            return set(conn.execute(select(ledger.c.key).where(ledger.c.kind == kind)).scalars())

    def record(self, rows: list[LedgerRow], run_id: int) -> None:
        """Upsert ledger rows written by `run_id`; a row whose fields are None is removed."""
        if not rows:
            return
        with self.db.write() as conn:
            for r in rows:
                if r["fields"] is None:
                    conn.execute(
                        delete(ledger).where(ledger.c.kind == r["kind"], ledger.c.key == r["key"])
                    )
            keep = [
                {**r, "run_id": run_id, "written_at": now()}
                for r in rows
                if r["fields"] is not None
            ]
            if keep:
                stmt = self.db.upsert(ledger)
                conn.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["kind", "key"],
                        set_={
                            c: stmt.excluded[c]
                            for c in ("contract_id", "crm_id", "fields", "run_id", "written_at")
                        },
                    ),
                    keep,
                )
