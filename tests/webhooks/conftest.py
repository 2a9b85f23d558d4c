"""Webhook app fixtures: the official fixtures (tests/fixtures), a test client at a
frozen clock, and helpers that sign like HubSpot and the signal senders do."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path

import pytest

from crm_renewals.connector import bootstrap
from crm_renewals.connector.config import load_config
from crm_renewals.connector.inbox import Inbox
from crm_renewals.webhooks import create_app
from crm_renewals.webhooks.deliveries import events_of
from tests.conftest import ROOT, write_config

FIXTURES = ROOT / "tests" / "fixtures"
VECTOR = json.loads((FIXTURES / "hubspot" / "webhook_v3_vector.json").read_text())
SF_MESSAGE = (FIXTURES / "salesforce" / "outbound_message_contract.xml").read_bytes()
SF_ACK = (FIXTURES / "salesforce" / "outbound_message_ack.xml").read_bytes()
SF_ORG = "00D000000000062EAA"
SIGNALS_SECRET = "signals-test-secret"
#: the vector's own timestamp, in seconds: the clock the app runs at unless a test moves it
VECTOR_NOW = int(VECTOR["timestamp"]) / 1000


class Clock:
    def __init__(self, now: float = VECTOR_NOW):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def wh_config_path(tmp_path: Path) -> Path:
    return write_config(
        tmp_path,
        webhooks={
            "public_base_url": "https://connector.example.com",
            "salesforce_org_id": SF_ORG,
            "max_body_bytes": 64 * 1024,
            "worker_poll_seconds": 0.05,
        },
    )


@pytest.fixture
def wh_config(wh_config_path):
    return load_config(wh_config_path)


@pytest.fixture
def store(wh_config):
    s = bootstrap.open_store(wh_config)
    yield s
    s.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(wh_config, store, clock):
    env = {
        "HUBSPOT_CLIENT_SECRET": VECTOR["client_secret"],
        "SIGNALS_WEBHOOK_SECRET": SIGNALS_SECRET,
    }
    return create_app(wh_config, store=store, env=env, clock=clock)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def inbox(store) -> Inbox:
    return Inbox(store)


def post_vector(client, body: str | bytes | None = None, headers: dict | None = None):
    """POST the official vector as HubSpot sent it (path and query of its URI)."""
    data = VECTOR["body"] if body is None else body
    return client.post(
        "/webhooks/hubspot?tenant=acme",
        data=data,
        headers={**VECTOR["headers"], **(headers or {})},
    )


def hubspot_headers(
    body: bytes, path: str = "/webhooks/hubspot", ts: str = VECTOR["timestamp"]
) -> dict[str, str]:
    """Signs as HubSpot's guide says (written out here, not our verify code), at the vector's
    moment unless `ts` (ms) is given: base64(HMAC-SHA256(secret, method + URI + body + ts))."""
    uri = "https://connector.example.com" + path
    message = b"POST" + uri.encode() + body + ts.encode()
    mac = hmac.new(VECTOR["client_secret"].encode(), message, hashlib.sha256).digest()
    return {
        "X-HubSpot-Request-Timestamp": ts,
        "X-HubSpot-Signature-v3": base64.b64encode(mac).decode(),
        "Content-Type": "application/json",
    }


def signals_headers(body: bytes, ts: int = int(VECTOR_NOW)) -> dict[str, str]:
    """Signs as README tells signal senders to: v1= hex HMAC-SHA256(secret, ts + "." + body)."""
    mac = hmac.new(SIGNALS_SECRET.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return {
        "X-Signals-Timestamp": str(ts),
        "X-Signals-Signature": f"v1={mac}",
        "Content-Type": "application/json",
    }


def post_hubspot(client, body: bytes):
    """POST a HubSpot batch signed with the test secret."""
    return client.post("/webhooks/hubspot", data=body, headers=hubspot_headers(body))


def post_signals_body(client, body: bytes):
    """POST a raw signals body, signed."""
    return client.post("/webhooks/signals", data=body, headers=signals_headers(body))


def read_deliveries(inbox: Inbox):
    """What the inbox worker does first: read the stored deliveries into inbox events."""
    return inbox.expand(events_of)


def nothing_stored(inbox: Inbox) -> bool:
    return inbox.waiting() == 0 and inbox.all() == []
