"""A worker process of the shared-limits tests (spawned: imports only what it needs)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from crm_renewals.connector.adapters.hubspot import HubSpotCrm
from crm_renewals.connector.adapters.shared_limits import SharedLimits
from crm_renewals.connector.config_sections import HubspotSettings
from crm_renewals.connector.mapping_file import load_mapping
from tests.conftest import ROOT

BURST, INTERVAL = 10, 1.0  # the fake portal's limit: 10 requests per rolling second


def portal_crm(url: str, token: str, shared: SharedLimits | None, sleep=time.sleep, **kw):
    """The HubSpot adapter on the fake portal, its budget the portal's own (BURST/INTERVAL)."""
    settings = HubspotSettings(base_url=url, limits={"requests_per_10s": BURST})
    mapping = load_mapping(ROOT / "mappings" / "hubspot.yaml", expect_crm="hubspot")
    return HubSpotCrm(mapping, settings, token, interval=INTERVAL, shared=shared, sleep=sleep, **kw)


def hammer(url, token, redis_url, queue, company, calls, start, results) -> None:
    """Three threads reading one record `calls` times; puts (API calls, seconds) on results."""
    crm = portal_crm(url, token, SharedLimits.for_workers(redis_url, queue))
    start.wait(timeout=60)  # both processes begin together
    began = time.monotonic()
    with ThreadPoolExecutor(3) as pool:
        list(pool.map(lambda _i: crm.read_ids("account", [company]), range(calls)))
    results.put((crm.transport.api_calls, time.monotonic() - began))
