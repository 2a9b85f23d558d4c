"""The state store and its unit of work: the repositories, each the one owner of its tables,
reached through `StateStore(url)` (each call on its own) or `store.begin()` (together)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import func, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, OperationalError

from crm_renewals.connector.errors import UnusableDatabaseError
from crm_renewals.connector.interrupts import deferred_interrupt
from crm_renewals.connector.state.audit import AuditRepository
from crm_renewals.connector.state.browse import BrowseRepository
from crm_renewals.connector.state.connections import ConnectionRepository, OAuthFlowRepository
from crm_renewals.connector.state.database import (
    Db,
    SharedDb,
    database_name,
    open_engine,
    sqlite_path,
    url_problem,
)
from crm_renewals.connector.state.dead_letters import DeadLetterRepository
from crm_renewals.connector.state.deliveries import DeliveryRepository, adopt, deliveries_file
from crm_renewals.connector.state.history import HistoryRepository
from crm_renewals.connector.state.inbox import InboxRepository
from crm_renewals.connector.state.jobs import JobRunRepository
from crm_renewals.connector.state.ledger import LedgerRepository
from crm_renewals.connector.state.migrations import migrate
from crm_renewals.connector.state.mirror import CursorRepository, MirrorRepository
from crm_renewals.connector.state.notices import NoticeRepository
from crm_renewals.connector.state.plan_index import PlanIndexRepository
from crm_renewals.connector.state.runs import RunRepository
from crm_renewals.connector.state.schema import (
    SCHEMA_VERSION,
    deliveries,
    meta,
    schema_version,
)
from crm_renewals.connector.state.signals import SignalRepository
from crm_renewals.connector.state.users import UserRepository
from crm_renewals.connector.state.versions import ConfigVersionRepository

#: PostgreSQL URLs this process has brought to this release's schema: opening one again reads
#: its version only. The full check (a lock, create_all's catalog queries) costs the server
#: 20-80 ms once a database holds a thousand connections' schemas, and a Celery worker opens a
#: connection's store per task, the scheduler's sweep every connection's per lease. (SQLite's
#: check is cheap: it is made every time.)
_MIGRATED: set[str] = set()


def _still_current(conn: Connection, url: str) -> bool:
    """A database this process migrated, still at this release's version (not restored from
    an older backup, not dropped) since."""
    if url not in _MIGRATED:
        return False
    try:
        with conn.begin_nested():
            found = conn.execute(select(func.max(schema_version.c.version))).scalar()
    except DBAPIError:
        return False
    return found == SCHEMA_VERSION


class Repositories:
    """Every repository, on one way of reaching the database."""

    def __init__(self, db: Db, deliveries_db: Db | None = None):
        self.mirror = MirrorRepository(db)
        self.cursors = CursorRepository(db)
        self.ledger = LedgerRepository(db)
        self.plan_index = PlanIndexRepository(db)
        self.runs = RunRepository(db)
        self.dead_letters = DeadLetterRepository(db)
        self.signals = SignalRepository(db)
        self.history = HistoryRepository(db)
        self.deliveries = DeliveryRepository(deliveries_db or db, apart=deliveries_db is not None)
        self.inbox = InboxRepository(db)
        self.jobs = JobRunRepository(db)
        self.versions = ConfigVersionRepository(db)
        self.users = UserRepository(db)
        self.audit = AuditRepository(db)
        self.browse = BrowseRepository(db)
        self.notices = NoticeRepository(db)
        self.connections = ConnectionRepository(db)
        self.oauth_flows = OAuthFlowRepository(db)


class UnitOfWork(Repositories):
    """The repositories on one connection, in one transaction: what is written through them
    commits together when the `with store.begin()` block ends, or not at all if it raises."""

    def __init__(self, conn: Connection, deliveries_db: Db | None = None):
        super().__init__(SharedDb(conn), deliveries_db)
        self.connection = conn


class StateStore(Repositories):
    """The state database (SQLAlchemy; SQLite by default), its schema created or migrated as
    it opens. A write through `store.<repository>` commits on its own; writes that belong
    together go through `with store.begin() as uow:`."""

    def __init__(self, url: str):
        problem = url_problem(url)
        if problem:
            raise UnusableDatabaseError(f"state.url: {problem}")
        self.name = database_name(url)
        self.engine = open_engine(url, self.name)
        #: SQLite file: the deliveries' own file beside it (state/deliveries.py)
        self._deliveries: Db | None = None
        try:
            with self.engine.begin() as conn:
                if not _still_current(conn, url):
                    migrate(conn, self.name)
                    if conn.dialect.name == "postgresql":
                        _MIGRATED.add(url)
            path = sqlite_path(url)
            if path is not None:
                self._deliveries = deliveries_file(path)
                adopt(self.engine, self._deliveries)
        except OperationalError as exc:  # cannot connect (a server down, a wrong password)
            self.close()
            raise UnusableDatabaseError(
                f"cannot open the state database {self.name}: "
                f"{str(exc.orig).strip().splitlines()[0]}"
            ) from None
        except BaseException:
            self.close()
            raise
        super().__init__(Db(self.engine), self._deliveries)

    @contextmanager
    def begin(self) -> Iterator[UnitOfWork]:
        """A unit of work: its repositories' writes commit together, or none of them."""
        with deferred_interrupt(), self.engine.begin() as conn:  # Ctrl-C waits for the commit
            yield UnitOfWork(conn, self._deliveries)

    def reset(self) -> None:
        """Empty every table but the schema's version, in one transaction: the state of a new
        install (what deleting a SQLite file does, for any database), and the deliveries'
        own file (SQLite)."""
        if self._deliveries is not None:
            with self._deliveries.write() as conn:
                conn.execute(deliveries.delete())
        tables = [t for t in reversed(meta.sorted_tables) if t is not schema_version]
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":  # ids start at 1 again, as in a new database
                names = ", ".join(conn.dialect.identifier_preparer.format_table(t) for t in tables)
                conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY"))
                return
            for table in tables:
                conn.execute(table.delete())

    def close(self) -> None:
        self.engine.dispose()
        if self._deliveries is not None:
            self._deliveries.engine.dispose()
