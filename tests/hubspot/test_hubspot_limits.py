"""Rate limits and failures: one bucket per portal, 429 honoured, retries only when transient."""

from __future__ import annotations

import time

import pytest

from crm_renewals.connector import bootstrap
from crm_renewals.connector.adapters.hubspot import TOKEN_ENV
from crm_renewals.connector.adapters.hubspot.transport import translate
from crm_renewals.connector.config import load_config
from crm_renewals.connector.errors import (
    ApiLimitReached,
    ConfigError,
    FatalCrmError,
    RecordRejectedError,
    RetriableCrmError,
)
from crm_renewals.connector.services import sync
from tests.fakes.hubspot_server import FakeHubSpot
from tests.hubspot.conftest import fast, hubspot_config, make_crm


def test_one_bucket_per_portal_is_shared_by_every_adapter_in_the_process(fake):
    assert make_crm(fake).limits is make_crm(fake).limits
    first = make_crm(fake)
    fake.token = "another-portal"
    assert make_crm(fake).limits is not first.limits


def test_429_is_retried_after_the_interval_hubspot_names_and_pauses_the_bucket(fake):
    sleeps: list[float] = []
    crm = fast(make_crm(fake, sleep=sleeps.append))
    fake.create("companies", {"name": "Acme"})
    fake.interval = 0.2  # the 429's X-HubSpot-RateLimit-Interval-Milliseconds: 200
    fake.fail_with_429("companies/search")
    records = [r for page in crm.read_changes("account", None) for r in page]
    assert len(records) == 1
    assert sleeps == [0.2]
    assert crm.limits.search.stats.throttled == 1
    assert fake.count("companies/search") == 2 and crm.api_calls == fake.count("")


def test_steady_state_stays_under_the_limit_without_a_single_429():
    fake = FakeHubSpot(burst=10, interval=0.5)
    fake.start()
    try:
        crm = make_crm(fake, interval=0.5, limits={"requests_per_10s": 10})
        company = fake.create("companies", {"name": "Acme"})
        started = time.monotonic()
        for _ in range(35):
            crm.read_ids("account", [company])
        elapsed = time.monotonic() - started
    finally:
        fake.stop()
    assert fake.statuses[429] == 0 and fake.statuses[200] == 35
    assert crm.limits.general.stats.waits > 0
    assert elapsed >= 1.5  # 35 calls at 10 per 0.5 s need three full windows


def test_the_connector_spends_use_share_of_the_portal_limit_and_leaves_the_rest():
    from crm_renewals.connector.config_sections import HubspotLimits

    assert (HubspotLimits().tier, HubspotLimits().burst) == (100, 90)
    assert HubspotLimits(app_type="public").burst == 99
    assert HubspotLimits(requests_per_10s=190, use_share=1).burst == 190
    assert HubspotLimits(requests_per_10s=1, use_share=0.5).burst == 1
    fake = FakeHubSpot(burst=10, interval=0.5)
    fake.start()
    try:
        crm = make_crm(fake, interval=0.5, limits={"requests_per_10s": 10, "use_share": 0.5})
        company = fake.create("companies", {"name": "Acme"})
        started = time.monotonic()
        for _ in range(11):
            crm.read_ids("account", [company])
        elapsed = time.monotonic() - started
    finally:
        fake.stop()
    assert fake.statuses[429] == 0
    assert elapsed >= 1.0  # 11 calls at 5 (not 10) per 0.5 s need two full windows


def test_server_errors_and_timeouts_are_retried(fake):
    crm = fast(make_crm(fake, sleep=lambda _s: None, timeout_seconds=0.3))
    fake.create("companies", {"name": "Acme"})
    fake.fail_next("companies/search", 503, {"status": "error", "message": "unavailable"})
    fake.stall_next("companies/search", 0.6)
    assert len([r for p in crm.read_changes("account", None) for r in p]) == 1
    assert fake.count("companies/search") == 3


def test_other_client_errors_are_not_retried(fake):
    crm = fast(make_crm(fake, sleep=lambda _s: None))
    body = {"status": "error", "message": "bad filter", "category": "VALIDATION_ERROR"}
    fake.fail_next("companies/search", 400, body)
    with pytest.raises(RecordRejectedError, match="bad filter") as err:
        list(crm.read_changes("account", None))
    assert err.value.code == "VALIDATION_ERROR"
    assert fake.count("companies/search") == 1


