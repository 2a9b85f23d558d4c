"""History: each account's health score by day and its segment by period, kept so trends
and migrations between segments can be told."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, and_, func, select

from crm_renewals.connector.state.database import Db, now
from crm_renewals.connector.state.schema import health_history, segment_history


@dataclass(frozen=True, slots=True)
class HealthRecord:
    """An account's recorded health on one day (the health_history table's columns)."""

    account: str
    as_of: str
    score: int | None
    grade: str | None
    measures_used: int
    low_confidence: bool
    trend: str | None
    drivers: list[Any]
    values: dict[str, Any]
    recorded_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


class HistoryRepository:
    """The health_history and segment_history tables."""

    def __init__(self, db: Db):
        self.db = db

    def save_health(self, rows: list[dict[str, Any]]) -> None:
        """One row per account and day (as_of); a re-run the same day replaces that day's."""
        self._replace(health_history, ["account", "as_of"], rows)

    def health_before(
        self, day: str, accounts: Collection[str] | None = None
    ) -> dict[str, HealthRecord]:
        """Each account's last recorded health strictly before `day` (ISO date; of `accounts`
        only, if given)."""
        condition = health_history.c.as_of < day
        if accounts is not None:
            condition = and_(condition, health_history.c.account.in_(accounts))
        return self._latest(condition)

    def health_on(self, day: str) -> dict[str, HealthRecord]:
        """Each account's last recorded health on or before `day` (ISO date)."""
        return self._latest(health_history.c.as_of <= day)

    def grades_on(self, day: str) -> dict[str | None, int]:
        """Accounts by the grade of their last recorded health on or before `day` (None: scored
        without a grade), counted in the database (no row loaded per account)."""
        table = health_history
        query = select(table.c.grade, func.count()).join(*_newest_on(day)).group_by(table.c.grade)
        with self.db.read() as conn:
            return dict(conn.execute(query).all())

    def account_grades_on(self, day: str) -> dict[str, str]:
        """account -> the grade of its last recorded health on or before `day` (graded only;
        no drivers or values read: what the reports need)."""
        table = health_history
        query = select(table.c.account, table.c.grade).join(*_newest_on(day))
        with self.db.read() as conn:
            return {a: g for a, g in conn.execute(query.where(table.c.grade.is_not(None)))}

    def last_day(self) -> str | None:
        """The newest day a health was recorded."""
        with self.db.read() as conn:
            return conn.execute(select(func.max(health_history.c.as_of))).scalar()

    def save_segments(self, rows: list[dict[str, Any]]) -> None:
        """One row per account and period (period_start); a re-run replaces the period's."""
        self._replace(segment_history, ["account", "period_start"], rows)

    def segments_in(self, period_start: str) -> dict[str, str]:
        """account -> segment in the period starting `period_start` (ISO date)."""
        with self.db.read() as conn:
            return dict(
                conn.execute(
                    select(segment_history.c.account, segment_history.c.segment).where(
                        segment_history.c.period_start == period_start
                    )
                ).all()
            )

    def segment_periods(self) -> list[str]:
        with self.db.read() as conn:
            query = select(segment_history.c.period_start).distinct().order_by("period_start")
            return [r[0] for r in conn.execute(query)]

    def recorded_periods(self, starts: Iterable[str]) -> set[str]:
        """Which of these period starts have segment history (a lookup each, no scan of it)."""
        out = set()
        with self.db.read() as conn:
            for start in starts:
                query = select(segment_history.c.account).where(
                    segment_history.c.period_start == start
                )
                if conn.execute(query.limit(1)).first() is not None:
                    out.add(start)
        return out

    def _replace(self, table: Table, keys: list[str], rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        rows = [{**r, "recorded_at": now()} for r in rows]
        stmt = self.db.upsert(table)
        cols = [c.name for c in table.columns if c.name not in keys]
        with self.db.write() as conn:
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=keys, set_={c: stmt.excluded[c] for c in cols}
                ),
                rows,
            )

    def _latest(self, condition) -> dict[str, HealthRecord]:
        """Each account's newest health meeting `condition` (one row each, however long the
        history)."""
        table = health_history
        newest = (
            select(table.c.account, func.max(table.c.as_of).label("as_of"))
            .where(condition)
            .group_by(table.c.account)
            .subquery()
        )
        query = select(table).join(
            newest, and_(table.c.account == newest.c.account, table.c.as_of == newest.c.as_of)
        )
        with self.db.read() as conn:
            return {r.account: HealthRecord(*r) for r in conn.execute(query)}


def _newest_on(day: str):
    """The join (subquery, on-clause) that keeps each account's newest health row on or
    before `day`."""
    table = health_history
    newest = (
        select(table.c.account, func.max(table.c.as_of).label("as_of"))
        .where(table.c.as_of <= day)
        .group_by(table.c.account)
        .subquery()
    )
    return newest, and_(table.c.account == newest.c.account, table.c.as_of == newest.c.as_of)
