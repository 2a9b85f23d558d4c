"""Signals: usage and support measures per account, as they arrive (webhook or import)."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime

from sqlalchemy import select

from crm_renewals.connector.domain.signals import Signal
from crm_renewals.connector.state.database import Db, aware, now
from crm_renewals.connector.state.schema import signals


class SignalRepository:
    """The signals table."""

    def __init__(self, db: Db):
        self.db = db

    def add(self, items: Iterable[Signal]) -> int:
        """Store signals; a copy of one already stored (account, measure, moment) is ignored.
        Returns how many were new."""
        rows = [
            {
                "account": s.account,
                "measure": s.measure,
                "at": s.at,
                "value": s.value,
                "source": s.source,
                "received_at": now(),
            }
            for s in items
        ]
        if not rows:
            return 0
        stmt = self.db.upsert(signals).on_conflict_do_nothing()
        with self.db.write() as conn:  # RETURNING names only the new ones (rowcount: -1 on psycopg)
            return len(conn.execute(stmt.returning(signals.c.account), rows).all())

    def latest(
        self, as_of: datetime | None = None, accounts: Collection[str] | None = None
    ) -> dict[str, dict[str, Signal]]:
        """The newest value of each measure for each account (at or before `as_of`; of
        `accounts` only, if given)."""
        query = select(signals).order_by(signals.c.at)
        if as_of is not None:
            query = query.where(signals.c.at <= as_of)
        if accounts is not None:
            query = query.where(signals.c.account.in_(accounts))
        out: dict[str, dict[str, Signal]] = {}
        with self.db.read() as conn:
            for r in conn.execute(query):
                out.setdefault(r.account, {})[r.measure] = Signal(
                    r.account, r.measure, r.value, aware(r.at), r.source
                )
        return out