def test_a_bad_token_stops_the_run_naming_the_setting_and_the_scopes(fake):
    crm = fast(make_crm(fake, sleep=lambda _s: None))
    fake.token = "the-right-one"
    with pytest.raises(FatalCrmError) as err:
        list(crm.read_changes("account", None))
    assert "HUBSPOT_ACCESS_TOKEN" in str(err.value)
    assert "crm.objects.deals.read/.write" in str(err.value)
    assert fake.count("") == 1


def test_the_daily_limit_stops_the_run_to_resume_later(fake):
    crm = fast(make_crm(fake, sleep=lambda _s: None))
    fake.fail_next(
        "owners",
        429,
        {"status": "error", "policyName": "DAILY", "message": "You have reached your daily limit."},
    )
    # ApiLimitReached: the run is recorded as `stopped` and the next one resumes
    with pytest.raises(ApiLimitReached, match="daily"):
        list(crm.read_changes("owner", None))


def test_a_missing_token_is_a_config_error_naming_the_variable(tmp_path, fake, monkeypatch):
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    with pytest.raises(ConfigError, match=TOKEN_ENV):
        bootstrap.build(load_config(hubspot_config(tmp_path, fake)))


def test_threads_and_adapters_of_one_portal_share_one_bucket_and_see_no_429():
    from concurrent.futures import ThreadPoolExecutor

    from crm_renewals.connector.adapters.hubspot.limits import portal_key, snapshot

    fake = FakeHubSpot(burst=8, interval=0.4)
    fake.start()
    try:
        adapters = [make_crm(fake, interval=0.4, limits={"requests_per_10s": 8}) for _ in range(3)]
        company = fake.create("companies", {"name": "Acme"})
        with ThreadPoolExecutor(6) as pool:
            list(pool.map(lambda i: adapters[i % 3].read_ids("account", [company]), range(30)))
    finally:
        fake.stop()
    assert fake.statuses[429] == 0 and fake.statuses[200] == 30
    stats = snapshot()[portal_key(fake.url, fake.token)]["general"]
    assert stats.calls == 30 and stats.waits > 0 and stats.throttled == 0


class VendorError(Exception):
    """Shaped like each hubspot sub-package's ApiException: status, body, headers."""

    def __init__(self, status, body=b"{}", headers=None):
        self.status, self.body, self.headers, self.reason = status, body, headers or {}, "x"


@pytest.mark.parametrize(
    ("status", "headers", "kind", "wait"),
    [
        (401, {}, FatalCrmError, None),
        (403, {}, FatalCrmError, None),
        (400, {}, RecordRejectedError, None),
        (409, {}, RecordRejectedError, None),
        (423, {}, RetriableCrmError, 2.0),
        (429, {"Retry-After": "3"}, RetriableCrmError, 3.0),
        (429, {"X-HubSpot-RateLimit-Interval-Milliseconds": "10000"}, RetriableCrmError, 10.0),
        (477, {"Retry-After": "30"}, RetriableCrmError, 30.0),
        (502, {}, RetriableCrmError, None),
        (504, {}, RetriableCrmError, None),
    ],
)
def test_statuses_translate_by_table(status, headers, kind, wait):
    err = translate("search deals", VendorError(status, headers=headers))
    assert type(err) is kind and err.status == status and err.system == "hubspot"
    if kind is RetriableCrmError:
        assert err.retry_after == wait


def test_a_sync_gives_up_after_the_configured_attempts_not_attempts_squared(
    fake, tmp_path, monkeypatch
):
    monkeypatch.setenv(TOKEN_ENV, fake.token)
    ctx = bootstrap.build(load_config(hubspot_config(tmp_path, fake, sync={"retry_attempts": 3})))
    fast(ctx.crm)
    ctx.crm.sleep = ctx.sleep = lambda _s: None
    fake.create("companies", {"name": "Acme"})
    fake.fail_next("companies/search", 503, {"status": "error", "message": "down"}, times=50)
    with pytest.raises(FatalCrmError, match="still failing after 3 attempts"):
        sync(ctx)
    assert fake.count("companies/search") == 3  # retried per request, never again on top
    ctx.close()
