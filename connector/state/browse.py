"""Read-only queries the console's tables page through, joined, filtered, sorted and paged in
the database: each account's latest health with its name and owner (the health history and
the mirror), and contracts named by number and account. A page never loads the whole book."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, and_, case, cast, func, literal, select, tuple_
from sqlalchemy.sql import ColumnElement

from crm_renewals.connector.state.database import Db
from crm_renewals.connector.state.schema import health_history, mirror

#: health grades, worst first; "grey": no grade (no measure known)
GRADE_ORDER = ("red", "yellow", "green")
#: what the health table sorts by (a leading "-": descending)
HEALTH_SORTS = ("grade", "score", "trend", "name")


@dataclass(frozen=True, slots=True)
class HealthRow:
    """An account's latest recorded health, named."""

    account_id: str
    account_name: str | None
    owner_id: str | None
    owner_name: str | None
    as_of: str
    score: int | None
    grade: str | None
    trend: str | None
    measures_used: int
    low_confidence: bool
    drivers: list[Any]

    @property
    def delta(self) -> int | None:
        """The trend as a number ("down 12" -> -12; "new" -> None), for sorting."""
        word, _, points = (self.trend or "").partition(" ")
        if word == "flat":
            return 0
        if word in ("up", "down") and points.isdigit():
            return int(points) if word == "up" else -int(points)
        return None


class BrowseRepository:
    """Queries over the mirror and the health history (they write nothing)."""

    def __init__(self, db: Db):
        self.db = db

    def health(
        self, grade: str | None, query: str, sort: str, limit: int, offset: int
    ) -> tuple[list[HealthRow], int, dict[str, int]]:
        """One page of accounts' latest health: of `grade` ("grey": none) if given, whose
        name or id holds `query`, sorted by `sort` (HEALTH_SORTS, "-" for descending); how
        many match; and how many of those are of each grade (whatever `grade`). Names are
        read from the mirror only where the query or the sort needs them, else for the page."""
        named = bool(query) or sort.lstrip("-") == "name"
        table = _latest_health(named)
        where = []
        if query:
            needle = query.lower()
            where.append(
                func.lower(table.c.account_name).contains(needle, autoescape=True)
                | func.lower(table.c.account).contains(needle, autoescape=True)
            )
        graded = [*where, _grade_is(table.c.grade, grade)] if grade else where
        page = (
            select(table.c.account, table.c.as_of)
            .where(*graded)
            .order_by(*_health_order(table, sort))
            .limit(limit)
            .offset(offset)
        )
        with self.db.read() as conn:
            by_grade = select(table.c.grade, func.count()).where(*where).group_by(table.c.grade)
            mix = {g or "grey": n for g, n in conn.execute(by_grade)}
            total = mix.get(grade, 0) if grade else sum(mix.values())
            keys = [tuple(r) for r in conn.execute(page)]
            found = {(r.account, r.as_of): r for r in conn.execute(_named_rows(keys))}
        return [_health_row(found[k]) for k in keys if k in found], total, mix

    def contract_labels(self, ids: Collection[str]) -> dict[str, tuple[str | None, str | None]]:
        """Contract id -> (its number, its account's name), for the contracts the mirror
        holds mapped."""
        contract, account = mirror.alias("c"), mirror.alias("a")
        account_id = contract.c.data["account_id"].as_string()
        query = (
            select(
                contract.c.id,
                contract.c.data["number"].as_string(),
                account.c.data["name"].as_string(),
            )
            .select_from(contract)
            .outerjoin(account, and_(account.c.kind == "account", account.c.id == account_id))
            .where(contract.c.kind == "contract", contract.c.id.in_(sorted(set(ids))))
        )
        with self.db.read() as conn:
            return {cid: (number, name) for cid, number, name in conn.execute(query)}


def _latest_health(named: bool):
    """Each account's latest health row (with its account's name if `named`)."""
    h = health_history
    latest = (
        select(h.c.account, func.max(h.c.as_of).label("as_of")).group_by(h.c.account).subquery()
    )
    columns = [h.c.account, h.c.as_of, h.c.score, h.c.grade, h.c.trend]
    query = select(*columns).join(
        latest, and_(h.c.account == latest.c.account, h.c.as_of == latest.c.as_of)
    )
    if named:
        account = mirror.alias("a")
        query = query.add_columns(
            account.c.data["name"].as_string().label("account_name")
        ).outerjoin(account, and_(account.c.kind == "account", account.c.id == h.c.account))
    return query.subquery("health")


def _named_rows(keys: list[tuple[str, str]]):
    """These (account, as_of) health rows in full, with their account's name and owner."""
    h, account, owner = health_history, mirror.alias("a"), mirror.alias("o")
    owner_id = account.c.data["owner_id"].as_string()
    return (
        select(
            h.c.account,
            account.c.data["name"].as_string().label("account_name"),
            owner_id.label("owner_id"),
            owner.c.data["name"].as_string().label("owner_name"),
            h.c.as_of,
            h.c.score,
            h.c.grade,
            h.c.trend,
            h.c.measures_used,
            h.c.low_confidence,
            h.c.drivers,
        )
        .where(tuple_(h.c.account, h.c.as_of).in_(keys))
        .outerjoin(account, and_(account.c.kind == "account", account.c.id == h.c.account))
        .outerjoin(owner, and_(owner.c.kind == "owner", owner.c.id == owner_id))
    )


def _grade_is(column, grade: str) -> ColumnElement[bool]:
    return column.is_(None) if grade == "grey" else column == grade


def _health_order(table, sort: str) -> list:
    """ORDER BY for `sort`; ties by score, then account id, so pages never overlap."""
    descending = sort.startswith("-")
    name = sort.lstrip("-")
    c = table.c
    keys = {
        "grade": case(
            *((c.grade == g, literal(i)) for i, g in enumerate(GRADE_ORDER)),
            else_=literal(len(GRADE_ORDER)),
        ),
        "score": c.score,
        "trend": _trend_delta(c.trend),
    }
    if "account_name" in c:
        keys["name"] = func.lower(c.account_name)
    if name not in keys:
        raise ValueError(f"cannot sort by {sort!r}")
    first = keys[name].desc() if descending else keys[name].asc()
    return [first.nulls_last(), c.score.asc().nulls_last(), c.account.asc()]


def _trend_delta(trend):
    """ "up 5" -> 5, "down 12" -> -12, "flat" -> 0, "new" -> NULL (as health.py words it)."""
    return case(
        (trend.like("up %"), cast(func.substr(trend, 4), Integer)),
        (trend.like("down %"), -cast(func.substr(trend, 6), Integer)),
        (trend == "flat", literal(0)),
        else_=None,
    )


def _health_row(r) -> HealthRow:
    return HealthRow(
        r.account,
        r.account_name,
        r.owner_id,
        r.owner_name,
        r.as_of,
        r.score,
        r.grade,
        r.trend,
        r.measures_used,
        bool(r.low_confidence),
        list(r.drivers or []),
    )
