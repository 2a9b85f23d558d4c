"""The fleet's multi-tenant fake HubSpot: one loopback server, portals told apart by their
bearer token, each enforcing and counting its own limits (what the fleet benchmark measures)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from tests.fakes.fleet import FleetHubSpot


def call(url: str, token: str | None, path: str, body: dict | None = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url + path, data=data, method="GET" if body is None else "POST")
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture
def fleet():
    fleet = FleetHubSpot()
    fleet.start()
    yield fleet
    fleet.stop()


def test_each_token_reaches_its_own_portal(fleet):
    a = fleet.add("pat-a", 101)
    fleet.add("pat-b", 102)
    a.create("deals", {"dealname": "Only in A"})

    status_a, page_a = call(fleet.url, "pat-a", "/crm/v3/objects/deals?properties=dealname")
    status_b, page_b = call(fleet.url, "pat-b", "/crm/v3/objects/deals?properties=dealname")

    assert (status_a, status_b) == (200, 200)
    assert [r["properties"]["dealname"] for r in page_a["results"]] == ["Only in A"]
    assert page_b["results"] == []


def test_a_token_of_no_portal_gets_hubspots_401(fleet):
    fleet.add("pat-a", 101)

    status, body = call(fleet.url, "pat-unknown", "/crm/v3/objects/deals")
    missing, _ = call(fleet.url, None, "/crm/v3/objects/deals")

    assert (status, missing) == (401, 401)
    assert body["category"] == "INVALID_AUTHENTICATION"
    assert fleet.stats()["unrouted"] == 2


def test_one_portal_over_its_limit_gets_429_while_the_other_is_served(fleet):
    fleet.add("pat-a", 101, burst=3, interval=60)
    fleet.add("pat-b", 102, burst=3, interval=60)

    answers = [call(fleet.url, "pat-a", "/crm/v3/objects/deals")[0] for _ in range(4)]
    other, _ = call(fleet.url, "pat-b", "/crm/v3/objects/deals")

    assert answers == [200, 200, 200, 429]
    assert other == 200
    stats = fleet.stats()["portals"]
    assert stats["101"] | {"renewals": 0} == {
        "portal_id": 101,
        "requests": 4,
        "throttled": 1,
        "limit": 3,
        "interval": 60,
        "peak": 3,
        "search_limit": 5,
        "search_peak": 0,
        "renewals": 0,
        "duplicates": 0,
    }
    assert (stats["102"]["requests"], stats["102"]["peak"]) == (1, 1)


def test_search_has_its_own_budget_per_second_and_peak(fleet):
    fleet.add("pat-a", 101, burst=100, search_per_second=2, interval=600)
    query = {"filterGroups": [], "limit": 10}

    answers = [call(fleet.url, "pat-a", "/crm/v3/objects/deals/search", query)[0] for _ in range(3)]

    assert answers == [200, 200, 429]  # a 1 s window of 60 s: no second passes in between
    portal = fleet.stats()["portals"]["101"]
    assert (portal["search_peak"], portal["peak"], portal["throttled"]) == (2, 0, 1)


def test_records_sharing_a_connector_key_count_as_duplicates(fleet):
    a = fleet.add("pat-a", 101)
    a.define_connector_properties()
    for key in ("c1:2027-01-31", "c2:2027-01-31"):
        a.create("deals", {"dealname": "Renewal", "renewal_key": key})
    a.create("tasks", {"hs_task_subject": "Notice", "renewal_task_key": "c1:notice"})
    a.create("tasks", {"hs_task_subject": "Notice", "renewal_task_key": "c1:notice"})

    portal = fleet.stats()["portals"]["101"]

    assert (portal["renewals"], portal["duplicates"]) == (2, 1)


def test_users_edit_records_through_the_admin_route(fleet):
    a = fleet.add("pat-a", 101)
    first = a.create("deals", {"dealname": "One"})
    a.create("deals", {"dealname": "Two"})

    status, body = call(
        fleet.url,
        None,
        "/__fleet__/edit",
        {"portal_id": 101, "object": "deals", "count": 1, "changes": {"dealname": "Edited"}},
    )

    assert (status, body) == (200, {"ids": [first]})
    assert a.get("deals", first)["dealname"] == "Edited"
