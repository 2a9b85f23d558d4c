"""SQLite's log on the request path: a delivery's own commit never writes the log back (a
checkpoint there is milliseconds to tens of ms in which a gevent web worker answers nothing);
the receiver asks for a checkpoint off the request path once enough was stored, and the log
stays short when the server runs it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from crm_renewals.connector.state import deliveries
from tests.webhooks.conftest import post_hubspot

#: about 10 KB a delivery: a HubSpot batch of 10 events with long property values
BATCH = json.dumps(
    [
        {
            "eventId": i,
            "subscriptionId": 1,
            "portalId": 62515,
            "occurredAt": 1,
            "subscriptionType": "deal.propertyChange",
            "objectId": i,
            "propertyName": "description",
            "propertyValue": "x" * 1000,
        }
        for i in range(10)
    ]
).encode()


def wal_bytes(store) -> int:
    return os.path.getsize(Path(store.engine.url.database + "-wal"))


@pytest.fixture
def small_checkpoints(monkeypatch):
    """A checkpoint due every 200 KB stored, instead of every 4 MB."""
    monkeypatch.setattr(deliveries, "CHECKPOINT_BYTES", 200_000)


def test_the_request_path_never_checkpoints_on_its_own_commits(store, inbox):
    for _ in range(600):  # 6 MB of log, past SQLite's default 1,000 pages (4 MB)
        inbox.receive("hubspot", BATCH, wait=False)
    assert wal_bytes(store) > 6_000_000


def test_a_checkpoint_is_asked_for_every_so_many_bytes_and_run_off_the_request(
    app, store, small_checkpoints
):
    rx = app.extensions["renewals"]
    asked = []
    rx.background = asked.append
    client = app.test_client()
    for _ in range(45):  # 450 KB
        assert post_hubspot(client, BATCH).status_code == 200
    assert [fn.__name__ for fn in asked] == ["checkpoint", "checkpoint"]


def test_the_log_stays_short_when_the_server_runs_the_checkpoints(app, store, small_checkpoints):
    app.extensions["renewals"].background = lambda fn: fn()
    client = app.test_client()
    for _ in range(150):  # 1.5 MB
        assert post_hubspot(client, BATCH).status_code == 200
    assert wal_bytes(store) < 1_000_000  # 1.5 MB without them
