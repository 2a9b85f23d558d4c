"""What the console's views share, one per app: configuration, the state store, secrets read
once, and the CRM context the services that need one get (built on first use, again when the
mapping file changes, one use at a time)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from flask import current_app

from crm_renewals.connector import bootstrap
from crm_renewals.connector.config import AppConfig
from crm_renewals.connector.errors import ConnectorError
from crm_renewals.connector.ports import Check
from crm_renewals.connector.services.context import Context
from crm_renewals.connector.services.doctor import doctor
from crm_renewals.connector.services.synced import synced_book
from crm_renewals.connector.state import StateStore

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
class ConsoleState:
    config: AppConfig
    store: StateStore
    env: Mapping[str, str]
    _context: Context | None = None
    _mapping_stamp: tuple[int, int] | None = None
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _verdict: Verdict | None = None

    @property
    def secret_key(self) -> str | None:
        return (self.env.get(SECRET_ENV) or "").strip() or None

    @contextmanager
    def context(self) -> Iterator[Context]:
        """The use cases' Context (a CRM adapter, the mapping as the file is now), held by
        one request at a time."""
        with self._lock:
            stamp = _stamp(self.config.mapping_path)
            if self._context is None or stamp != self._mapping_stamp:
                self.close()
                self._context = bootstrap.build(self.config)
                self._mapping_stamp = stamp
            yield self._context

    def doctor(self, refresh: bool = False) -> Verdict:
        """The CRM connection's `doctor` checks (what `renewals doctor` prints), run again when
        asked or older than DOCTOR_TTL_S."""
        with self._lock:
            fresh = self._verdict and time.time() - self._verdict.at < DOCTOR_TTL_S
            if refresh or not fresh:
                try:
                    with self.context() as ctx:
                        checks = doctor(ctx.crm, self.config, self.env)
                        self._verdict = Verdict(tuple(checks), time.time())
                except ConnectorError as exc:  # cannot even connect: that is the verdict
                    self.close()
                    self._verdict = Verdict((), time.time(), f"{type(exc).__name__}: {exc}")
            return self._verdict

    def warm(self) -> None:
        """Load the synced book now if a run changed it and none is going: the first page
        after a run then finds it loaded (`renewals serve` calls this every few seconds)."""
        latest = self.store.runs.list(1)
        if not latest or latest[0].status != "running":
            synced_book(self.store)

    def close(self) -> None:
        with self._lock:
            if self._context is not None:
                self._context.close()
                self._context = None


def _stamp(path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def console() -> ConsoleState:
    """The console state of the app handling this request."""
    return current_app.extensions["console"]
