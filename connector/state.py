"""The state store (SQLAlchemy; SQLite by default): mirror, cursors, write ledger, runs and
dead letters. The schema is created or migrated when the store opens."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Iterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

from connector.domain.signals import Signal
from connector.errors import UnusableDatabaseError
from connector.ports import Cursor, SourceRecord

SCHEMA_VERSION = 3
meta = MetaData()

schema_version = Table("schema_version", meta, Column("version", Integer, nullable=False))
mirror = Table(
    "mirror",
    meta,
    Column("kind", String(40), primary_key=True),
    Column("id", String(80), primary_key=True),
    Column("parent_id", String(80), index=True),
    Column("modified_at", DateTime(timezone=True)),
    Column("deleted", Boolean, nullable=False, default=False),
    Column("raw", JSON, nullable=False),
    Column("data", JSON),
    Column("error", Text),
)
cursors = Table(
    "cursors",
    meta,
    Column("kind", String(40), primary_key=True),
    Column("modified_at", DateTime(timezone=True), nullable=False),
    Column("record_id", String(80), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
ledger = Table(
    "ledger",
    meta,
    Column("kind", String(40), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("contract_id", String(80), index=True),
    Column("crm_id", String(80)),
    Column("fields", JSON, nullable=False),
    Column("run_id", Integer),
    Column("written_at", DateTime(timezone=True), nullable=False),
)
runs = Table(
    "runs",
    meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("status", String(20), nullable=False),
    Column("mode", String(20), nullable=False),
    Column("as_of", String(10)),
    Column("counts", JSON),
    Column("api_calls", Integer, default=0),
    Column("duration_s", Float),
    Column("error", Text),
)
dead_letters = Table(
    "dead_letters",
    meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", Integer),
    Column("stage", String(20), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("record_id", String(200), nullable=False),
    Column("contract_id", String(80)),
    Column("field", String(80)),
    Column("value", Text),
    Column("error_code", String(80)),
    Column("message", Text, nullable=False),
    Column("attempts", Integer, nullable=False, default=1),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("resolved_at", DateTime(timezone=True)),
    #: a refused write: what was sent ({"fields", "parent_key"}), so that it can be sent again
    #: when nothing plans it any more (an at-risk task of an earlier day), and whether the
    #: refusal was transient (sent again by every sync) or not (held until `deadletters retry`)
    Column("payload", JSON),
    Column("retriable", Boolean, nullable=False, default=False),
)
signals = Table(
    "signals",
    meta,
    Column("account", String(80), primary_key=True),
    Column("measure", String(80), primary_key=True),
    Column("at", DateTime(timezone=True), primary_key=True),
    Column("value", Float, nullable=False),
    Column("source", String(40), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
)
#: Webhook deliveries as they arrived (the raw signed body), stored on the request path before
#: the acknowledgement; the inbox worker expands each into inbox events and deletes it.
deliveries = Table(
    "deliveries",
    meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(20), nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
)
#: Webhook inbox: one row per accepted event, unique by (source, event id) so copies and
#: redeliveries are stored once; kept for the dedupe window after processing (connector/inbox.py).
inbox = Table(
    "inbox",
    meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(20), nullable=False),
    Column("event_id", String(200), nullable=False),
    Column("object", String(80)),
    Column("record_id", String(80)),
    Column("payload", JSON, nullable=False),
    Column("status", String(20), nullable=False),  # pending | done | ignored | dead
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("processed_at", DateTime(timezone=True)),
    Column("run_id", Integer),
    Column("last_error", Text),
    UniqueConstraint("source", "event_id", name="inbox_event"),
    Index("inbox_due", "status", "id"),  # the oldest pending first, without a sort
)
#: Scheduled job runs: one row per (job, scheduled slot), so two schedulers on one database
#: run each slot once (connector/joblog.py).
job_runs = Table(
    "job_runs",
    meta,
    Column("job", String(60), primary_key=True),
    Column("scheduled_at", DateTime(timezone=True), primary_key=True),
    Column("runner", String(120), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("status", String(20), nullable=False),  # running | ok | partial | failed | busy
    Column("detail", JSON),
    Column("error", Text),
    #: the claim of a running slot holds until then, renewed while the job runs: the slot of a
    #: scheduler that died is taken over by another once it lapses
    Column("lease_until", DateTime(timezone=True)),
)
health_history = Table(
    "health_history",
    meta,
    Column("account", String(80), primary_key=True),
    Column("as_of", String(10), primary_key=True),
    Column("score", Integer),
    Column("grade", String(10)),
    Column("measures_used", Integer, nullable=False),
    Column("low_confidence", Boolean, nullable=False),
    Column("trend", String(20)),
    Column("drivers", JSON, nullable=False),
    Column("values", JSON, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)
segment_history = Table(
    "segment_history",
    meta,
    Column("account", String(80), primary_key=True),
    Column("period_start", String(10), primary_key=True),
    Column("segment", String(40), nullable=False),
    Column("facts", JSON, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)


def _v2_refused_writes(conn) -> None:
    conn.execute(text("ALTER TABLE dead_letters ADD COLUMN payload JSON"))
    conn.execute(
        text("ALTER TABLE dead_letters ADD COLUMN retriable BOOLEAN NOT NULL DEFAULT false")
    )


def _v3_job_leases(conn) -> None:
    kind = "TIMESTAMP WITH TIME ZONE" if conn.dialect.name == "postgresql" else "DATETIME"
    conn.execute(text(f"ALTER TABLE job_runs ADD COLUMN lease_until {kind}"))


#: Ordered migrations after version 1: (version, callable(connection)).
MIGRATIONS: list[tuple[int, Any]] = [(2, _v2_refused_writes), (3, _v3_job_leases)]


def now() -> datetime:
    return datetime.now(UTC)


def _aware(moment: datetime | None) -> datetime | None:
    # SQLite hands datetimes back naive; everything we store is UTC
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


#: Databases the store can use (it needs upsert: INSERT ... ON CONFLICT), and the package
#: that provides each driver SQLAlchemy may pick for them.
BACKENDS = ("sqlite", "postgresql")
DRIVER_PACKAGES = {
    "psycopg": "psycopg[binary]",
    "psycopg2": "psycopg2-binary",
    "pg8000": "pg8000",
}


def url_problem(url: str) -> str | None:
    """What makes `url` unusable as the state database (a bad URL, a database kind the store
    cannot use, a driver that is not installed), with the fix; None if it looks usable."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return f"{url!r} is not a database URL (sqlite:///path/state.db, postgresql://...)"
    backend = parsed.get_backend_name()
    if backend not in BACKENDS:
        return f"{backend!r} databases are not supported: use {' or '.join(BACKENDS)}"
    try:
        dialect = parsed.get_dialect()
        dialect.import_dbapi()
    except NoSuchModuleError:
        return f"unknown {backend} driver {parsed.get_driver_name()!r}"
    except ImportError:
        package = DRIVER_PACKAGES.get(dialect.driver, dialect.driver)
        return (
            f"the {backend} driver {dialect.driver!r} is not installed: "
            f"pip install '{package}' (or name another driver: {backend}+DRIVER://...)"
        )
    return None


def database_name(url: str) -> str:
    """The state database as people know it: the file of a SQLite URL, else the URL without
    its password."""
    parsed = make_url(url)
    path = sqlite_path(url)
    return str(path) if path else parsed.render_as_string(hide_password=True)


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (also a `file:` URI); None for memory or other databases."""
    parsed = make_url(url)
    name = parsed.database
    if parsed.get_backend_name() != "sqlite" or name in (None, "", ":memory:"):
        return None
    if parsed.query.get("uri") == "true":
        name = name.removeprefix("file:").split("?")[0]
    return Path(name)


#: What each SQLite failure (its primary result code) means for the state database's owner.
SQLITE_FIXES = {
    8: "is read-only: give this user write access to it and its folder (SQLite writes "
    "-wal and -shm files next to it), or point state.url at a writable database",
    10: "cannot be read or written (disk I/O error): check the disk, then restore the file "
    "from a backup if it is damaged",
    11: "is damaged: restore it from a backup, or move it away to start afresh (the next "
    "sync re-reads the CRM in full)",
    13: "cannot grow: the disk is full",
    14: "cannot be opened: check that its folder exists and is writable",
    26: "is not a SQLite database: restore it from a backup, or point state.url at another "
    "file (a missing file is created)",
}


def _unusable(name: str, ctx) -> None:
    """SQLAlchemy's handle_error hook: a database the store cannot use becomes one clear
    UnusableDatabaseError, whichever statement met it."""
    code = getattr(ctx.original_exception, "sqlite_errorcode", None)
    if code is None or (code & 0xFF) not in SQLITE_FIXES:
        return
    raise UnusableDatabaseError(
        f"state database {name} {SQLITE_FIXES[code & 0xFF]} (SQLite: {ctx.original_exception})"
    ) from None


class StateStore:
    def __init__(self, url: str):
        problem = url_problem(url)
        if problem:
            raise UnusableDatabaseError(f"state.url: {problem}")
        path = sqlite_path(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self.name = database_name(url)
        self.engine: Engine = create_engine(url, future=True)
        event.listen(self.engine, "handle_error", partial(_unusable, self.name))
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", sqlite_pragmas)
        try:
            self.migrate()
        except OperationalError as exc:  # cannot connect (a server down, a wrong password)
            self.engine.dispose()
            raise UnusableDatabaseError(
                f"cannot open the state database {self.name}: "
                f"{str(exc.orig).strip().splitlines()[0]}"
            ) from None
        except BaseException:
            self.engine.dispose()
            raise

    def migrate(self) -> None:
        """Create the schema, or bring an earlier version's up to this one; refuse a newer
        one (written by a later release: this one would misread it)."""
        with self.engine.begin() as conn:
            version = None
            if inspect(conn).has_table("schema_version"):
                version = conn.execute(select(func.max(schema_version.c.version))).scalar()
            if version is not None and version > SCHEMA_VERSION:
                raise UnusableDatabaseError(
                    f"state database {self.name} is at schema version {version}, newer than "
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

    def close(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------------ signals

    def add_signals(self, items: Iterable[Signal]) -> int:
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
        stmt = _upsert(self.engine, signals).on_conflict_do_nothing()
        with self.engine.begin() as conn:
            return sum(conn.execute(stmt, [row]).rowcount for row in rows)

    def latest_signals(
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
        with self.engine.connect() as conn:
            for r in conn.execute(query):
                out.setdefault(r.account, {})[r.measure] = Signal(
                    r.account, r.measure, r.value, _aware(r.at), r.source
                )
        return out

    # ------------------------------------------------------------------ health and segments

    def save_health(self, rows: list[dict[str, Any]]) -> None:
        """One row per account and day (as_of); a re-run the same day replaces that day's."""
        self._replace(health_history, ["account", "as_of"], rows)

    def health_before(
        self, day: str, accounts: Collection[str] | None = None
    ) -> dict[str, dict[str, Any]]:
        """Each account's last recorded health strictly before `day` (ISO date; of `accounts`
        only, if given)."""
        condition = health_history.c.as_of < day
        if accounts is not None:
            condition = and_(condition, health_history.c.account.in_(accounts))
        return self._latest(health_history, condition)

    def health_on(self, day: str) -> dict[str, dict[str, Any]]:
        """Each account's last recorded health on or before `day` (ISO date)."""
        return self._latest(health_history, health_history.c.as_of <= day)

    def save_segments(self, rows: list[dict[str, Any]]) -> None:
        self._replace(segment_history, ["account", "period_start"], rows)

    def segments_in(self, period_start: str) -> dict[str, str]:
        """account -> segment in the period starting `period_start` (ISO date)."""
        with self.engine.connect() as conn:
            return dict(
                conn.execute(
                    select(segment_history.c.account, segment_history.c.segment).where(
                        segment_history.c.period_start == period_start
                    )
                ).all()
            )

    def segment_periods(self) -> list[str]:
        with self.engine.connect() as conn:
            query = select(segment_history.c.period_start).distinct().order_by("period_start")
            return [r[0] for r in conn.execute(query)]

    def _replace(self, table: Table, keys: list[str], rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        rows = [{**r, "recorded_at": now()} for r in rows]
        stmt = _upsert(self.engine, table)
        cols = [c.name for c in table.columns if c.name not in keys]
        with self.engine.begin() as conn:
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=keys, set_={c: stmt.excluded[c] for c in cols}
                ),
                rows,
            )

    def _latest(self, table: Table, condition) -> dict[str, dict[str, Any]]:
        """Each account's newest row meeting `condition` (one row each, however long the
        history)."""
        newest = (
            select(table.c.account, func.max(table.c.as_of).label("as_of"))
            .where(condition)
            .group_by(table.c.account)
            .subquery()
        )
        query = select(table).join(
            newest, and_(table.c.account == newest.c.account, table.c.as_of == newest.c.as_of)
        )
        with self.engine.connect() as conn:
            return {r.account: dict(r._mapping) for r in conn.execute(query)}

    # ---------------------------------------------------------------- mirror and cursors

    def save_records(self, rows: list[dict[str, Any]]) -> None:
        """Upsert mirror rows (kind, id, parent_id, modified_at, deleted, raw, data, error)."""
        if not rows:
            return
        with self.engine.begin() as conn:
            stmt = _upsert(self.engine, mirror)
            cols = ("parent_id", "modified_at", "deleted", "raw", "data", "error")
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["kind", "id"], set_={c: stmt.excluded[c] for c in cols}
                ),
                rows,
            )

    def iter_mirror(self) -> Iterator[tuple[str, str, str | None, bool, Any, str | None]]:
        """(kind, id, parent_id, deleted, data, error) for every mirrored record."""
        with self.engine.connect() as conn:
            result = conn.execution_options(yield_per=5000).execute(
                select(
                    mirror.c.kind,
                    mirror.c.id,
                    mirror.c.parent_id,
                    mirror.c.deleted,
                    mirror.c.data,
                    mirror.c.error,
                )
            )
            yield from result

    def mirrored(self, kind: str, record_id: str) -> SourceRecord | None:
        """The CRM record as last read, to re-map it without calling the CRM."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(mirror.c.raw, mirror.c.modified_at, mirror.c.deleted).where(
                    mirror.c.kind == kind, mirror.c.id == record_id
                )
            ).first()
        return SourceRecord(record_id, _aware(row[1]), row[0], row[2]) if row else None

    def cursor(self, kind: str) -> Cursor | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(cursors.c.modified_at, cursors.c.record_id).where(cursors.c.kind == kind)
            ).first()
        return Cursor(_aware(row[0]), row[1]) if row else None

    def advance_cursors(self, new: dict[str, Cursor]) -> None:
        """Move cursors forward only (never back), all in one transaction."""
        with self.engine.begin() as conn:
            for kind, cur in new.items():
                old = conn.execute(
                    select(cursors.c.modified_at, cursors.c.record_id).where(cursors.c.kind == kind)
                ).first()
                if old and Cursor(_aware(old[0]), old[1]) >= cur:
                    continue
                conn.execute(delete(cursors).where(cursors.c.kind == kind))
                conn.execute(
                    insert(cursors).values(
                        kind=kind,
                        modified_at=cur.modified_at,
                        record_id=cur.record_id,
                        updated_at=now(),
                    )
                )

    # ---------------------------------------------------------------- ledger

    def load_ledger(self) -> dict[tuple[str, str], dict[str, Any]]:
        with self.engine.connect() as conn:
            return {
                (k, key): f
                for k, key, f in conn.execute(select(ledger.c.kind, ledger.c.key, ledger.c.fields))
            }

    def ledger_keys(self, kind: str) -> set[str]:
        """Keys of what the connector wrote of one kind."""
        with self.engine.connect() as conn:
            return set(conn.execute(select(ledger.c.key).where(ledger.c.kind == kind)).scalars())

    def record_writes(self, rows: list[dict[str, Any]], run_id: int) -> None:
        """Ledger rows (kind, key, contract_id, crm_id, fields); fields=None removes the row."""
        if not rows:
            return
        with self.engine.begin() as conn:
            gone = [r for r in rows if r["fields"] is None]
            for r in gone:
                conn.execute(
                    delete(ledger).where(ledger.c.kind == r["kind"], ledger.c.key == r["key"])
                )
            keep = [
                {**r, "run_id": run_id, "written_at": now()}
                for r in rows
                if r["fields"] is not None
            ]
            if keep:
                stmt = _upsert(self.engine, ledger)
                conn.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["kind", "key"],
                        set_={
                            c: stmt.excluded[c]
                            for c in ("contract_id", "crm_id", "fields", "run_id", "written_at")
                        },
                    ),
                    keep,
                )

    # ---------------------------------------------------------------- runs

    def start_run(self, mode: str, as_of: str) -> int:
        """A new run; runs still marked running were killed (runs do not overlap)."""
        with self.engine.begin() as conn:
            conn.execute(
                update(runs)
                .where(runs.c.status == "running")
                .values(status="interrupted", error="the process stopped before the run ended")
            )
            return conn.execute(
                insert(runs).values(started_at=now(), status="running", mode=mode, as_of=as_of)
            ).inserted_primary_key[0]

    def finish_run(
        self,
        run_id: int,
        status: str,
        counts: dict[str, Any],
        api_calls: int,
        duration_s: float,
        error: str | None = None,
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(runs)
                .where(runs.c.id == run_id)
                .values(
                    finished_at=now(),
                    status=status,
                    counts=counts,
                    api_calls=api_calls,
                    duration_s=round(duration_s, 3),
                    error=error,
                )
            )

    def run_before(self, run_id: int) -> int | None:
        """The id of the run started last before `run_id` (None: it is the first)."""
        with self.engine.connect() as conn:
            return conn.execute(select(func.max(runs.c.id)).where(runs.c.id < run_id)).scalar()

    def list_runs(self, limit: int = 20) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(runs).order_by(runs.c.id.desc()).limit(limit)).mappings()
            return [dict(r) for r in rows]

    # ---------------------------------------------------------------- dead letters

    def add_dead_letters(self, letters: Iterable[dict[str, Any]], run_id: int | None) -> int:
        """Record failures. A record keeps one open letter per error (a read) or one in all (a
        refused write: its latest refusal); a repeat is counted again, not duplicated."""
        added = 0
        with self.engine.begin() as conn:
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

    def refused_writes(self) -> dict[tuple[str, str], dict[str, Any]]:
        """Open letters of refused writes, by (kind, key)."""
        query = select(dead_letters).where(
            dead_letters.c.stage == "write", dead_letters.c.resolved_at.is_(None)
        )
        with self.engine.connect() as conn:
            return {(r["kind"], r["record_id"]): dict(r) for r in conn.execute(query).mappings()}

    def resolve_dead_letters(self, kind: str, record_ids: Iterable[str]) -> None:
        ids = list(record_ids)
        if not ids:
            return
        with self.engine.begin() as conn:
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

    def list_dead_letters(self, include_resolved: bool = False) -> list[dict[str, Any]]:
        query = select(dead_letters).order_by(dead_letters.c.id)
        if not include_resolved:
            query = query.where(dead_letters.c.resolved_at.is_(None))
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]


def _upsert(engine: Engine, table: Table):
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    return sqlite_insert(table)


def sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()
