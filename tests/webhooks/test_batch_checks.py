"""The request path looks for text and numbers the inbox could not store only in a body that
may hold them (a NUL byte, a `\\u` escape, the UTF-8 lead byte of surrogates, a float that is
not finite): whatever the body, its verdict is the one a walk over every value gives."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crm_renewals.webhooks.deliveries import _event_problem, hubspot_batch, parse_json
from crm_renewals.webhooks.verify import Refused
from tests.webhooks.conftest import nothing_stored, post_hubspot
from tests.webhooks.test_fuzz import FUZZ, hubspot_event


def verdict(body: bytes) -> str | None:
    try:
        hubspot_batch(body)
    except Refused as exc:
        return exc.reason
    return None


def walked(body: bytes) -> str | None:
    """The verdict of hubspot_batch with every event walked in full (the slow path)."""
    try:
        data = parse_json(body)
    except Refused as exc:
        return exc.reason
    for i, event in enumerate(data):
        if event.get("eventId") in (None, ""):
            return f"event {i} has no eventId"
        if (problem := _event_problem(event, odd=True)) is not None:
            return f"event {i}: {problem}"
    return None


def raw(events: list[dict], ascii_only: bool) -> bytes:
    """Escaped (`\\ud800`) or as raw UTF-8 bytes (lone surrogates too: surrogatepass)."""
    return json.dumps(events, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


@FUZZ
@given(st.lists(hubspot_event, min_size=1, max_size=3), st.booleans())
def test_the_quick_check_gives_the_verdict_of_the_full_walk(events, ascii_only):
    body = raw(events, ascii_only)
    assert verdict(body) == walked(body)


@pytest.mark.parametrize(
    "body, field",
    [
        ('[{"eventId":1,"propertyValue":"\xed\xa0\x80"}]'.encode("latin-1"), "propertyValue"),
        (b'[{"eventId":1,"propertyValue":1e400}]', "propertyValue"),
        (b'[{"eventId":1,"propertyValue":-' + b"9" * 400 + b".5}]", "propertyValue"),
        (b'[{"eventId":1,"x":{"y":[NaN]}}]', "x.y[0]"),
        (b'[{"eventId":1,"occurredAt":Infinity}]', "occurredAt"),
    ],
)
def test_raw_surrogates_and_numbers_that_are_not_finite_are_refused(client, inbox, body, field):
    resp = post_hubspot(client, body)
    assert resp.status_code == 400 and field in resp.json["error"], resp.json
    assert nothing_stored(inbox)


def test_a_plain_batch_is_accepted_with_its_sizes_checked(client, inbox):
    body = json.dumps([{"eventId": 1, "objectId": "9" * 81, "propertyValue": "1e400"}]).encode()
    resp = post_hubspot(client, body)
    assert resp.status_code == 400 and "objectId is longer than 80" in resp.json["error"]
    body = json.dumps([{"eventId": 1, "objectId": 7, "propertyValue": "1e400 NaN"}]).encode()
    assert post_hubspot(client, body).status_code == 200
