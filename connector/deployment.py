"""The connections a long-running process serves (`renewals serve`, its inbox worker, the
scheduler): app.yaml (the deployment), the registry of connections, and each connection's
configuration and state store, opened on first use and kept; only the WARM_STORES most lately
used keep their idle database connections.

The registry is re-read at most every `refresh_seconds` (and on a miss, at most every
`miss_seconds`), so a connection added by an OAuth install in another process is served
within seconds without a restart, while a burst of requests reads it once."""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from crm_renewals.connector import bootstrap, connections
from crm_renewals.connector.config import AppConfig
from crm_renewals.connector.connections import DEFAULT, Connection
from crm_renewals.connector.errors import ConfigError
from crm_renewals.connector.state import StateStore

log = logging.getLogger(__name__)
REFRESH_S = 5.0
MISS_S = 1.0
#: stores whose pooled database sessions are kept between uses; beyond it the least lately used
#: one lets its idle sessions go (its engine connects again when next used). A deployment of a
#: thousand connections on PostgreSQL would otherwise hold a session per connection it touched
#: (a webhook, a /metrics scrape reads them all) past the server's max_connections (100).
WARM_STORES = 16


@dataclass
class _Opened:
    """What is kept of one connection: its configuration (by crm: a changed CRM rebuilds it)
    and its state store."""

    crm: str
    config: AppConfig
    store: StateStore | None = None


class Deployment:
    """app.yaml (`base`) and its connections. `default_store`: the default connection's state
    store when the caller has it open already (it is also the registry, unless app.yaml is
    itself a connection's configuration)."""

    def __init__(
        self,
        base: AppConfig,
        default_store: StateStore | None = None,
        *,
        refresh_seconds: float = REFRESH_S,
        miss_seconds: float = MISS_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.base = base
        self.refresh_seconds, self.miss_seconds, self.clock = refresh_seconds, miss_seconds, clock
        self._default_store = default_store
        self._own: list[StateStore] = []
        self._registry: StateStore | None = None
        self._lock = threading.RLock()
        self._list: list[Connection] = []
        self._read_at = float("-inf")
        self._opened: dict[str, _Opened] = {}
        self._warm: OrderedDict[str, StateStore] = OrderedDict()

    @property
    def registry(self) -> StateStore:
        with self._lock:
            if self._registry is None:
                same = self.base.connections_url == self.base.state_url
                if same and self._default_store is not None:
                    self._registry = self._default_store
                else:
                    self._registry = bootstrap.open_registry(self.base)
                    self._own.append(self._registry)
            return self._registry

    def connections(self, *, fresh: bool = False) -> list[Connection]:
        """Every connection but removed ones (`default` first), re-read when stale or `fresh`."""
        with self._lock:
            if fresh or self.clock() - self._read_at >= self.refresh_seconds:
                self._reread()
            return list(self._list)

    def _reread(self) -> None:
        self._list = connections.connections(self.base, self.registry)
        self._read_at = self.clock()

    def after_miss(self) -> list[Connection]:
        """The connections once something was not found among them: read again unless they
        were read within miss_seconds (a burst of unknown names reads the registry once)."""
        with self._lock:
            if self.clock() - self._read_at >= self.miss_seconds:
                self._reread()
            return list(self._list)

    def find(self, name: str) -> Connection | None:
        """The connection `name`; on a miss the registry is read again (at most every
        miss_seconds), so one added moments ago is found."""
        with self._lock:
            found = self._named(name, self.connections())
            return found or self._named(name, self.after_miss())

    @staticmethod
    def _named(name: str, among: list[Connection]) -> Connection | None:
        return next((c for c in among if c.name == name), None)

    def runnable(self) -> list[Connection]:
        return [c for c in self.connections() if c.runnable]

    def config(self, conn: Connection) -> AppConfig:
        """The configuration of `conn` (ConfigError if its settings file is wrong)."""
        with self._lock:
            opened = self._opened.get(conn.name)
            if opened is None or opened.crm != conn.crm:
                if opened is not None and opened.store is not None:
                    self._close(opened.store)
                opened = _Opened(conn.crm, connections.configuration(self.base, conn))
                self._opened[conn.name] = opened
            return opened.config

    def store(self, conn: Connection) -> StateStore:
        """The state store of `conn`, opened (and created) on first use."""
        cfg = self.config(conn)
        with self._lock:
            opened = self._opened[conn.name]
            if opened.store is None:
                if conn.name == DEFAULT and self._default_store is not None:
                    opened.store = self._default_store
                else:
                    opened.store = bootstrap.open_store(cfg)
                    self._own.append(opened.store)
            self._keep_warm(conn.name, opened.store)
            return opened.store

    def _keep_warm(self, name: str, store: StateStore) -> None:
        """`store` most lately used; the least lately used beyond WARM_STORES cooled: its idle
        sessions closed (a session in use by another thread is closed when it is given back)."""
        self._warm.pop(name, None)
        self._warm[name] = store
        while len(self._warm) > WARM_STORES:
            _, cold = self._warm.popitem(last=False)
            if cold is not self._default_store and cold is not self._registry:
                cold.engine.dispose()

    def stores(
        self, conns: list[Connection] | None = None
    ) -> Iterator[tuple[Connection, StateStore | None, str | None]]:
        """Each connection (of `conns`, default all) with its store, or None and why it could
        not be opened; one at a time, so a loop over a thousand keeps WARM_STORES sessions."""
        for conn in self.connections() if conns is None else conns:
            try:
                store = self.store(conn)
            except ConfigError as exc:
                yield conn, None, str(exc.problems[0]) if exc.problems else str(exc)
            except Exception as exc:  # noqa: BLE001 - one connection's database, reported
                yield conn, None, type(exc).__name__
            else:
                yield conn, store, None

    def forget(self, name: str) -> None:
        """Let go of a connection's configuration and store (removed, or its settings changed)."""
        with self._lock:
            opened = self._opened.pop(name, None)
            self._warm.pop(name, None)
            if opened is not None and opened.store is not None:
                self._close(opened.store)

    def _close(self, store: StateStore) -> None:
        if store in self._own:
            self._own.remove(store)
            store.close()

    def close(self) -> None:
        with self._lock:
            for store in self._own:
                store.close()
            self._own.clear()
            self._opened.clear()
            self._warm.clear()
            self._registry = None
