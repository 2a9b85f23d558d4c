"""POST /webhooks/signals (the documented HMAC scheme), /healthz, /metrics, /openapi.json."""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
from datetime import UTC, datetime

from openapi_spec_validator import validate

from crm_renewals.connector import bootstrap
from crm_renewals.connector.domain.health import signal_measures
from crm_renewals.connector.services.signals import import_signals
from crm_renewals.webhooks.worker import InboxWorker
from tests.webhooks.conftest import SIGNALS_SECRET, VECTOR_NOW, post_vector

SIGNAL = {
    "account": "001SB0000000001",
    "measure": "seat_utilisation",
    "value": 0.93,
    "timestamp": "2026-11-20T10:00:00Z",
}


def signed(body: bytes, ts: int, secret: str = SIGNALS_SECRET) -> dict[str, str]:
    """Signs as the README tells senders to (written out here, not our verify code)."""
    mac = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Signals-Timestamp": str(ts), "X-Signals-Signature": f"v1={mac}"}


def post_signals(client, payload, ts: int = int(VECTOR_NOW), **kw):
    body = json.dumps(payload).encode()
    headers = {**signed(body, ts, **kw), "Content-Type": "application/json"}
    return client.post("/webhooks/signals", data=body, headers=headers)


def test_signed_signals_are_stored_like_the_csv_import(client, store):
    resp = post_signals(client, {"signals": [SIGNAL, {**SIGNAL, "measure": "nps", "value": 35}]})
    assert resp.status_code == 200 and resp.json == {"accepted": 2, "new": 2}
    latest = store.signals.latest()["001SB0000000001"]
    assert latest["seat_utilisation"].value == 0.93
    assert latest["nps"].at == datetime(2026, 11, 20, 10, tzinfo=UTC)
    assert post_signals(client, SIGNAL).json == {"accepted": 1, "new": 0}  # a copy


def test_a_signal_sent_by_webhook_is_already_known_to_the_csv_import(
    client, store, wh_config, tmp_path
):
    assert post_signals(client, SIGNAL).json == {"accepted": 1, "new": 1}
    csv = tmp_path / "signals.csv"
    csv.write_text(
        "account,measure,value,timestamp\n"
        "001SB0000000001,seat_utilisation,0.93,2026-11-20T10:00:00Z\n"
    )
    result = import_signals(store, signal_measures(wh_config.scorecard), csv)
    assert (result.rows, result.stored, result.duplicates, result.errors) == (1, 0, 1, [])


def test_signals_with_a_bad_signature_or_old_timestamp_are_refused(client, store):
    assert post_signals(client, SIGNAL, secret="wrong").status_code == 401
    assert post_signals(client, SIGNAL, ts=int(VECTOR_NOW) - 301).status_code == 401
    assert post_signals(client, SIGNAL, ts=int(VECTOR_NOW) + 301).status_code == 401
    assert store.signals.latest() == {}


def test_an_invalid_signal_refuses_the_whole_request(client, store):
    resp = post_signals(client, [SIGNAL, {**SIGNAL, "measure": "mood"}])
    assert resp.status_code == 400
    assert resp.json["error"].startswith("signal 1: measure 'mood' is not in the scorecard")
    assert store.signals.latest() == {}


def test_health_reports_database_and_queue(client):
    post_vector(client)
    resp = client.get("/healthz")
    assert resp.status_code == 200
    assert resp.json == {
        "status": "ok",
        "database": "ok",
        "worker": "n/a",
        "inbox_depth": 0,
        "deliveries_waiting": 1,
        "oldest_wait_seconds": 0,
        "connections": {
            "default": {
                "status": "ok",
                "database": "ok",
                "inbox_depth": 0,
                "deliveries_waiting": 1,
                "oldest_wait_seconds": 0,
                "connection_status": "connected",
            }
        },
    }


def test_health_fails_when_the_inbox_worker_is_down(app, client):
    app.extensions["renewals"].worker_alive = lambda: False
    resp = client.get("/healthz")
    assert resp.status_code == 503 and resp.json["worker"] == "stopped"


def test_health_fails_when_the_database_does_not_answer(app, client, tmp_path):
    from crm_renewals.connector.state import StateStore

    gone = StateStore(f"sqlite:///{tmp_path / 'gone' / 'state.db'}")
    gone.close()
    shutil.rmtree(tmp_path / "gone")  # the folder is gone: SQLite cannot even open the file
    app.extensions["renewals"].inbox.store = gone
    resp = client.get("/healthz")
    assert resp.status_code == 503 and resp.json["status"] == "fail"
    assert resp.json["database"] == "UnusableDatabaseError"  # the file cannot be opened


def test_metrics_count_received_duplicates_refused_and_queue(app, client, wh_config):
    post_vector(client)
    post_vector(client)  # a copy
    post_vector(client, body="[]")
    text = client.get("/metrics").data.decode()
    assert (
        'renewals_webhook_events_received_total{connection="default",source="hubspot"} 6.0' in text
    )
    assert (
        'renewals_webhook_requests_refused_total{reason="signature",source="hubspot"} 1.0' in text
    )
    assert 'renewals_inbox_deliveries_waiting{connection="default"} 2.0' in text
    assert 'renewals_webhook_request_seconds_count{endpoint="hubspot"} 3.0' in text
    for name in ("events_processed", "events_failed", "sync_runs", "crm_api_calls", "rate_limit"):
        assert name in text
    ctx = bootstrap.build(wh_config)
    try:
        InboxWorker(wh_config, metrics=app.extensions["renewals"].metrics).drain(ctx)
    finally:
        ctx.close()
    text = client.get("/metrics").data.decode()
    assert 'renewals_inbox_deliveries_waiting{connection="default"} 0.0' in text
    assert (
        'renewals_webhook_events_duplicate_total{connection="default",source="hubspot"} 3.0' in text
    )
    # deals and companies: the sandbox mapping reads neither, so they are settled as ignored
    assert (
        'renewals_webhook_events_processed_total{connection="default",source="hubspot"} 3.0' in text
    )
    assert 'renewals_inbox_queue_depth{connection="default"} 0.0' in text


def test_openapi_describes_every_route_and_validates(app, client):
    doc = client.get("/openapi.json").json
    validate(doc)
    served = {  # Flask's <name> is OpenAPI's {name}
        (rule.rule.replace("<", "{").replace(">", "}"), method.lower())
        for rule in app.url_map.iter_rules()
        for method in rule.methods - {"HEAD", "OPTIONS"}
        if not rule.rule.startswith("/admin")  # the console's pages are HTML, not the API
    }
    described = {(path, m) for path, ops in doc["paths"].items() for m in ops}
    assert served == described
