"""What the console's views share, one per app: the deployment (app.yaml, the registry store
that holds the connections and the console's users, secrets read once) and, opened on first
use and kept, one state per CRM connection: its own configuration, state store, CRM context
(built on first use, again when the mapping file changes, one use at a time), `doctor`
verdict, report cache and CRM field cache. Which connection a request is for is
console.current's business; `current()` is that connection's state."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from flask import current_app, g

from crm_renewals.connector import bootstrap, connections
from crm_renewals.connector.config import AppConfig
from crm_renewals.connector.connections import DEFAULT, Connection
from crm_renewals.connector.errors import ConnectorError
from crm_renewals.connector.ports import Check
from crm_renewals.connector.services.context import Context
from crm_renewals.connector.services.doctor import doctor
from crm_renewals.connector.services.report import ReportCache
from crm_renewals.connector.services.synced import synced_book
from crm_renewals.connector.state import StateStore

log = logging.getLogger(__name__)
SECRET_ENV = "RENEWALS_SECRET_KEY"
#: the `doctor` verdict is kept this long: every page view would otherwise cost CRM calls
DOCTOR_TTL_S = 600


@dataclass(frozen=True)
class Verdict:
    """`renewals doctor`'s checks as of `at` (epoch seconds); `error`: it could not run."""

    checks: tuple[Check, ...]
    at: float
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and all(c.ok for c in self.checks)


@dataclass
class ConnectionState:
    """One connection's: what the data pages read and the actions they start act on."""

    connection: Connection
    config: AppConfig
    store: StateStore
    env: Mapping[str, str]
    #: whether closing this state closes the store (not the registry, which `default` shares)
    owns_store: bool = True
    reports: ReportCache = field(default_factory=ReportCache)
    #: per-connection memo of the pages (the CRM's fields by object, mapping checks...)
    memo: dict[Any, Any] = field(default_factory=dict)
    _context: Context | None = None
    _mapping_stamp: tuple[int, int] | None = None
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _verdict: Verdict | None = None

    @property
    def name(self) -> str:
        return self.connection.name

    @contextmanager
    def context(self) -> Iterator[Context]:
        """The use cases' Context (a CRM adapter, the mapping as the file is now), held by
        one request at a time."""
        with self._lock:
            stamp = _stamp(self.config.mapping_path)
            if self._context is None or stamp != self._mapping_stamp:
                self.close_context()
                self._context = bootstrap.build(self.config)
                self._mapping_stamp = stamp
            yield self._context

    def doctor(self, refresh: bool = False) -> Verdict:
        """The connection's `doctor` checks (what `renewals doctor --connection NAME` prints),
        run again when asked or older than DOCTOR_TTL_S."""
        with self._lock:
            fresh = self._verdict and time.time() - self._verdict.at < DOCTOR_TTL_S
            if refresh or not fresh:
                try:
                    with self.context() as ctx:
                        checks = doctor(ctx.crm, self.config, self.env)
                        self._verdict = Verdict(tuple(checks), time.time())
                except ConnectorError as exc:  # cannot even connect: that is the verdict
                    self.close_context()
                    self._verdict = Verdict((), time.time(), f"{type(exc).__name__}: {exc}")
            return self._verdict

    def warm(self) -> None:
        """Load the synced book now if a run changed it and none is going: the first page
        after a run then finds it loaded."""
        latest = self.store.runs.list(1)
        if not latest or latest[0].status != "running":
            synced_book(self.store)

    def close_context(self) -> None:
        with self._lock:
            if self._context is not None:
                self._context.close()
                self._context = None

    def close(self) -> None:
        self.close_context()
        if self.owns_store:
            self.store.close()


@dataclass
class ConsoleState:
    """The deployment's console: app.yaml (`config`), the registry (`store`: the connections,
    the console's users and sign-in failures, and the default connection's own state), and
    the connections' states, each opened when first asked for."""

    config: AppConfig
    store: StateStore
    env: Mapping[str, str]
    #: whether closing the console closes the registry (it opened it)
    owns_store: bool = False
    _states: dict[str, tuple[tuple, ConnectionState]] = field(default_factory=dict)
    _lock: threading.RLock = field(default_factory=threading.RLock)

    @property
    def secret_key(self) -> str | None:
        return (self.env.get(SECRET_ENV) or "").strip() or None

    @property
    def registry(self) -> StateStore:
        return self.store

    def connections(self) -> list[Connection]:
        """The deployment's connections as the registry says now (removed ones left out)."""
        return connections.connections(self.config, self.store)

    def of(self, conn: Connection) -> ConnectionState:
        """The state of `conn`, opened now if it is not yet (again if the connection was
        removed and added anew with another CRM or authorisation since)."""
        key = (conn.crm, conn.auth, conn.created_at)
        with self._lock:
            kept = self._states.get(conn.name)
            if kept is not None and kept[0] == key:
                kept[1].connection = conn  # its status may have changed: shown as it is now
                return kept[1]
            if kept is not None:
                kept[1].close()
                del self._states[conn.name]
            state = self._open(conn)
            self._states[conn.name] = (key, state)
            return state

    def _open(self, conn: Connection) -> ConnectionState:
        config = connections.configuration(self.config, conn)
        if conn.name == DEFAULT:  # its state is the registry's database: one store for both
            return ConnectionState(conn, config, self.store, self.env, owns_store=False)
        return ConnectionState(conn, config, bootstrap.open_store(config), self.env)

    def sharing_mapping(self, state: ConnectionState) -> list[str]:
        """The other connections whose mapping is the same file as `state`'s: a change saved
        from one is theirs too (a connection's own file may name a mapping of its own)."""
        mine = state.config.mapping_path.resolve()
        names = []
        for conn in self.connections():
            if conn.name == state.name:
                continue
            try:
                if self.of(conn).config.mapping_path.resolve() == mine:
                    names.append(conn.name)
            except ConnectorError:  # its settings do not load: not using any file now
                continue
        return names

    def forget(self, name: str) -> None:
        """Close the state of connection `name` (disconnected, removed): opened again, as it
        is then, when next asked for."""
        with self._lock:
            kept = self._states.pop(name, None)
        if kept is not None:
            kept[1].close()

    def warm(self) -> None:
        """Each connection's synced book loaded now if a run changed it (`renewals serve`
        calls this every few seconds); one connection that cannot be opened stops no other."""
        for conn in self.connections():
            try:
                self.of(conn).warm()
            except ConnectorError as exc:
                log.warning("console: connection %s cannot be opened: %s", conn.name, exc)

    def close(self) -> None:
        with self._lock:
            for _key, state in self._states.values():
                state.close()
            self._states.clear()
        if self.owns_store:
            self.store.close()


def _stamp(path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def console() -> ConsoleState:
    """The console state of the app handling this request."""
    return current_app.extensions["console"]


class Unavailable(Exception):
    """The connection this request is for cannot be shown (none exists, or its settings do
    not load): the page says why (console.current answers it)."""


def current() -> ConnectionState:
    """The state of the connection this request is for (console.current chose it), opened
    on first use."""
    state = g.get("connection_state")
    if state is None:
        conn = g.get("connection")
        if conn is None:
            raise Unavailable(
                "This deployment has no connection: connect a CRM on the Connections page."
            )
        try:
            state = console().of(conn)
        except ConnectorError as exc:
            raise Unavailable(f"Connection {conn.name!r} cannot be opened: {exc}") from exc
        g.connection_state = state
    return state
