"""Config versions: each distinct mapping file and app.yaml that a run used, stored once by
the sha256 of its content, with what the runs that used it say (when, how often)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from crm_renewals.connector.state.database import Db, aware, now
from crm_renewals.connector.state.schema import config_versions, runs

#: hex digits of a version as people see it (as git shows commits): unique enough for the
#: handful of versions a connector sees, and a longer prefix is always accepted
SHORT = 8
KINDS = ("mapping", "config")


def short(digest: str | None) -> str | None:
    return digest[:SHORT] if digest else None


@dataclass(frozen=True, slots=True)
class Version:
    """A stored version and its use: first and last run, how many runs."""

    kind: str
    hash: str
    path: str
    first_used_at: datetime
    last_used_at: datetime | None
    runs: int

    @property
    def short(self) -> str:
        return self.hash[:SHORT]


class ConfigVersionRepository:
    """The config_versions table (and the runs' hash columns, read)."""

    def __init__(self, db: Db):
        self.db = db

    def keep(self, kind: str, digest: str, content: str, path: str) -> None:
        """Store this content unless it is stored already (its first use stays)."""
        stmt = (
            self.db.upsert(config_versions)
            .values(kind=kind, hash=digest, content=content, path=path, first_used_at=now())
            .on_conflict_do_nothing(index_elements=["kind", "hash"])
        )
        with self.db.write() as conn:
            conn.execute(stmt)

    def history(self, kind: str) -> list[Version]:
        """The versions of `kind`, the one a run used last first (never used: last)."""
        column = runs.c.mapping_hash if kind == "mapping" else runs.c.config_hash
        uses = (
            select(
                column.label("hash"),
                func.max(runs.c.id).label("last_run"),
                func.max(runs.c.started_at).label("last_used"),
                func.count().label("n"),
            )
            .where(column.is_not(None))
            .group_by(column)
            .subquery()
        )
        v = config_versions.c
        query = (
            select(v.hash, v.path, v.first_used_at, uses.c.last_used, uses.c.n)
            .outerjoin(uses, uses.c.hash == v.hash)
            .where(v.kind == kind)
            .order_by(func.coalesce(uses.c.last_run, 0).desc(), v.first_used_at.desc())
        )
        with self.db.read() as conn:
            return [
                Version(kind, digest, path, aware(first), aware(last), n or 0)
                for digest, path, first, last, n in conn.execute(query)
            ]

    def matching(self, kind: str, prefix: str) -> list[str]:
        """The hashes of `kind` that start with `prefix` (one: found; more: ambiguous)."""
        v = config_versions.c
        query = select(v.hash).where(
            v.kind == kind, v.hash.startswith(prefix.lower(), autoescape=True)
        )
        with self.db.read() as conn:
            return sorted(conn.execute(query).scalars())

    def content(self, kind: str, digest: str) -> str | None:
        v = config_versions.c
        with self.db.read() as conn:
            return conn.execute(select(v.content).where(v.kind == kind, v.hash == digest)).scalar()
