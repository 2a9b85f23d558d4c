"""POST /webhooks/hubspot: v3 signatures checked against HubSpot's official test vector."""

from __future__ import annotations

from crm_renewals.webhooks.verify import hubspot_uri, hubspot_v3_signature
from tests.webhooks.conftest import (
    VECTOR,
    VECTOR_NOW,
    nothing_stored,
    post_vector,
    read_deliveries,
)


def test_vector_signature_is_reproduced_by_our_hmac():
    sig = hubspot_v3_signature(
        VECTOR["client_secret"], "POST", VECTOR["uri"], VECTOR["body"].encode(), VECTOR["timestamp"]
    )
    assert sig == VECTOR["expected_signature"]


def test_official_vector_is_accepted_and_its_events_are_stored(client, inbox):
    resp = post_vector(client)
    assert resp.status_code == 200
    assert resp.json == {"accepted": 3}
    # the request stores the delivery as it arrived; the worker reads its events
    assert inbox.waiting() == 1 and inbox.all() == []
    expanded = read_deliveries(inbox)
    assert (expanded.deliveries, expanded.events, expanded.new) == (
        1,
        {"hubspot": 3},
        {"hubspot": 3},
    )
    assert inbox.waiting() == 0
    rows = inbox.all()
    assert [(r.event_id, r.object, r.record_id) for r in rows] == [
        ("1001", "deal", "9876543210"),
        ("1002", "deal", "9876543211"),
        ("1003", "company", "1234567890"),
    ]
    assert {r.status for r in rows} == {"pending"}


def test_redelivery_of_the_same_batch_is_stored_once(client, inbox):
    assert post_vector(client).status_code == 200
    read_deliveries(inbox)
    assert post_vector(client).status_code == 200
    assert post_vector(client).status_code == 200
    expanded = read_deliveries(inbox)
    assert (expanded.events, expanded.new) == ({"hubspot": 6}, {})
    assert len(inbox.all()) == 3


def test_timestamp_at_the_edge_of_the_window_is_accepted_both_ways(client, clock):
    clock.now = VECTOR_NOW + 300
    assert post_vector(client).status_code == 200
    clock.now = VECTOR_NOW - 300
    assert post_vector(client).status_code == 200


def test_timestamp_301_seconds_old_is_refused_and_nothing_stored(client, clock, inbox):
    clock.now = VECTOR_NOW + 301
    resp = post_vector(client)
    assert resp.status_code == 401
    assert resp.json == {"error": "timestamp outside the allowed window"}
    assert nothing_stored(inbox)


def test_timestamp_301_seconds_in_the_future_is_refused(client, clock, inbox):
    clock.now = VECTOR_NOW - 301
    assert post_vector(client).status_code == 401
    assert nothing_stored(inbox)


def test_tampered_body_is_refused(client, inbox):
    tampered = VECTOR["body"].replace('"propertyValue":"42"', '"propertyValue":"43"')
    resp = post_vector(client, body=tampered)
    assert resp.status_code == 401 and resp.json == {"error": "invalid signature"}
    one_space = VECTOR["body"] + " "
    assert post_vector(client, body=one_space).status_code == 401
    assert nothing_stored(inbox)


def test_signature_covers_the_public_uri_not_the_host_the_app_sees(wh_config, store, clock):
    from crm_renewals.webhooks import create_app

    local = wh_config.model_copy(
        update={"webhooks": wh_config.webhooks.model_copy(update={"public_base_url": None})}
    )
    app = create_app(
        local, store=store, env={"HUBSPOT_CLIENT_SECRET": VECTOR["client_secret"]}, clock=clock
    )
    assert post_vector(app.test_client()).status_code == 401  # signed for connector.example.com


def test_missing_or_malformed_headers_and_missing_secret_are_refused(client, app, inbox):
    no_sig = {k: v for k, v in VECTOR["headers"].items() if k != "X-HubSpot-Signature-v3"}
    assert (
        client.post(
            "/webhooks/hubspot?tenant=acme", data=VECTOR["body"], headers=no_sig
        ).status_code
        == 401
    )
    assert post_vector(client, headers={"X-HubSpot-Request-Timestamp": "soon"}).status_code == 401
    app.extensions["renewals"].hubspot_secret = None
    resp = post_vector(client)
    assert resp.status_code == 401 and "not configured" in resp.json["error"]
    assert nothing_stored(inbox)


def test_uri_decoding_follows_hubspots_list():
    assert hubspot_uri("https://x.test/a%3Ab?c=%40d%2Ce") == "https://x.test/a:b?c=@d,e"
    assert hubspot_uri("https://x.test/a%20b") == "https://x.test/a%20b"  # not on the list


def test_body_over_the_limit_gets_413(client, inbox):
    big = "[" + ",".join(['{"eventId": 1}'] * 5000) + "]"
    resp = post_vector(client, body=big)
    assert resp.status_code == 413
    assert nothing_stored(inbox)


def test_refusals_do_not_leak_the_secret_or_signature_into_logs(client, caplog):
    import logging

    with caplog.at_level(logging.DEBUG):
        post_vector(client, body=VECTOR["body"] + " ")
    assert VECTOR["client_secret"] not in caplog.text
    assert VECTOR["expected_signature"] not in caplog.text
    assert "invalid signature" in caplog.text
