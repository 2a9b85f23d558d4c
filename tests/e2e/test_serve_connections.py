"""A real `renewals serve` on loopback serving two sandbox connections and a HubSpot one:
it says which it serves and which it skips, routes each webhook to its connection's own
state database, its inbox worker drains each, /healthz and /metrics report each."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import os
import subprocess
import time

from crm_renewals.connector import bootstrap, connections
from crm_renewals.connector.config import load_config
from crm_renewals.connector.services import connections as manage
from crm_renewals.connector.state.deliveries import deliveries_path
from tests.conftest import write_config
from tests.e2e.test_crash import renewals_cli
from tests.e2e.test_serve_and_scheduler import free_port, healthy, metrics, query, stop, wait_for
from tests.webhooks.conftest import SF_ORG, SIGNALS_SECRET, VECTOR

PUBLIC = "https://connector.example.com"


def _post(port: int, path: str, body: bytes, headers: dict) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST", path, body, headers)
    resp = conn.getresponse()
    return resp.status, json.loads(resp.read() or b"{}")


def _get(port: int, path: str) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path)
    resp = conn.getresponse()
    return resp.status, json.loads(resp.read())


def hubspot(port: int, events: list[dict]) -> tuple[int, dict]:
    """Signed now, as HubSpot's guide says: base64(HMAC-SHA256(secret, POST + URI + body +
    timestamp in ms))."""
    body = json.dumps(events).encode()
    ts = str(int(time.time() * 1000))
    message = b"POST" + f"{PUBLIC}/webhooks/hubspot".encode() + body + ts.encode()
    mac = hmac.new(VECTOR["client_secret"].encode(), message, hashlib.sha256).digest()
    headers = {
        "X-HubSpot-Request-Timestamp": ts,
        "X-HubSpot-Signature-v3": base64.b64encode(mac).decode(),
        "Content-Type": "application/json",
    }
    return _post(port, "/webhooks/hubspot", body, headers)


def signals(port: int, path: str, items: list[dict]) -> tuple[int, dict]:
    body = json.dumps(items).encode()
    ts = str(int(time.time()))
    mac = hmac.new(SIGNALS_SECRET.encode(), ts.encode() + b"." + body, hashlib.sha256)
    headers = {
        "X-Signals-Timestamp": ts,
        "X-Signals-Signature": f"v1={mac.hexdigest()}",
        "Content-Type": "application/json",
    }
    return _post(port, path, body, headers)


def test_serve_routes_and_drains_each_connection_in_its_own_database(tmp_path):
    path = write_config(
        tmp_path,
        hubspot={"portal_id": "999"},
        webhooks={"public_base_url": PUBLIC, "salesforce_org_id": SF_ORG},
    )
    base = load_config(path)
    registry = bootstrap.open_store(base)
    try:
        manage.add(base, registry, "second", "sandbox", "test")
        row = connections.new_row("hs-a", "hubspot", "oauth", connections.CONNECTED, "test")
        registry.connections.save(row.replace(external_id="111"))
    finally:
        registry.close()
    data = tmp_path / "data"
    port = free_port()
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        "HUBSPOT_CLIENT_SECRET": VECTOR["client_secret"],
        "SIGNALS_WEBHOOK_SECRET": SIGNALS_SECRET,
    }
    proc = subprocess.Popen(
        [*renewals_cli(), "--config", str(path), "serve", "--bind", f"127.0.0.1:{port}"]
        + ["--workers", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        wait_for(lambda: healthy(port), proc=proc)
        event = {"eventId": 1, "portalId": 111, "subscriptionType": "company.creation"}
        assert hubspot(port, [{**event, "objectId": 7}]) == (200, {"accepted": 1})
        refused = hubspot(port, [{**event, "portalId": 555}])
        assert refused == (403, {"error": "unknown portal"})
        signal = {"account": "001A", "measure": "nps", "value": 30, "timestamp": time.time()}
        assert signals(port, "/webhooks/signals/second", [signal])[0] == 200
        assert signals(port, "/webhooks/signals/nobody", [signal])[0] == 404
        second = data / "connections" / "second" / "state.db"
        wait_for(lambda: query(second, "SELECT status FROM inbox") == [("done",)])
        assert query(data / "state.db", "SELECT count(*) FROM inbox") == [(0,)]
        hs_a = data / "connections" / "hs-a" / "state.db"
        waiting = query(deliveries_path(hs_a), "SELECT count(*) FROM deliveries")
        assert waiting == [(1,)]  # waits: cannot run
        status, body = _get(port, "/healthz")
        assert status == 200 and set(body["connections"]) == {"default", "second", "hs-a"}
        assert body["connections"]["hs-a"]["deliveries_waiting"] == 1
        assert _get(port, "/healthz/second")[1]["connection"] == "second"
        text = metrics(port)
        assert (
            'renewals_webhook_events_received_total{connection="hs-a",source="hubspot"} 1.0' in text
        )
        assert 'reason="unknown_portal",source="hubspot"} 1.0' in text
        assert (
            'renewals_inbox_events{connection="second",source="signals",status="done"} 1.0' in text
        )
    finally:
        err = stop(proc)
    assert "renewals serve: connections default, second" in err
    assert "connection hs-a is skipped" in err
