"""A deployment of several connections: `default` (app.yaml: the sandbox, HubSpot portal
999, Salesforce org SF_ORG), `second` (a sandbox connection added as `renewals connections
add` does), and HubSpot and Salesforce connections written into the registry as an OAuth
install leaves them (external ids for routing; no tokens: they cannot sync here)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path

import pytest

from crm_renewals.connector import bootstrap, connections
from crm_renewals.connector.config import AppConfig, load_config
from crm_renewals.connector.inbox import Inbox
from crm_renewals.connector.services import connections as manage
from crm_renewals.connector.state import StateStore
from crm_renewals.webhooks import create_app
from tests.conftest import write_config
from tests.webhooks.conftest import SF_ORG, SIGNALS_SECRET, VECTOR, Clock, signals_headers

#: the private app's client secret (the vector's) and a public app's (another)
PRIVATE_SECRET = VECTOR["client_secret"]
APP_SECRET = "public-app-client-secret-0f7c"
PORTAL_A, PORTAL_B, PORTAL_DEFAULT, PORTAL_PENDING = "111", "222", "999", "333"
#: an org of a Salesforce connection, 18 characters (its 15-character form is what compares)
ORG_S = "00D5g000004XyZaEAK"


def hubspot_row(name: str, crm: str, external_id: str, status: str = connections.CONNECTED):
    row = connections.new_row(name, crm, "oauth", status, "test")
    return row.replace(external_id=external_id)


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    return write_config(
        tmp_path,
        hubspot={"portal_id": PORTAL_DEFAULT},
        webhooks={
            "public_base_url": "https://connector.example.com",
            "salesforce_org_id": SF_ORG,
            "worker_poll_seconds": 0.05,
        },
    )


@pytest.fixture
def base(config_path) -> AppConfig:
    return load_config(config_path)


@pytest.fixture
def registry(base):
    """The default connection's state store, holding the connections table."""
    store = bootstrap.open_store(base)
    manage.add(base, store, "second", "sandbox", "test")
    store.connections.save(hubspot_row("hs-a", "hubspot", PORTAL_A))
    store.connections.save(hubspot_row("hs-b", "hubspot", PORTAL_B))
    store.connections.save(
        hubspot_row("hs-p", "hubspot", PORTAL_PENDING, status=connections.PENDING)
    )
    store.connections.save(hubspot_row("sf-s", "salesforce", ORG_S))
    yield store
    store.close()


class Stores:
    """Each connection's state store, opened as any command opens it."""

    def __init__(self, base: AppConfig, registry: StateStore):
        self.base, self.registry, self._open = base, registry, {}

    def __getitem__(self, name: str) -> StateStore:
        if name == "default":
            return self.registry
        if name not in self._open:
            conn = connections.choose(self.base, self.registry, name)
            self._open[name] = bootstrap.open_store(connections.configuration(self.base, conn))
        return self._open[name]

    def inbox(self, name: str) -> Inbox:
        return Inbox(self[name])

    def close(self) -> None:
        for store in self._open.values():
            store.close()


@pytest.fixture
def stores(base, registry):
    s = Stores(base, registry)
    yield s
    s.close()


ENV = {
    "HUBSPOT_CLIENT_SECRET": PRIVATE_SECRET,
    "HUBSPOT_APP_CLIENT_SECRET": APP_SECRET,
    "SIGNALS_WEBHOOK_SECRET": SIGNALS_SECRET,
}


@pytest.fixture
def app(base, registry):
    return create_app(base, store=registry, env=ENV, clock=Clock())


@pytest.fixture
def client(app):
    return app.test_client()


def signed(body: bytes, secret: str = PRIVATE_SECRET, path: str = "/webhooks/hubspot") -> dict:
    """Signed as HubSpot's guide says (written out here, not our verify code):
    base64(HMAC-SHA256(client secret, method + URI + body + timestamp))."""
    ts = VECTOR["timestamp"]
    uri = "https://connector.example.com" + path
    mac = hmac.new(secret.encode(), b"POST" + uri.encode() + body + ts.encode(), hashlib.sha256)
    return {
        "X-HubSpot-Request-Timestamp": ts,
        "X-HubSpot-Signature-v3": base64.b64encode(mac.digest()).decode(),
        "Content-Type": "application/json",
    }


def batch(*events: tuple[int, str | int | None, int]) -> bytes:
    """A HubSpot batch: (eventId, portalId, objectId) each, companies changed."""
    out = []
    for event_id, portal, obj in events:
        event = {
            "eventId": event_id,
            "subscriptionType": "company.propertyChange",
            "objectId": obj,
            "propertyName": "name",
            "propertyValue": "Acme",
        }
        if portal is not None:
            event["portalId"] = int(portal)
        out.append(event)
    return json.dumps(out).encode()


def post_hubspot(client, body: bytes, secret: str = PRIVATE_SECRET):
    return client.post("/webhooks/hubspot", data=body, headers=signed(body, secret))


def post_signals(client, items, path: str = "/webhooks/signals"):
    body = json.dumps(items).encode()
    return client.post(path, data=body, headers=signals_headers(body))


def delivered(store: StateStore) -> list[list[dict]]:
    """The batches stored in `store`, not yet read by the worker (HubSpot's: JSON)."""
    return [json.loads(d.body) for d in store.deliveries.oldest(1000)]
