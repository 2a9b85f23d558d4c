"""/healthz and /healthz/<connection> report each connection; a connection needing reconnect
degrades the deployment's status and is named; /metrics has one series per connection."""

from __future__ import annotations

from crm_renewals.connector import connections
from tests.connections_serve.conftest import PORTAL_A, PORTAL_B, batch, post_hubspot


def test_healthz_keeps_its_keys_summed_and_reports_each_connection(client):
    post_hubspot(client, batch((1, PORTAL_A, 10)))
    post_hubspot(client, batch((2, PORTAL_B, 10), (3, PORTAL_A, 11)))
    resp = client.get("/healthz")
    assert resp.status_code == 200
    body = resp.json
    assert (body["status"], body["database"], body["worker"]) == ("ok", "ok", "n/a")
    assert (body["inbox_depth"], body["deliveries_waiting"]) == (0, 3)
    each = body["connections"]
    assert list(each) == ["default", "hs-a", "hs-b", "hs-p", "second", "sf-s"]
    assert each["hs-a"]["deliveries_waiting"] == 2 and each["hs-b"]["deliveries_waiting"] == 1
    assert each["hs-p"] == {
        "status": "ok",
        "database": "ok",
        "inbox_depth": 0,
        "deliveries_waiting": 0,
        "oldest_wait_seconds": 0,
        "connection_status": "pending",
    }


def test_a_connection_needing_reconnect_degrades_the_status_and_is_named(client, registry):
    row = registry.connections.get("hs-b")
    registry.connections.save(
        row.replace(status=connections.NEEDS_RECONNECT, status_reason="refresh token revoked")
    )
    client.application.extensions["renewals"].deployment.connections(fresh=True)
    resp = client.get("/healthz")
    assert resp.status_code == 200  # a restart would not help: an admin must reconnect it
    assert resp.json["status"] == "degraded"
    assert "hs-b needs reconnecting (refresh token revoked)" in resp.json["reason"]
    assert resp.json["connections"]["hs-b"]["connection_status"] == "needs_reconnect"
    one = client.get("/healthz/hs-b")
    assert one.status_code == 200 and one.json["status"] == "degraded"
    assert client.get("/healthz/hs-a").json["status"] == "ok"


def test_healthz_of_one_connection_and_of_none(client, app):
    post_hubspot(client, batch((1, PORTAL_A, 10)))
    resp = client.get("/healthz/hs-a")
    assert resp.status_code == 200
    assert resp.json == {
        "connection": "hs-a",
        "status": "ok",
        "database": "ok",
        "inbox_depth": 0,
        "deliveries_waiting": 1,
        "oldest_wait_seconds": 0,
        "connection_status": "connected",
        "worker": "n/a",
    }
    for name in ("nobody", "Not..A..Name"):
        missing = client.get(f"/healthz/{name}")
        assert missing.status_code == 404 and missing.json == {"error": "unknown connection"}
    app.extensions["renewals"].worker_alive = lambda: False
    assert client.get("/healthz/hs-a").status_code == 503


def test_metrics_have_one_series_per_connection(client):
    post_hubspot(client, batch((1, PORTAL_A, 10)))
    text = client.get("/metrics").data.decode()
    for name in ("default", "second", "hs-a", "hs-b", "hs-p", "sf-s"):
        assert f'renewals_inbox_queue_depth{{connection="{name}"}} 0.0' in text
    assert 'renewals_inbox_deliveries_waiting{connection="hs-a"} 1.0' in text
    assert 'renewals_inbox_deliveries_waiting{connection="hs-b"} 0.0' in text
    assert 'renewals_webhook_events_received_total{connection="hs-a",source="hubspot"} 1.0' in text


def test_healthz_of_many_connections_reads_their_databases_at_most_every_cache_seconds(
    client, monkeypatch
):
    from crm_renewals.webhooks import health

    monkeypatch.setattr(health, "MANY_CONNECTIONS", 2)  # the fixture's six are "many"
    rx = client.application.extensions["renewals"]
    assert client.get("/healthz").json["deliveries_waiting"] == 0
    post_hubspot(client, batch((1, PORTAL_A, 10)))
    assert client.get("/healthz").json["deliveries_waiting"] == 0  # the answer kept
    rx.clock.now += health.CACHE_SECONDS
    body = client.get("/healthz").json
    assert (
        body["deliveries_waiting"] == 1 and body["connections"]["hs-a"]["deliveries_waiting"] == 1
    )
    assert client.get("/healthz/hs-a").json["deliveries_waiting"] == 1  # one: never kept
