"""The fleet's multi-tenant fakes: one loopback server of HubSpot portals and one HTTPS server
of Salesforce orgs, tenants told apart by their bearer token, each enforcing and counting its
own limits (what the fleet benchmark measures)."""

from __future__ import annotations

import json
import random
import ssl
import urllib.error
import urllib.request
from datetime import date
from pathlib import Path

import pytest

from crm_renewals.connector import bootstrap
from crm_renewals.connector.adapters.salesforce import SalesforceCrm, connect_oauth
from crm_renewals.connector.config import load_config
from crm_renewals.connector.mapping_file import load_mapping
from crm_renewals.connector.services.sync import sync
from tests.fakes.fleet import FleetHubSpot
from tests.fakes.fleet_salesforce import FleetSalesforce, enterprise_allocation, seed_org
from tests.fakes.harness import salesforce_config

ROOT = Path(__file__).resolve().parents[2]
TODAY = date(2026, 12, 1)
ORG_A, ORG_B = "00DFL0000000001AAA", "00DFL0000000002AAA"


def call(
    url: str,
    token: str | None,
    path: str,
    body: dict | None = None,
    tls: ssl.SSLContext | None = None,
) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url + path, data=data, method="GET" if body is None else "POST")
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10, context=tls) as resp:
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


@pytest.fixture
def orgs(tmp_path, monkeypatch):
    fleet = FleetSalesforce()
    fleet.start(ca_path=tmp_path / "fleet-ca.pem")
    # how the benchmark's workers trust it: simple-salesforce's requests session reads this
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "fleet-ca.pem"))
    yield fleet
    fleet.stop()


def test_enterprise_edition_allocates_100000_requests_plus_1000_per_licence():
    assert enterprise_allocation(20) == 120_000


def test_an_org_of_the_fleet_syncs_a_book_with_the_real_adapter_over_https(
    orgs, tmp_path, monkeypatch
):
    org = orgs.add("00DFL0000000001!token-a", ORG_A, allocation=1_000)
    other = orgs.add("00DFL0000000002!token-b", ORG_B, allocation=1_000)
    seed_org(org, 6, TODAY, random.Random(3))
    config = load_config(salesforce_config(tmp_path, monkeypatch))
    session = connect_oauth(config.salesforce, orgs.url, org.session, renew=lambda stale: stale)
    mapping = load_mapping(ROOT / "mappings" / "salesforce.yaml")
    ctx = bootstrap.build(config, crm=SalesforceCrm(session, mapping, config.salesforce))
    try:
        report = sync(ctx, as_of=TODAY)
    finally:
        ctx.close()

    assert orgs.url.startswith("https://127.0.0.1:")
    assert not [s for s in org.statuses if s >= 400], org.statuses
    assert report.api_calls == org.requests == org.api_used > 0
    stats = orgs.stats()
    assert stats["orgs"][ORG_A]["renewals"] > 0
    assert stats["orgs"][ORG_A]["duplicates"] == 0
    assert (stats["orgs"][ORG_B]["requests"], stats["unrouted"]) == (0, 0)
    assert other.records["Contract"] == {}


def test_an_org_past_its_daily_allocation_refuses_with_request_limit_exceeded(orgs):
    orgs.add("token-a", ORG_A, allocation=2)
    orgs.add("token-b", ORG_B, allocation=2)
    tls = ssl.create_default_context(cadata=orgs.ca_pem.decode())
    path = "/services/data/v59.0/limits/"

    answers = [call(orgs.url, "token-a", path, tls=tls) for _ in range(3)]
    other, _ = call(orgs.url, "token-b", path, tls=tls)

    assert [status for status, _ in answers] == [200, 200, 403]
    assert answers[2][1][0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
    assert other == 200
    summary = orgs.stats()["orgs"][ORG_A]
    assert {k: summary[k] for k in ("requests", "refused", "used", "allocation")} == {
        "requests": 3,
        "refused": 1,
        "used": 2,
        "allocation": 2,
    }


def test_a_token_of_no_org_gets_invalid_session_id(orgs):
    orgs.add("token-a", ORG_A, allocation=10)
    tls = ssl.create_default_context(cadata=orgs.ca_pem.decode())

    status, body = call(orgs.url, "token-unknown", "/services/data/v59.0/limits/", tls=tls)

    assert (status, body[0]["errorCode"]) == (401, "INVALID_SESSION_ID")
    assert orgs.stats()["unrouted"] == 1
