"""The incremental planning index: per account, the first day its plans may change with no
change to its records (connector/domain/planning/due.py), and what planning keeps between runs
(plan_meta): the book-wide upsell facts of the last whole-book run, and when signals were last
planned."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from sqlalchemy import delete, func, select

from crm_renewals.connector.state.database import Db
from crm_renewals.connector.state.mirror import chunks
from crm_renewals.connector.state.schema import plan_due, plan_meta, signals

#: rows per insert statement
BATCH = 5000


class PlanIndexRepository:
    def __init__(self, db: Db):
        self.db = db

    def due(self, as_of: date) -> set[str]:
        """Accounts due on or before `as_of`."""
        with self.db.read() as conn:
            query = select(plan_due.c.account_id).where(plan_due.c.due_on <= as_of.isoformat())
            return set(conn.execute(query).scalars())

    def size(self) -> int:
        with self.db.read() as conn:
            return conn.execute(select(func.count()).select_from(plan_due)).scalar() or 0

    def save(self, due: Mapping[str, date | None], *, whole: bool) -> None:
        """Each account's next due day (None: none); `whole`: these are every account."""
        rows = [{"account_id": a, "due_on": d.isoformat() if d else None} for a, d in due.items()]
        with self.db.write() as conn:
            if whole:
                conn.execute(delete(plan_due))
            else:
                for i in range(0, len(rows), 500):
                    chunk = [r["account_id"] for r in rows[i : i + 500]]
                    conn.execute(delete(plan_due).where(plan_due.c.account_id.in_(chunk)))
            for i in range(0, len(rows), BATCH):
                conn.execute(plan_due.insert(), rows[i : i + BATCH])

    def bring_forward(self, due: Mapping[str, date | None]) -> None:
        """Each account's due day the earlier of its own and this one (a run that planned
        some of an account's contracts knows when those fall due, not the others)."""
        with self.db.read() as conn:
            have = {
                a: d
                for chunk in chunks(due)
                for a, d in conn.execute(
                    select(plan_due.c.account_id, plan_due.c.due_on).where(
                        plan_due.c.account_id.in_(chunk)
                    )
                )
            }
        merged = {}
        for account, day in due.items():
            old = have.get(account)
            days = [d for d in (day, date.fromisoformat(old) if old else None) if d]
            merged[account] = min(days) if days else None
        self.save(merged, whole=False)

    def meta(self, name: str) -> Any:
        with self.db.read() as conn:
            return conn.execute(select(plan_meta.c.value).where(plan_meta.c.name == name)).scalar()

    def set_meta(self, values: Mapping[str, Any]) -> None:
        with self.db.write() as conn:
            for name, value in values.items():
                conn.execute(delete(plan_meta).where(plan_meta.c.name == name))
                conn.execute(plan_meta.insert().values(name=name, value=value))

    def signalled_since(self, moment: datetime) -> set[str]:
        """Accounts with a signal received after `moment`."""
        with self.db.read() as conn:
            query = select(signals.c.account).where(signals.c.received_at > moment).distinct()
            return set(conn.execute(query).scalars())
