"""The request path while another process holds SQLite's write lock: the insert is not tried
on the event loop with a wait; it goes to the server's blocking path, and the delivery is kept."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from crm_renewals.connector.inbox import Inbox
from crm_renewals.connector.state import InboxBusy
from tests.webhooks.conftest import post_vector


@pytest.fixture
def locked(store):
    """Another process's write transaction on the state database."""
    other = sqlite3.connect(
        store.engine.url.database, isolation_level=None, check_same_thread=False
    )
    other.execute("BEGIN IMMEDIATE")
    yield other
    other.close()


def test_a_no_wait_insert_says_busy_instead_of_waiting(store, locked):
    with pytest.raises(InboxBusy):
        Inbox(store).receive("hubspot", b"[]", wait=False)


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
