"""Dead letters: records that failed to map, writes the CRM refused, deliveries that could
not be read, each kept (open) until it is resolved."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NotRequired, TypedDict

from sqlalchemy import func, insert, select, update

from crm_renewals.connector.state.database import Db, now
from crm_renewals.connector.state.schema import dead_letters


class Letter(TypedDict):
    """A failure to record. A refused write also carries what was sent (`payload`) and
    whether the refusal was transient (`retriable`)."""

    stage: str  # read | plan | write | webhook
    kind: str
    record_id: str
    contract_id: str | None
    field: str | None
    value: Any
    error_code: str | None
    message: str
    payload: NotRequired[dict[str, Any] | None]
    retriable: NotRequired[bool]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A recorded dead letter (the dead_letters table's columns, in order)."""

    id: int
    run_id: int | None
    stage: str
    kind: str
    record_id: str
    contract_id: str | None
    field: str | None
    value: str | None  # JSON text
    error_code: str | None
    message: str
    attempts: int
    created_at: datetime
    resolved_at: datetime | None
    payload: dict[str, Any] | None
    retriable: bool
    #: how an admin closed it, if one did: {"action": "discarded", "by": ..., "reason": ...}
    resolution: dict[str, Any] | None = None

    @property
    def discarded(self) -> bool:
        return (self.resolution or {}).get("action") == "discarded"

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


