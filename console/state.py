"""What the console's views share, one per app: configuration, the state store, secrets read
once, and the CRM context the services that need one get (built on first use, again when the
mapping file changes, one use at a time)."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from flask import current_app

from connector import bootstrap
from connector.config import AppConfig
from connector.services.context import Context
from connector.state import StateStore

SECRET_ENV = "RENEWALS_SECRET_KEY"


@dataclass
class ConsoleState:
    config: AppConfig
    store: StateStore
    env: Mapping[str, str]
    _context: Context | None = None
    _mapping_stamp: tuple[int, int] | None = None
    _lock: threading.RLock = field(default_factory=threading.RLock)

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
