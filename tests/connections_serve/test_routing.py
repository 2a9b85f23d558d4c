"""One `renewals serve` for every connection: HubSpot events routed by portalId, Salesforce
outbound messages by OrganizationId, signals by the path; each stored only in its own
connection's state store; what belongs to no connection refused, counted, never stored."""

from __future__ import annotations

import time

from crm_renewals.connector import connections
from tests.connections_serve.conftest import (
    APP_SECRET,
    ORG_S,
    PORTAL_A,
    PORTAL_B,
    PORTAL_DEFAULT,
    PORTAL_PENDING,
    batch,
    delivered,
    post_hubspot,
    post_signals,
)
from tests.webhooks.conftest import SF_MESSAGE, SF_ORG

ALL = ("default", "second", "hs-a", "hs-b", "hs-p", "sf-s")
SIGNAL = {"account": "001A", "measure": "nps", "value": 30, "timestamp": 1767225590000}


def unread(stores) -> dict[str, int]:
    return {name: stores[name].deliveries.waiting() for name in ALL}


def test_events_of_each_portal_land_only_in_their_connections_store(client, stores):
    assert post_hubspot(client, batch((1, PORTAL_A, 10))).json == {"accepted": 1}
    assert post_hubspot(client, batch((2, PORTAL_B, 20), (3, PORTAL_B, 21))).json == {"accepted": 2}
    assert post_hubspot(client, batch((4, PORTAL_DEFAULT, 30))).status_code == 200
    assert unread(stores) == {
        "default": 1,
        "second": 0,
        "hs-a": 1,
        "hs-b": 1,
        "hs-p": 0,
        "sf-s": 0,
    }
    assert [[e["eventId"] for e in b] for b in delivered(stores["hs-b"])] == [[2, 3]]
    assert [[e["objectId"] for e in b] for b in delivered(stores["hs-a"])] == [[10]]


def test_a_batch_of_unknown_portals_is_refused_with_403_counted_and_not_stored(client, stores):
    resp = post_hubspot(client, batch((1, "555", 10), (2, None, 11)))
    assert resp.status_code == 403 and resp.json == {"error": "unknown portal"}
    assert set(unread(stores).values()) == {0}
    text = client.get("/metrics").data.decode()
    refused = 'renewals_webhook_requests_refused_total{reason="unknown_portal",source="hubspot"}'
    assert f"{refused} 1.0" in text


def test_a_mixed_batch_stores_the_known_portals_events_and_counts_the_refusal(client, stores):
    body = batch((1, PORTAL_A, 10), (2, "555", 11), (3, PORTAL_B, 12), (4, PORTAL_A, 13))
    resp = post_hubspot(client, body)
    assert resp.status_code == 200 and resp.json == {"accepted": 3}
    assert [[e["eventId"] for e in b] for b in delivered(stores["hs-a"])] == [[1, 4]]
    assert [[e["eventId"] for e in b] for b in delivered(stores["hs-b"])] == [[3]]
    assert unread(stores)["default"] == 0
    text = client.get("/metrics").data.decode()
    assert 'reason="unknown_portal",source="hubspot"} 1.0' in text
    assert 'renewals_webhook_events_received_total{connection="hs-a",source="hubspot"} 2.0' in text


def test_a_public_apps_signature_is_as_good_as_the_private_apps(client, stores, app):
    assert post_hubspot(client, batch((1, PORTAL_A, 10)), secret=APP_SECRET).status_code == 200
    assert post_hubspot(client, batch((2, PORTAL_A, 10)), secret="another").status_code == 401
    app.extensions["renewals"].hubspot_app_secret = None  # HUBSPOT_APP_CLIENT_SECRET unset
    assert post_hubspot(client, batch((3, PORTAL_A, 10)), secret=APP_SECRET).status_code == 401
    assert [[e["eventId"] for e in b] for b in delivered(stores["hs-a"])] == [[1]]


def test_a_connection_not_runnable_still_gets_its_deliveries_stored(client, stores):
    assert post_hubspot(client, batch((1, PORTAL_PENDING, 10))).status_code == 200
    assert unread(stores)["hs-p"] == 1


def test_without_a_portal_id_the_default_takes_portals_no_connection_claims(base, registry, stores):
    from crm_renewals.webhooks import create_app
    from tests.connections_serve.conftest import ENV
    from tests.webhooks.conftest import Clock

    open_portal = base.model_copy(
        update={"hubspot": base.hubspot.model_copy(update={"portal_id": None})}
    )
    client = create_app(open_portal, store=registry, env=ENV, clock=Clock()).test_client()
    assert post_hubspot(client, batch((1, "555", 10), (2, PORTAL_A, 11))).json == {"accepted": 2}
    assert [[e["eventId"] for e in b] for b in delivered(stores["default"])] == [[1]]
    assert [[e["eventId"] for e in b] for b in delivered(stores["hs-a"])] == [[2]]


def test_a_removed_default_takes_no_events(client, base, registry, stores):
    row = connections.new_row("default", "sandbox", "env", connections.REMOVED, "test")
    registry.connections.save(row)
    client.application.extensions["renewals"].deployment.connections(fresh=True)
    assert post_hubspot(client, batch((1, PORTAL_DEFAULT, 10))).status_code == 403
    assert unread(stores)["default"] == 0


def test_a_connection_added_in_another_process_is_routed_at_once(client, registry, stores):
    from tests.connections_serve.conftest import hubspot_row

    deployment = client.application.extensions["renewals"].deployment
    moment = [time.monotonic()]
    deployment.clock = lambda: moment[0]
    deployment.connections(fresh=True)  # the registry read and cached
    registry.connections.save(hubspot_row("hs-new", "hubspot", "444"))
    assert post_hubspot(client, batch((1, "444", 10))).status_code == 403  # read just now
    moment[0] += deployment.miss_seconds  # a moment later: an unknown portal reads it again
    assert post_hubspot(client, batch((1, "444", 10))).status_code == 200
    assert stores["hs-new"].deliveries.waiting() == 1


def outbound_of(org: str) -> bytes:
    return SF_MESSAGE.replace(SF_ORG.encode(), org.encode())


def test_outbound_messages_go_to_the_connection_of_their_org(client, stores):
    assert client.post("/webhooks/salesforce", data=outbound_of(ORG_S[:15])).status_code == 200
    assert client.post("/webhooks/salesforce", data=SF_MESSAGE).status_code == 200
    counts = unread(stores)
    assert (counts["sf-s"], counts["default"], counts["second"]) == (1, 1, 0)
    resp = client.post("/webhooks/salesforce", data=outbound_of("00D000000000999AAA"))
    assert resp.status_code == 401 and b"organization not accepted" in resp.data
    assert unread(stores)["sf-s"] == 1 and unread(stores)["default"] == 1


def test_signals_go_to_the_default_or_the_connection_named_in_the_path(client, stores):
    assert post_signals(client, [SIGNAL]).json == {"accepted": 1, "new": 1}
    assert post_signals(client, [SIGNAL], "/webhooks/signals/second").json == {
        "accepted": 1,
        "new": 1,
    }
    assert set(stores["default"].signals.latest()) == set(stores["second"].signals.latest())
    assert len(stores["second"].signals.latest()) == 1
    for path in ("/webhooks/signals/nobody", "/webhooks/signals/Bad%20Name"):
        resp = post_signals(client, [SIGNAL], path)
        assert resp.status_code == 404 and resp.json == {"error": "unknown connection"}
    assert len(stores["hs-a"].signals.latest()) == 0