class DeadLetterRepository:
    """The dead_letters table."""

    def __init__(self, db: Db):
        self.db = db

    def add(self, letters: Iterable[Letter], run_id: int | None) -> int:
        """Record failures. A record keeps one open letter per error (a read) or one in all (a
        refused write: its latest refusal); a repeat is counted again, not duplicated.
        Returns how many letters are new."""
        added = 0
        with self.db.write() as conn:
            for letter in letters:
                same = [
                    dead_letters.c.kind == letter["kind"],
                    dead_letters.c.record_id == letter["record_id"],
                    dead_letters.c.resolved_at.is_(None),
                ]
                if letter["stage"] == "write":
                    same.append(dead_letters.c.stage == "write")
                else:
                    same.append(dead_letters.c.message == letter["message"])
                found = conn.execute(select(dead_letters.c.id).where(*same)).scalar()
                if not found and letter["stage"] != "write" and _discarded(conn, letter):
                    continue  # an admin discarded this very failure: not opened again
                value = letter.get("value")
                row = {**letter, "value": None if value is None else json.dumps(value, default=str)}
                if found:
                    conn.execute(
                        update(dead_letters)
                        .where(dead_letters.c.id == found)
                        .values(**row, attempts=dead_letters.c.attempts + 1, run_id=run_id)
                    )
                    continue
                conn.execute(insert(dead_letters).values(**row, run_id=run_id, created_at=now()))
                added += 1
        return added

    def discarded_writes(self) -> dict[tuple[str, str], list[dict[str, Any]]]:
        """What was sent in the refused writes an admin discarded, by (kind, key) (None: a
        delete)."""
        c = dead_letters.c
        query = select(c.kind, c.record_id, c.payload).where(
            c.stage == "write", c.resolution.is_not(None)
        )
        out: dict[tuple[str, str], list[dict[str, Any] | None]] = {}
        with self.db.read() as conn:
            for kind, key, payload in conn.execute(query):
                out.setdefault((kind, key), []).append(payload)
        return out

    def refused_writes(self) -> dict[tuple[str, str], DeadLetter]:
        """Open letters of refused writes, by (kind, key)."""
        query = select(dead_letters).where(
            dead_letters.c.stage == "write", dead_letters.c.resolved_at.is_(None)
        )
        with self.db.read() as conn:
            return {(r.kind, r.record_id): DeadLetter(*r) for r in conn.execute(query)}

    def resolve(self, kind: str, record_ids: Iterable[str]) -> None:
        """Close the open letters of these records."""
        ids = list(record_ids)
        if not ids:
            return
        with self.db.write() as conn:
            for chunk in (ids[i : i + 500] for i in range(0, len(ids), 500)):
                conn.execute(
                    update(dead_letters)
                    .where(
                        dead_letters.c.kind == kind,
                        dead_letters.c.record_id.in_(chunk),
                        dead_letters.c.resolved_at.is_(None),
                    )
                    .values(resolved_at=now())
                )

    def list(self, include_resolved: bool = False) -> list[DeadLetter]:
        """Open letters (or all of them), oldest first."""
        query = select(dead_letters).order_by(dead_letters.c.id)
        if not include_resolved:
            query = query.where(dead_letters.c.resolved_at.is_(None))
        with self.db.read() as conn:
            return [DeadLetter(*r) for r in conn.execute(query)]

    def of_run(self, run_id: int, limit: int = 100) -> tuple[list[DeadLetter], int]:
        """The letters run `run_id` recorded last (a repeat names its latest run), open ones
        first, at most `limit`, and how many there are."""
        mine = dead_letters.c.run_id == run_id
        query = (
            select(dead_letters)
            .where(mine)
            .order_by(dead_letters.c.resolved_at.is_not(None), dead_letters.c.id)
            .limit(limit)
        )
        with self.db.read() as conn:
            rows = [DeadLetter(*r) for r in conn.execute(query)]
            total = conn.execute(select(func.count()).where(mine)).scalar_one()
        return rows, total

    def get_many(self, ids: Iterable[int]) -> list[DeadLetter]:
        """These letters (open or not), by id; ids that name none are left out."""
        wanted = sorted(set(ids))
        with self.db.read() as conn:
            query = select(dead_letters).where(dead_letters.c.id.in_(wanted))
            return [DeadLetter(*r) for r in conn.execute(query.order_by(dead_letters.c.id))]

    def of_contract(self, contract_id: str) -> list[DeadLetter]:
        """The contract's open letters and those an admin discarded, oldest first."""
        c = dead_letters.c
        query = select(dead_letters).where(
            c.contract_id == contract_id, c.resolved_at.is_(None) | c.resolution.is_not(None)
        )
        with self.db.read() as conn:
            return [DeadLetter(*r) for r in conn.execute(query.order_by(dead_letters.c.id))]

    def search(
        self, include_resolved: bool, filters: dict[str, str], limit: int, offset: int
    ) -> tuple[list[DeadLetter], int]:
        """One page of letters (newest first) whose `kind`, `error_code` and `field` are those
        in `filters` (each optional), and how many there are in all."""
        c = dead_letters.c
        where = [c[name] == value for name, value in filters.items() if value]
        if not include_resolved:
            where.append(c.resolved_at.is_(None))
        query = select(dead_letters).where(*where).order_by(c.id.desc())
        with self.db.read() as conn:
            count = select(func.count()).select_from(dead_letters).where(*where)
            total = conn.execute(count).scalar_one()
            rows = conn.execute(query.limit(limit).offset(offset))
            return [DeadLetter(*r) for r in rows], total

    def facets(self, include_resolved: bool) -> dict[str, list[str]]:
        """The kinds, error codes and fields letters name (open ones, or all), each sorted."""
        c = dead_letters.c
        out = {}
        with self.db.read() as conn:
            for name in ("kind", "error_code", "field"):
                query = select(c[name]).distinct().where(c[name].is_not(None))
                if not include_resolved:
                    query = query.where(c.resolved_at.is_(None))
                out[name] = sorted(conn.execute(query).scalars())
        return out

    def discard(self, ids: Iterable[int], resolution: dict[str, Any]) -> int:
        """Close these open letters with how (`resolution`); returns how many were open."""
        wanted = sorted(set(ids))
        with self.db.write() as conn:
            return conn.execute(
                update(dead_letters)
                .where(dead_letters.c.id.in_(wanted), dead_letters.c.resolved_at.is_(None))
                .values(resolved_at=now(), resolution=resolution)
            ).rowcount

    def open_count(self) -> int:
        with self.db.read() as conn:
            query = select(func.count()).where(dead_letters.c.resolved_at.is_(None))
            return conn.execute(query).scalar_one()

    def kinds_failing_to_map(self, until: datetime) -> set[str]:
        """Kinds with an open mapping (read) failure recorded at or before `until`."""
        query = (
            select(dead_letters.c.kind)
            .distinct()
            .where(
                dead_letters.c.resolved_at.is_(None),
                dead_letters.c.stage == "read",
                dead_letters.c.created_at <= until,
            )
        )
        with self.db.read() as conn:
            return set(conn.execute(query).scalars())


def _discarded(conn, letter: Letter) -> bool:
    """Whether an admin discarded the same failure of the same record."""
    c = dead_letters.c
    query = select(c.id).where(
        c.kind == letter["kind"],
        c.record_id == letter["record_id"],
        c.stage == letter["stage"],
        c.message == letter["message"],
        c.resolution.is_not(None),
    )
    return conn.execute(query.limit(1)).first() is not None
