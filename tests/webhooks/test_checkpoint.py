"""SQLite's log on the request path: a delivery's own commit never writes the log back (a
checkpoint there is milliseconds to tens of ms in which a gevent web worker answers nothing);
the receiver asks for a checkpoint off the request path once enough was stored, and the log
stays short when the server runs it."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from crm_renewals.connector.config import load_config
from crm_renewals.connector.state import deliveries
from crm_renewals.connector.state.deliveries import deliveries_path
from tests.conftest import write_config
from tests.e2e.test_crash import renewals_cli
from tests.e2e.test_serve_and_scheduler import free_port, healthy, stop
from tests.scaleout.conftest import wait_for
from tests.webhooks.conftest import VECTOR, hubspot_headers, post_hubspot

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
    """The size of the log of the file the request path writes: the deliveries' own."""
    return os.path.getsize(Path(store.deliveries.db.engine.url.database + "-wal"))


@pytest.fixture
def small_checkpoints(monkeypatch):
    """A checkpoint due every 200 KB stored, instead of every 4 MB."""
    monkeypatch.setattr(deliveries, "CHECKPOINT_BYTES", 200_000)


def test_the_request_path_does_not_checkpoint_on_its_own_commits_below_40_mb(store, inbox):
    for _ in range(600):  # 6 MB of log, past SQLite's default 1,000 pages (4 MB)
        inbox.receive("hubspot", BATCH, wait=False)
    assert wal_bytes(store) > 6_000_000


def test_the_log_is_bounded_even_when_no_background_checkpoint_runs(store, inbox):
    """A steady stream never lets a background checkpoint find the log fully copied, so the
    log would never start over: the commit's own checkpoint past 40 MB bounds it."""
    for _ in range(5_000):  # 50 MB
        inbox.receive("hubspot", BATCH, wait=False)
    assert wal_bytes(store) < 45_000_000


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


def test_a_real_server_checkpoints_in_its_native_thread(tmp_path):
    """`renewals serve` (gunicorn, a gevent worker) with no inbox worker process (engine
    celery, its broker down): only the request path writes, so only its checkpoints, run in
    the worker's native thread, copy the log into the database file."""
    nowhere = "redis://127.0.0.1:1/0"  # nothing listens on port 1: enqueues fail, logged
    path = write_config(
        tmp_path,
        workers={"engine": "celery", "broker_url": nowhere},
        webhooks={"public_base_url": "https://connector.example.com"},
    )
    port = free_port()
    env = {**os.environ, "HUBSPOT_CLIENT_SECRET": VECTOR["client_secret"]}
    env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path / "metrics")
    cmd = [*renewals_cli(), "--config", str(path), "serve", "--bind", f"127.0.0.1:{port}"]
    serve = subprocess.Popen(
        [*cmd, "--workers", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env
    )
    try:
        wait_for(lambda: healthy(port), procs=[serve])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        body = json.dumps(json.loads(BATCH) * 10).encode()  # about 100 KB
        for _ in range(100):  # 10 MB, two and a half checkpoints' worth
            headers = hubspot_headers(body, ts=str(int(time.time() * 1000)))
            conn.request("POST", "/webhooks/hubspot", body, headers)
            answer = conn.getresponse()
            assert answer.status == 200, answer.read()
            answer.read()
        database = deliveries_path(load_config(path).data_path / "state.db")
        assert Path(f"{database}-wal").stat().st_size > 4_000_000
        # two checkpoints' worth copied in; under 1 MB when the request path never checkpoints
        assert database.stat().st_size > 7_000_000
    finally:
        err = stop(serve)
    assert "Traceback" not in err
