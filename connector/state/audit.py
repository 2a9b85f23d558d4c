"""The audit log: who changed or triggered what (console and CLI), newest first when read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select

from connector.state.database import Db, aware, now
from connector.state.schema import audit_log


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

    def list(self, limit: int = 100, offset: int = 0, actor: str | None = None) -> list[AuditEntry]:
        a = audit_log.c
        query = select(audit_log).order_by(a.id.desc()).limit(limit).offset(offset)
        if actor:
            query = query.where(a.actor == actor)
        with self.db.read() as conn:
            return [
                AuditEntry(i, aware(at), who, what, target or "", detail)
                for i, at, who, what, target, detail in conn.execute(query)
            ]

    def count(self) -> int:
        with self.db.read() as conn:
            return conn.execute(select(func.count()).select_from(audit_log)).scalar() or 0
