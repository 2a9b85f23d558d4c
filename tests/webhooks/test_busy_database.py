"""The request path while another process holds SQLite's write lock on the deliveries' file:
the insert is not tried on the event loop with a wait; it is tried again every few ms for a
while, then goes to the server's blocking path, and the delivery is kept. The inbox worker's
writes to the state database do not hold it up at all."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from crm_renewals.connector.inbox import Inbox
from crm_renewals.connector.state import InboxBusy
from crm_renewals.webhooks.receiver import BUSY_RETRY_S
from tests.webhooks.conftest import post_vector


def _held(path: str) -> sqlite3.Connection:
    """Another process's write transaction on the SQLite file at `path`."""
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    return other


@pytest.fixture
def locked(store):
    """Another process's write transaction on the deliveries' file (another web worker's
    insert, the inbox worker's delete)."""
    other = _held(store.deliveries.db.engine.url.database)
    yield other
    other.close()


def test_a_no_wait_insert_says_busy_instead_of_waiting(store, locked):
    with pytest.raises(InboxBusy):
        Inbox(store).receive("hubspot", b"[]", wait=False)


def test_the_inbox_worker_writing_the_state_database_does_not_hold_up_a_delivery(store):
    """The worker stores events and settles them in the state database, at a lower CPU
    priority: a delivery is stored meanwhile, without waiting."""
    assert store.deliveries.db.engine.url.database != store.engine.url.database
    worker = _held(store.engine.url.database)
    try:
        inbox = Inbox(store)
        inbox.receive("hubspot", b"[]", wait=False)
        assert inbox.waiting() == 1
    finally:
        worker.close()


def test_a_delivery_waits_on_the_blocking_path_while_the_database_is_locked(app, locked, inbox):
    rx = app.extensions["renewals"]
    handed_over = []

    def blocking(fn, *args):  # as renewals serve's native thread: waits for the lock
        handed_over.append(fn)
        threading.Timer(0.2, locked.execute, ("COMMIT",)).start()
        return fn(*args)

    rx.blocking = blocking
    assert post_vector(app.test_client()).status_code == 200
    assert handed_over and inbox.waiting() == 1


def test_a_database_held_for_a_moment_is_tried_again_before_the_blocking_path(app, locked, inbox):
    """SQLite's own wait sleeps up to 100 ms between tries: a lock held for a few ms is
    tried again every few ms on the request path instead."""
    rx = app.extensions["renewals"]
    handed_over = []
    rx.blocking = lambda fn, *args: handed_over.append(fn) or fn(*args)
    threading.Timer(0.02, locked.execute, ("COMMIT",)).start()
    assert post_vector(app.test_client()).status_code == 200
    assert handed_over == [] and inbox.waiting() == 1


def test_a_database_that_stays_held_goes_to_the_blocking_path(app, locked, inbox):
    rx = app.extensions["renewals"]
    started, handed_over = time.monotonic(), []

    def blocking(fn, *args):
        handed_over.append(time.monotonic() - started)
        locked.execute("COMMIT")
        return fn(*args)

    rx.blocking = blocking
    assert post_vector(app.test_client()).status_code == 200
    assert len(handed_over) == 1 and handed_over[0] >= BUSY_RETRY_S
    assert inbox.waiting() == 1
