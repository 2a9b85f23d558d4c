"""What one bad delivery may not do: jam the inbox for the others, hide behind a healthy
/healthz, or turn into a 500. Every refusal is a 4xx whose JSON error names the field."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from crm_renewals.connector.domain.signals import SignalError, parse_signal
from crm_renewals.connector.inbox import STORE_EVENTS, Inbox
from crm_renewals.connector.state import now
from crm_renewals.webhooks import create_app
from tests.webhooks.conftest import (
    VECTOR,
    nothing_stored,
    post_hubspot,
    post_signals_body,
    post_vector,
    read_deliveries,
)

SIGNAL = {
    "account": "001SB0000000001",
    "measure": "seat_utilisation",
    "value": 0.93,
    "timestamp": "2026-11-20T10:00:00Z",
}
MEASURES = ["seat_utilisation", "nps"]


def event(event_id, obj: str = "deal", object_id=42) -> dict:
    return {"eventId": event_id, "subscriptionType": f"{obj}.propertyChange", "objectId": object_id}


def batch(*events: dict) -> bytes:
    return json.dumps(list(events)).encode()  # lone surrogates go out as \\ud800 escapes


# ------------------------------------------------------------------ item 1: one delivery


def test_an_event_id_with_a_lone_surrogate_is_refused_naming_the_field(client, inbox):
    resp = post_hubspot(client, batch(event("sur-\ud800")))
    assert resp.status_code == 400
    assert "eventId" in resp.json["error"] and "event 0" in resp.json["error"]
    assert nothing_stored(inbox)


@pytest.mark.parametrize(
    "bad, field",
    [
        (event("x" * 201), "eventId"),
        (event({"nested": 1}), "eventId"),
        (event(7, object_id="9" * 81), "objectId"),
        (event(7, object_id="a\x00b"), "objectId"),
        (event(7, obj="d" * 81), "subscriptionType"),
        ({**event(7), "propertyValue": "\udfff"}, "propertyValue"),
    ],
)
def test_event_fields_the_store_could_never_hold_are_refused(client, inbox, bad, field):
    resp = post_hubspot(client, batch(event(1), bad))
    assert resp.status_code == 400 and field in resp.json["error"]
    assert nothing_stored(inbox)


def test_a_delivery_that_cannot_be_stored_is_dead_lettered_and_the_rest_go_on(store):
    """As if it had got in before the request path refused it: the worker isolates it."""
    inbox = Inbox(store)
    inbox.receive("hubspot", batch(event(1)))
    inbox.receive("hubspot", batch(event("sur-\ud800"), event(2)))
    inbox.receive("hubspot", batch(event(3)))
    expanded = read_deliveries(inbox)
    assert expanded.unreadable == {"hubspot": 1} and expanded.new == {"hubspot": 2}
    assert inbox.waiting() == 0
    assert sorted(r.event_id for r in inbox.all()) == ["1", "3"]
    (letter,) = store.dead_letters.list()
    assert letter.error_code == "WEBHOOK_UNREADABLE"
    assert "hubspot delivery 2" in letter.message
    assert "sur-" in json.loads(letter.value)  # the body is kept, so nothing is lost
    # and what comes after it is read on the next pass as usual
    inbox.receive("hubspot", batch(event(4)))
    assert read_deliveries(inbox).new == {"hubspot": 1}


def test_health_is_degraded_when_deliveries_wait_longer_than_the_setting(app, client, store):
    assert client.get("/healthz").json["status"] == "ok"
    late = Inbox(store, clock=lambda: now() - timedelta(seconds=301))
    late.receive("hubspot", batch(event(1)))
    resp = client.get("/healthz")
    assert resp.status_code == 503
    assert resp.json["status"] == "degraded" and resp.json["oldest_wait_seconds"] >= 301
    assert "waiting" in resp.json["reason"]


def test_health_is_degraded_when_due_events_wait_longer_than_the_setting(client, store):
    late = Inbox(store, clock=lambda: now() - timedelta(seconds=400))
    late.receive("hubspot", batch(event(1)))
    read_deliveries(late)  # read into an event due 400 s ago, never processed
    resp = client.get("/healthz")
    assert resp.status_code == 503 and resp.json["status"] == "degraded"


def test_health_stays_ok_while_deliveries_are_younger_than_the_setting(client, store):
    recent = Inbox(store, clock=lambda: now() - timedelta(seconds=250))
    recent.receive("hubspot", batch(event(1)))
    resp = client.get("/healthz")
    assert resp.status_code == 200 and resp.json["status"] == "ok"


# ------------------------------------------------------------------ item 2: 4xx, never 500


def test_a_5000_digit_hubspot_timestamp_is_refused_unsigned(client):
    resp = post_vector(client, headers={"X-HubSpot-Request-Timestamp": "9" * 5000})
    assert resp.status_code == 401 and "timestamp" in resp.json["error"]
    resp = post_vector(client, headers={"X-HubSpot-Request-Timestamp": "\u00b2"})  # isdigit()
    assert resp.status_code == 401 and "timestamp" in resp.json["error"]


@pytest.fixture
def roomy_client(wh_config, store, clock):
    """The app at the default body limit (1 MiB): room for 100k levels of nesting."""
    settings = wh_config.webhooks.model_copy(update={"max_body_bytes": 1_048_576})
    config = wh_config.model_copy(update={"webhooks": settings})
    env = {"HUBSPOT_CLIENT_SECRET": VECTOR["client_secret"]}
    from tests.webhooks.conftest import SIGNALS_SECRET

    env["SIGNALS_WEBHOOK_SECRET"] = SIGNALS_SECRET
    return create_app(config, store=store, env=env, clock=clock).test_client()


@pytest.mark.parametrize("opener, closer", [(b"[", b"]"), (b'{"a":', b"}")])
def test_signed_bodies_nested_100k_deep_are_refused(roomy_client, inbox, opener, closer):
    deep = opener * 100_000 + b"1" + closer * 100_000
    for resp in (post_hubspot(roomy_client, deep), post_signals_body(roomy_client, deep)):
        assert resp.status_code == 400 and "nested" in resp.json["error"]
    assert nothing_stored(inbox)


@pytest.mark.parametrize(
    "change, field",
    [
        ({"value": 10**400}, "value"),
        ({"value": True}, "value"),
        ({"value": 1e300}, "value"),
        ({"timestamp": 1e20}, "timestamp"),
        ({"timestamp": 1e17}, "timestamp"),
        ({"timestamp": -1e18}, "timestamp"),
        ({"timestamp": float("nan")}, "timestamp"),
        ({"timestamp": "0001-01-01T00:00:00+01:00"}, "timestamp"),
        ({"timestamp": "9" * 5000}, "timestamp"),
        ({"source": {"a": 1}}, "source"),
        ({"source": ["a"]}, "source"),
        ({"account": "sur-\ud800"}, "account"),
        ({"account": "a" * 81}, "account"),
    ],
)
def test_signals_out_of_range_or_of_the_wrong_kind_get_400_naming_the_field(
    client, store, change, field
):
    body = json.dumps({**SIGNAL, **change}).encode()  # NaN goes out as the NaN literal
    resp = post_signals_body(client, body)
    assert resp.status_code == 400, resp.data
    assert resp.json["error"].startswith(f"signal 0: {field}")
    assert store.signals.latest() == {}


@pytest.mark.parametrize(
    "change",
    [
        {"value": "1" + "0" * 400},
        {"value": "nan"},
        {"timestamp": "100000000000000000000"},
        {"timestamp": "-1000000000000000000"},
        {"account": "a\x00b"},
    ],
)
def test_the_csv_importer_gets_the_same_checks(change):
    with pytest.raises(SignalError):
        parse_signal({**SIGNAL, **change}, MEASURES, source="csv")


def test_timestamps_at_either_end_of_the_accepted_range_are_kept():
    first = parse_signal({**SIGNAL, "timestamp": 0}, MEASURES)
    assert first.at.year == 1970
    last = parse_signal({**SIGNAL, "timestamp": "2099-12-31T23:59:59Z"}, MEASURES)
    assert last.at.year == 2099
    assert parse_signal({**SIGNAL, "timestamp": "1767225600000"}, MEASURES).at.year == 2026


def test_a_salesforce_notification_id_too_long_to_store_gets_a_soap_fault(app, client, inbox):
    from tests.webhooks.test_processing import outbound

    resp = client.post("/webhooks/salesforce", data=outbound("800000000000AaAAAU", "0" * 201))
    assert resp.status_code == 400 and b"Id is longer than 200 characters" in resp.data
    assert nothing_stored(inbox)


def test_deliveries_are_stored_in_short_units_and_a_bad_one_is_still_found(store):
    """Units of at most STORE_EVENTS events (the write lock the request path waits for is held
    briefly); a delivery that cannot be stored is set aside within its unit."""
    inbox = Inbox(store)
    per = 30
    deliveries = STORE_EVENTS // per * 2 + 1  # three units
    bad = deliveries // 2
    for d in range(deliveries):
        events = [event(d * per + i) for i in range(per)]
        if d == bad:
            events[0] = event("sur-\ud800")
        inbox.receive("hubspot", batch(*events))
    expanded = read_deliveries(inbox)
    assert expanded.deliveries == deliveries and expanded.unreadable == {"hubspot": 1}
    assert expanded.new == {"hubspot": (deliveries - 1) * per}
    assert inbox.waiting() == 0 and len(store.dead_letters.list()) == 1
