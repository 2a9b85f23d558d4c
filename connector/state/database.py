"""Opening the state database: which URLs it can be, the engine with its SQLite pragmas and
error hook, and the two ways a repository reaches it (a connection per call, or the one
connection of a unit of work)."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from sqlalchemy import Table, create_engine, event, text
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    DisconnectionError,
    NoSuchModuleError,
    OperationalError,
)

from crm_renewals.connector.errors import UnusableDatabaseError
from crm_renewals.connector.interrupts import deferred_interrupt

#: Databases the store can use (it needs upsert: INSERT ... ON CONFLICT), and the package
#: that provides each driver SQLAlchemy may pick for them.
BACKENDS = ("sqlite", "postgresql")
DRIVER_PACKAGES = {
    "psycopg": "psycopg[binary]",
    "psycopg2": "psycopg2-binary",
    "pg8000": "pg8000",
}


def now() -> datetime:
    return datetime.now(UTC)


def aware(moment: datetime | None) -> datetime | None:
    # SQLite hands datetimes back naive; everything we store is UTC
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


#: The driver of a URL that names none: psycopg 3 for PostgreSQL (the `postgres` extra), not
#: whichever SQLAlchemy would pick (psycopg2 before SQLAlchemy 2.1). `postgres://`, as hosting
#: services hand URLs out, is PostgreSQL too (SQLAlchemy no longer reads it).
DEFAULT_DRIVERS = {"postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg"}


def engine_url(url: str) -> URL:
    """`url` parsed, with our default driver when it names none (postgresql:// ->
    postgresql+psycopg://)."""
    parsed = make_url(url)
    if parsed.drivername in DEFAULT_DRIVERS:
        return parsed.set(drivername=DEFAULT_DRIVERS[parsed.drivername])
    return parsed


#: seconds to wait for a PostgreSQL server to answer (libpq waits for ever by default); a URL
#: may say otherwise (?connect_timeout=N)
PG_CONNECT_TIMEOUT_S = 10


def pg_lock_key(conn: Connection, purpose: str) -> int:
    """A PostgreSQL advisory lock key for `purpose` in the current schema (advisory locks are
    per database: two state stores in two schemas of one database keep theirs apart)."""
    schema = conn.execute(text("SELECT current_schema()")).scalar()
    return zlib.crc32(f"crm-renewals {purpose} {schema}".encode())


def url_problem(url: str) -> str | None:
    """What makes `url` unusable as the state database (a bad URL, a database kind the store
    cannot use, a driver that is not installed), with the fix; None if it looks usable."""
    try:
        parsed = engine_url(url)
    except (ArgumentError, ValueError):  # not shown: it may hold a password
        return "not a database URL (sqlite:///path/state.db, postgresql://user@host/database)"
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
    its password (user:***@, or ?password=***)."""
    parsed = make_url(url)
    path = sqlite_path(url)
    if path:
        return str(path)
    if "password" in parsed.query:
        parsed = parsed.update_query_dict({"password": "-"})
    return parsed.render_as_string(hide_password=True).replace("password=-", "password=***")


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


def database_failure(exc: BaseException) -> bool:
    """A failure of the database itself (locked, gone, disconnected), not of what was being
    stored: worth trying again, never a reason to set the data aside."""
    if isinstance(exc, OperationalError | DisconnectionError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def open_engine(url: str, name: str) -> Engine:
    """The engine of a usable `url` (see url_problem), its SQLite file's folder created."""
    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    parsed = engine_url(url)
    connect_args = {}
    if parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
        connect_args["connect_timeout"] = PG_CONNECT_TIMEOUT_S  # a host that drops packets
    engine = create_engine(parsed, future=True, connect_args=connect_args)
    event.listen(engine, "handle_error", partial(_unusable, name))
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", sqlite_pragmas)
    return engine


def create_schema(url: str, schema: str) -> None:
    """PostgreSQL: the schema a connection's state lives in, created if missing (a URL whose
    search_path names a missing schema connects, but its tables would land nowhere)."""
    engine = open_engine(url, database_name(url))
    try:
        with engine.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    except OperationalError as exc:
        raise UnusableDatabaseError(
            f"cannot open the state database {database_name(url)}: "
            f"{str(exc.orig).strip().splitlines()[0]}"
        ) from None
    finally:
        engine.dispose()


class Db:
    """How repositories of the store itself reach the database: a connection per read, and
    each write its own transaction (a unit of work of one call)."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def read(self) -> AbstractContextManager[Connection]:
        return self.engine.connect()

    @contextmanager
    def write(self) -> Iterator[Connection]:
        with deferred_interrupt(), self.engine.begin() as conn:
            yield conn

    def upsert(self, table: Table):
        """INSERT ... ON CONFLICT for this database's dialect."""
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(table)
        return sqlite_insert(table)


class SharedDb(Db):
    """How repositories of a unit of work reach the database: its one connection, inside its
    one transaction."""

    def __init__(self, conn: Connection):
        super().__init__(conn.engine)
        self.conn = conn

    def read(self) -> AbstractContextManager[Connection]:
        return nullcontext(self.conn)

    write = read
