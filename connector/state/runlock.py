"""One run at a time per state database: a scheduled sync, a webhook batch and a CLI sync
never overlap (a run marks runs still `running` as interrupted, and plans against the ledger).

SQLite: an flock on a file next to the database; PostgreSQL: a session advisory lock (one per
schema). Both are released by the operating system or the server when the holder dies, so a
killed run never leaves the lock behind.
"""

from __future__ import annotations

import fcntl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text

from crm_renewals.connector.errors import ConnectorError
from crm_renewals.connector.state.database import pg_lock_key, sqlite_path

if TYPE_CHECKING:
    from crm_renewals.connector.state.store import StateStore

_local_locks: dict[str, threading.Lock] = {}
_guard = threading.Lock()


class RunLockBusy(ConnectorError):
    """Another run holds the lock on this state database."""


@contextmanager
def run_lock(store: StateStore, wait: float = 0.0, poll: float = 0.05) -> Iterator[None]:
    """Hold the run lock; wait up to `wait` seconds for it, else raise RunLockBusy."""
    url = store.engine.url
    path = sqlite_path(url.render_as_string(hide_password=False))
    if url.get_backend_name() == "postgresql":
        with _advisory(store, wait, poll):
            yield
    elif path is not None:  # the database's file, also of a `file:` URI
        with _flock(path.with_name(path.name + ".run.lock"), wait, poll):
            yield
    else:  # in-memory database: only this process can see it
        with _guard:
            lock = _local_locks.setdefault(str(url), threading.Lock())
        acquired = lock.acquire(timeout=wait) if wait > 0 else lock.acquire(blocking=False)
        if not acquired:
            raise RunLockBusy("another run is in progress")
        try:
            yield
        finally:
            lock.release()


def _until(wait: float, poll: float, attempt) -> bool:
    deadline = time.monotonic() + wait
    while True:
        if attempt():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll)


@contextmanager
def _flock(path: Path, wait: float, poll: float) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:

        def attempt() -> bool:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                return False

        if not _until(wait, poll, attempt):
            raise RunLockBusy(f"another run is in progress (lock {path})")
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


@contextmanager
def _advisory(store: StateStore, wait: float, poll: float) -> Iterator[None]:
    with store.engine.connect() as conn:
        key = pg_lock_key(conn, "run lock")

        def attempt() -> bool:
            taken = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
            conn.commit()  # the lock is the session's: no transaction stays open while held
            return bool(taken)

        if not _until(wait, poll, attempt):
            raise RunLockBusy("another run is in progress (advisory lock)")
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            conn.commit()
