"""The state database's migrations: the ordered steps that bring a database of an earlier
version up to this one (connector/state/schema.py holds the tables), and `migrate`."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, func, insert, inspect, select, text, update
from sqlalchemy.engine import Connection

from crm_renewals.connector.errors import UnusableDatabaseError
from crm_renewals.connector.state.database import pg_lock_key
from crm_renewals.connector.state.refs import refs_of
from crm_renewals.connector.state.schema import SCHEMA_VERSION, meta, mirror, schema_version


def _v2_refused_writes(conn) -> None:
    conn.execute(text("ALTER TABLE dead_letters ADD COLUMN payload JSON"))
    conn.execute(
        text("ALTER TABLE dead_letters ADD COLUMN retriable BOOLEAN NOT NULL DEFAULT false")
    )


def _v3_job_leases(conn) -> None:
    kind = "TIMESTAMP WITH TIME ZONE" if conn.dialect.name == "postgresql" else "DATETIME"
    conn.execute(text(f"ALTER TABLE job_runs ADD COLUMN lease_until {kind}"))


def _v4_config_versions(conn) -> None:
    # the config_versions table itself is new: create_all made it before the steps run
    conn.execute(text("ALTER TABLE runs ADD COLUMN mapping_hash VARCHAR(64)"))
    conn.execute(text("ALTER TABLE runs ADD COLUMN config_hash VARCHAR(64)"))


def _v5_console(conn) -> None:
    # users, login_failures and audit_log are new: create_all made them
    conn.execute(text("ALTER TABLE runs ADD COLUMN progress JSON"))


def _v6_discards(conn) -> None:
    conn.execute(text("ALTER TABLE dead_letters ADD COLUMN resolution JSON"))


def _v7_notices(conn) -> None:
    """Nothing to alter: the notices table is new (create_all made it)."""


def _v8_connections(conn) -> None:
    """Nothing to alter: connections and oauth_flows are new (create_all made them)."""


def _v9_incremental(conn) -> None:
    """The mirror's contract and account of each record (backfilled from its mapped data),
    the cursors' read time, the signals' receipt index; plan_due and plan_meta are new."""
    kind = "TIMESTAMP WITH TIME ZONE" if conn.dialect.name == "postgresql" else "DATETIME"
    for table, column, type_ in (
        ("mirror", "contract_id", "VARCHAR(80)"),
        ("mirror", "account_id", "VARCHAR(80)"),
        ("mirror", "run_id", "INTEGER"),
        ("cursors", "read_at", kind),
    ):
        if column not in {c["name"] for c in inspect(conn).get_columns(table)}:
            conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {column} {type_}"))
    for table, column in (("mirror", "contract_id"), ("mirror", "account_id")):
        conn.execute(text(f"CREATE INDEX IF NOT EXISTS ix_{table}_{column} ON {table} ({column})"))
    conn.execute(text("CREATE INDEX IF NOT EXISTS ix_signals_received_at ON signals (received_at)"))
    rows = conn.execute(
        select(mirror.c.kind, mirror.c.id, mirror.c.parent_id, mirror.c.data)
    ).fetchall()
    updates = [
        {"k": k, "i": i, "c": c, "a": a}
        for k, i, parent, data in rows
        for c, a in [refs_of(k, i, parent, data)]
        if c or a
    ]
    if updates:
        conn.execute(
            update(mirror)
            .where(mirror.c.kind == bindparam("k"), mirror.c.id == bindparam("i"))
            .values(contract_id=bindparam("c"), account_id=bindparam("a")),
            updates,
        )


#: Ordered migrations after version 1: (version, callable(connection)).
MIGRATIONS: list[tuple[int, Any]] = [
    (2, _v2_refused_writes),
    (3, _v3_job_leases),
    (4, _v4_config_versions),
    (5, _v5_console),
    (6, _v6_discards),
    (7, _v7_notices),
    (8, _v8_connections),
    (9, _v9_incremental),
]


def migrate(conn: Connection, name: str) -> None:
    """Create the schema, or bring an earlier version's up to this one; refuse a newer one
    (written by a later release: this one would misread it). `name`: the database, as told."""
    if conn.dialect.name == "postgresql":  # hosts starting at once: one creates, the others wait
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": pg_lock_key(conn, "migrate")})
    version = None
    if inspect(conn).has_table("schema_version"):
        version = conn.execute(select(func.max(schema_version.c.version))).scalar()
    if version is not None and version > SCHEMA_VERSION:
        raise UnusableDatabaseError(
            f"state database {name} is at schema version {version}, newer than "
            f"this release's {SCHEMA_VERSION}: upgrade crm-renewals to use it (or point "
            "state.url at another database)"
        )
    meta.create_all(conn)
    if version is None:
        conn.execute(insert(schema_version).values(version=SCHEMA_VERSION))
        return
    for target, step in MIGRATIONS:
        if target > version:
            step(conn)
            conn.execute(update(schema_version).values(version=target))
