"""The connections table (one row per CRM connection other than what app.yaml alone says)
and oauth_flows (OAuth installs in flight). Tokens arrive here sealed (connector.secretbox):
this repository never sees them in clear."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.engine import Connection as SqlConnection

from crm_renewals.connector.state.database import Db, aware, now
from crm_renewals.connector.state.schema import connections, oauth_flows

CONNECTED, PENDING, NEEDS_RECONNECT = "connected", "pending", "needs_reconnect"
DISCONNECTED, REMOVED = "disconnected", "removed"


@dataclass(frozen=True, slots=True)
class ConnectionRow:
    """A row of the connections table (`tokens` sealed)."""

    name: str
    crm: str
    auth: str
    external_id: str | None
    instance_url: str | None
    status: str
    status_reason: str | None
    tokens: str | None
    token_expires_at: datetime | None
    scopes: str | None
    connected_by: str | None
    created_at: datetime
    updated_at: datetime

    def replace(self, **changes: Any) -> ConnectionRow:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True, slots=True)
class OAuthFlow:
    state_hash: str
    crm: str
    connection: str | None
    session_hash: str
    actor: str
    verifier: str | None
    created_at: datetime


def _row(r) -> ConnectionRow:
    m = dict(r._mapping)
    for key in ("token_expires_at", "created_at", "updated_at"):
        m[key] = aware(m[key])
    return ConnectionRow(**m)


class ConnectionRepository:
    """The connections table."""

    def __init__(self, db: Db):
        self.db = db

    def list(self) -> list[ConnectionRow]:
        with self.db.read() as conn:
            rows = conn.execute(select(connections).order_by(connections.c.name))
            return [_row(r) for r in rows]

    def get(self, name: str) -> ConnectionRow | None:
        with self.db.read() as conn:
            r = conn.execute(select(connections).where(connections.c.name == name)).first()
        return None if r is None else _row(r)

    def by_external_id(self, external_id: str) -> ConnectionRow | None:
        with self.db.read() as conn:
            r = conn.execute(
                select(connections).where(connections.c.external_id == external_id)
            ).first()
        return None if r is None else _row(r)

    def save(self, row: ConnectionRow) -> ConnectionRow:
        """Insert or replace the row named `row.name` (updated_at set now)."""
        row = row.replace(updated_at=now())
        values = dataclasses.asdict(row)
        with self.db.write() as conn:
            done = conn.execute(
                update(connections).where(connections.c.name == row.name).values(**values)
            )
            if done.rowcount == 0:
                conn.execute(insert(connections).values(**values))
        return row

    def delete(self, name: str) -> bool:
        with self.db.write() as conn:
            return conn.execute(delete(connections).where(connections.c.name == name)).rowcount > 0

    @contextmanager
    def locked(self, name: str) -> Iterator[tuple[ConnectionRow | None, SqlConnection]]:
        """The row `name` read under a lock that other processes wait on (PostgreSQL: the row,
        FOR UPDATE; SQLite: the database's write lock), in one transaction: what the block
        writes through `store_locked` commits when it ends. Token refreshes run here, so
        concurrent processes refresh once and the others read the new tokens."""
        with self.db.write() as conn:
            query = select(connections).where(connections.c.name == name)
            if conn.dialect.name == "postgresql":
                query = query.with_for_update()
            else:  # take SQLite's write lock before reading (BEGIN IMMEDIATE's effect)
                conn.execute(
                    text("UPDATE connections SET name = name WHERE name = :n"), {"n": name}
                )
            r = conn.execute(query).first()
            yield (None if r is None else _row(r)), conn

    @staticmethod
    def store_locked(conn: SqlConnection, row: ConnectionRow) -> ConnectionRow:
        """Within `locked`: write `row` back."""
        row = row.replace(updated_at=now())
        conn.execute(
            update(connections)
            .where(connections.c.name == row.name)
            .values(**dataclasses.asdict(row))
        )
        return row


class OAuthFlowRepository:
    """The oauth_flows table: each flow is taken once (`take` deletes it)."""

    def __init__(self, db: Db):
        self.db = db

    def start(self, flow: OAuthFlow) -> None:
        with self.db.write() as conn:
            conn.execute(insert(oauth_flows).values(**dataclasses.asdict(flow)))

    def take(self, state_hash: str, max_age: timedelta) -> OAuthFlow | None:
        """The flow of `state_hash`, removed (a replayed callback finds nothing); None if
        unknown or older than `max_age`. Lapsed flows are cleared on the way."""
        with self.db.write() as conn:
            conn.execute(delete(oauth_flows).where(oauth_flows.c.created_at < now() - max_age))
            r = conn.execute(
                select(oauth_flows).where(oauth_flows.c.state_hash == state_hash)
            ).first()
            if r is None:
                return None
            conn.execute(delete(oauth_flows).where(oauth_flows.c.state_hash == state_hash))
        m = dict(r._mapping)
        m["created_at"] = aware(m["created_at"])
        return OAuthFlow(**m)
