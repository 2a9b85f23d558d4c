"""The audit log: who changed or triggered what (console and CLI), newest first when read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, insert, select

from crm_renewals.connector.state.database import Db, aware, now
from crm_renewals.connector.state.schema import audit_log


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    detail: dict[str, Any] | None


class AuditRepository:
    """The audit_log table."""

    def __init__(self, db: Db):
        self.db = db

    def record(
        self, actor: str, action: str, target: str = "", detail: dict[str, Any] | None = None
    ) -> None:
        with self.db.write() as conn:
            conn.execute(
                insert(audit_log).values(
                    at=now(), actor=actor, action=action, target=target, detail=detail
                )
            )

    def list(
        self,
        limit: int = 100,
        offset: int = 0,
        actor: str | None = None,
        action: str | None = None,
    ) -> list[AuditEntry]:
        """Newest first; only `actor`'s, only actions starting with `action` (e.g. "run")."""
        a = audit_log.c
        query = _filtered(select(audit_log), actor, action)
        query = query.order_by(a.id.desc()).limit(limit).offset(offset)
        with self.db.read() as conn:
            return [
                AuditEntry(i, aware(at), who, what, target or "", detail)
                for i, at, who, what, target, detail in conn.execute(query)
            ]

    def count(self, actor: str | None = None, action: str | None = None) -> int:
        query = _filtered(select(func.count()).select_from(audit_log), actor, action)
        with self.db.read() as conn:
            return conn.execute(query).scalar() or 0

    def actors(self) -> list[str]:
        """Everyone who is in the log, by name."""
        with self.db.read() as conn:
            query = select(audit_log.c.actor).distinct().order_by(audit_log.c.actor)
            return list(conn.execute(query).scalars())

    def actions(self) -> list[str]:
        """Every action in the log, by name."""
        with self.db.read() as conn:
            query = select(audit_log.c.action).distinct().order_by(audit_log.c.action)
            return list(conn.execute(query).scalars())


def _filtered(query: Select, actor: str | None, action: str | None) -> Select:
    if actor:
        query = query.where(audit_log.c.actor == actor)
    if action:  # a prefix: % and _ in it are themselves, not wildcards
        query = query.where(audit_log.c.action.startswith(action, autoescape=True))
    return query
