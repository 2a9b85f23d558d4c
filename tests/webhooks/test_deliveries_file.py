"""A SQLite state database keeps its webhook deliveries in a file of their own beside it
(state/deliveries.py): the request path writes only that file, so it never waits for the inbox
worker's writes to the state. Deliveries an earlier release stored in the state database are
moved there; they are deleted only once their events are stored; a reset empties the file."""

from __future__ import annotations

import sqlite3
import subprocess
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
from sqlalchemy import insert
from sqlalchemy.exc import OperationalError

from crm_renewals.connector.inbox import Inbox
from crm_renewals.connector.state import StateStore
from crm_renewals.connector.state.deliveries import deliveries_path
from crm_renewals.connector.state.schema import deliveries
from crm_renewals.webhooks.deliveries import events_of
from tests.conftest import write_config
from tests.e2e.test_crash import renewals_cli
from tests.e2e.test_serve_and_scheduler import query


def hubspot_body(event_id: int) -> bytes:
    return f'[{{"eventId": {event_id}, "subscriptionType": "deal.creation"}}]'.encode()


def test_deliveries_are_stored_in_their_own_file_beside_the_state_database(tmp_path):
    state = tmp_path / "state.db"
    store = StateStore(f"sqlite:///{state}")
    try:
        Inbox(store).receive("hubspot", hubspot_body(1), wait=False)
        Inbox(store).receive("hubspot", hubspot_body(2))
    finally:
        store.close()
    assert deliveries_path(state) == tmp_path / "state-deliveries.db"
    assert query(tmp_path / "state-deliveries.db", "SELECT id, source FROM deliveries") == [
        (1, "hubspot"),
        (2, "hubspot"),
    ]
    assert query(state, "SELECT count(*) FROM deliveries") == [(0,)]


def test_deliveries_an_earlier_release_stored_in_the_state_database_are_moved_in_order(tmp_path):
    state = tmp_path / "state.db"
    StateStore(f"sqlite:///{state}").close()
    deliveries_path(state).unlink()  # as before this release: no deliveries file
    at = datetime(2026, 11, 30, 12, tzinfo=UTC)
    older = sqlite3.connect(state)
    with older:
        for event_id in (3, 1, 2):
            older.execute(
                "INSERT INTO deliveries (source, body, received_at) VALUES (?, ?, ?)",
                ("hubspot", hubspot_body(event_id), at.isoformat(" ")),
            )
    older.close()
    store = StateStore(f"sqlite:///{state}")
    try:
        inbox = Inbox(store)
        assert inbox.waiting() == 3
        assert store.deliveries.first_received() == at
        assert [d.body for d in store.deliveries.oldest(10)] == [
            hubspot_body(3),
            hubspot_body(1),
            hubspot_body(2),
        ]
        assert inbox.expand(events_of).new == {"hubspot": 3}
        assert inbox.waiting() == 0
    finally:
        store.close()
    assert query(state, "SELECT count(*) FROM deliveries") == [(0,)]


def test_deliveries_are_deleted_only_once_their_events_are_stored(tmp_path, monkeypatch):
    """The two files are not one transaction: a unit of work that fails as it commits its
    events leaves the deliveries to read again."""
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        inbox = Inbox(store)
        inbox.receive("hubspot", hubspot_body(1))
        begin = store.begin

        @contextmanager
        def failing_commit():
            with begin() as uow:
                yield uow
                raise OperationalError("COMMIT", {}, sqlite3.OperationalError("disk I/O error"))

        monkeypatch.setattr(store, "begin", failing_commit)
        with pytest.raises(OperationalError):
            inbox.expand(events_of)
        assert inbox.waiting() == 1 and inbox.all() == []
        monkeypatch.undo()
        assert inbox.expand(events_of).new == {"hubspot": 1}
        assert inbox.waiting() == 0
    finally:
        store.close()


def test_ids_of_deliveries_are_never_used_twice(tmp_path):
    """A dead letter names its delivery by id: a later delivery never takes the same one."""
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        inbox = Inbox(store)
        inbox.receive("hubspot", hubspot_body(1))
        (first,) = store.deliveries.oldest(1)
        inbox.expand(events_of)
        inbox.receive("hubspot", hubspot_body(2))
        (second,) = store.deliveries.oldest(1)
        assert second.id > first.id
    finally:
        store.close()


def test_a_reset_empties_the_deliveries_file(tmp_path):
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        Inbox(store).receive("hubspot", hubspot_body(1))
        store.reset()
        assert Inbox(store).waiting() == 0
    finally:
        store.close()


def test_a_damaged_deliveries_file_is_one_clear_line(tmp_path):
    config = write_config(tmp_path)
    state = tmp_path / "data" / "state.db"
    state.parent.mkdir(parents=True, exist_ok=True)
    deliveries_path(state).write_bytes(b"not a database at all" * 100)
    done = subprocess.run(
        [*renewals_cli(), "--config", str(config), "status"], capture_output=True, text=True
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert "state-deliveries.db is not a SQLite database" in done.stderr + done.stdout


def test_a_state_database_without_a_file_keeps_deliveries_in_its_table():
    """In memory (tests, one process) there is no file beside it: the table is used."""
    store = StateStore("sqlite://")
    try:
        assert not store.deliveries.apart
        with store.engine.begin() as conn:
            conn.execute(
                insert(deliveries).values(
                    source="hubspot", body=hubspot_body(1), received_at=datetime.now(UTC)
                )
            )
        assert Inbox(store).waiting() == 1
    finally:
        store.close()
