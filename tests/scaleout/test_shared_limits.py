"""Rate limits shared through Redis (workers.redis_url): two processes talking to one HubSpot
portal stay within its limit together, a 429 seen by one slows the others, a Salesforce org's
daily-use stop seen by one transport stops every other."""

from __future__ import annotations

import multiprocessing
import queue as queue_module
import time

import pytest
import responses

from crm_renewals.connector import bootstrap
from crm_renewals.connector.adapters import shared_limits
from crm_renewals.connector.adapters.hubspot import limits as hubspot_limits
from crm_renewals.connector.adapters.shared_limits import SharedBucket, SharedLimits
from crm_renewals.connector.config import load_config
from crm_renewals.connector.errors import ApiLimitReached, FatalCrmError
from crm_renewals.connector.services import sync
from tests.conftest import AS_OF
from tests.contract.test_sync_contract import SalesforceBook
from tests.fakes.harness import salesforce_config
from tests.fakes.hubspot_server import FakeHubSpot
from tests.fakes.salesforce_org import FakeOrg
from tests.scaleout.portal_worker import BURST, INTERVAL, hammer, portal_crm

CALLS = 12  # per process: together more than two windows' worth


def two_processes(fake: FakeHubSpot, redis_url: str | None, queue: str) -> list[int]:
    """Two worker processes (spawned: nothing inherited) on one portal; their API calls."""
    company = fake.create("companies", {"name": "Acme"})
    ctx = multiprocessing.get_context("spawn")
    start, results = ctx.Barrier(2), ctx.Queue()
    args = (fake.url, fake.token, redis_url, queue, company, CALLS, start, results)
    workers = [ctx.Process(target=hammer, args=args) for _ in range(2)]
    for w in workers:
        w.start()
    try:
        out: list[int] = []
        while len(out) < len(workers):
            try:
                out.append(results.get(timeout=1)[0])
            except queue_module.Empty:
                assert all(w.exitcode in (None, 0) for w in workers), "a worker process failed"
        return out
    finally:
        for w in workers:
            w.join(timeout=30)


@pytest.fixture
def portal():
    fake = FakeHubSpot(burst=BURST, interval=INTERVAL, search_per_second=0)
    fake.start()
    yield fake
    fake.stop()


def test_two_processes_sharing_the_portal_bucket_never_exceed_its_limit(portal, redis_url, queue):
    calls = two_processes(portal, redis_url, queue)
    # the fake counts arrivals in its own rolling window and answers 429 past BURST
    assert portal.statuses[429] == 0
    assert portal.statuses[200] == 2 * CALLS == sum(calls)


def test_without_sharing_two_processes_exceed_the_portal_limit(portal, redis_url, queue):
    two_processes(portal, None, queue)  # each process counts alone: 2 x BURST per window
    assert portal.statuses[429] > 0


def test_a_429_seen_by_one_process_pauses_every_other_on_the_portal(
    portal, shared, redis_url, queue, monkeypatch
):
    company = portal.create("companies", {"name": "Acme"})
    first = portal_crm(portal.url, portal.token, shared, retry_attempts=1)
    portal.fail_with_429()  # the interval it names: 1000 ms
    with pytest.raises(FatalCrmError, match="429"):
        first.read_ids("account", [company])
    assert first.limits.general.stats.throttled == 1
    # another process: its own registry, connection pool and buckets; only Redis in common
    monkeypatch.setattr(hubspot_limits, "_REGISTRY", {})
    monkeypatch.setattr(shared_limits, "_POOLS", {})
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(seconds)

    other = portal_crm(portal.url, portal.token, SharedLimits.for_workers(redis_url, queue), sleep)
    assert other.limits.general is not first.limits.general
    assert other.read_ids("account", [company])
    assert waits and 0 < waits[0] <= INTERVAL  # it waited out what was left of the pause
    assert other.limits.general.stats.waits == 1
    assert portal.statuses[429] == 1 and portal.statuses[200] == 1


def test_a_paused_portal_is_not_called_until_the_pause_ends(portal, shared):
    company = portal.create("companies", {"name": "Acme"})
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        time.sleep(seconds)

    crm = portal_crm(portal.url, portal.token, shared, sleep=sleep)
    crm.limits.general.pause(0.3)  # as if another process had just seen a 429
    crm.read_ids("account", [company])
    assert slept and 0 < slept[0] <= 0.3
    assert portal.statuses[200] == 1 and portal.statuses[429] == 0


def test_the_search_budget_is_shared_apart_from_the_general_one(shared):
    lim = hubspot_limits.limits_for("portal-x", 10, 2, interval=INTERVAL, shared=shared)
    assert isinstance(lim.search, SharedBucket) and lim.search.limit == 2
    assert lim.search.tokens != lim.general.tokens
    assert lim.search.tokens.startswith(f"{shared.prefix}:hs:portal-x:")
    assert hubspot_limits.limits_for("portal-x", 10, 2, shared=shared) is lim  # one per process
    assert f"{shared.prefix}:hs:portal-x" in hubspot_limits.snapshot()


def test_every_token_of_a_full_window_is_held_until_one_interval_after_its_release(shared):
    waits: list[float] = []
    bucket = shared.bucket("b", 2, 5.0, lease=1.0, sleep=waits.append)
    held = [bucket.acquire(), bucket.acquire()]
    bucket.release(held[0])

    class Full(Exception):
        pass

    def full(seconds: float) -> None:
        waits.append(seconds)
        raise Full

    bucket.sleep = full
    with pytest.raises(Full):
        bucket.acquire()
    # the one in flight comes back at its lease (1 s + the interval), the released one at 5 s
    assert 4.0 < waits[-1] <= 5.0


# ------------------------------------------------------------------ Salesforce


@pytest.fixture
def rsps():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_passthru("redis://")
        yield mock


def test_the_daily_use_stop_seen_by_one_transport_stops_another_before_it_calls(
    rsps, tmp_path, monkeypatch, redis_url, queue
):
    org = FakeOrg(rsps, daily_limit=1000)
    book = SalesforceBook(org)
    owner = book.user("Sam Rep")
    for i in range(3):
        book.contract(book.account(f"Account {i}", owner=owner), AS_OF.replace(year=2027))
    monkeypatch.setenv("RENEWALS_REDIS_URL", redis_url)
    config = load_config(salesforce_config(tmp_path, monkeypatch, workers={"queue": queue}))
    first, second = bootstrap.build(config), bootstrap.build(config)
    try:
        # the guard trips once usage reaches 80%: within the reads (two Composite calls of
        # first pages, then the third call)
        org.api_used = 798
        with pytest.raises(ApiLimitReached, match="800 of its 1,000"):
            sync(first, as_of=AS_OF)
        assert second.crm.api_usage is None  # the second transport has seen no answer yet
        before = len(org.calls)
        with pytest.raises(ApiLimitReached, match="800 of its 1,000"):
            sync(second, as_of=AS_OF)
        assert len(org.calls) == before  # stopped before its first call
        usage = SharedLimits.for_workers(redis_url, queue).org(first.crm.transport.shared.org)
        assert usage.get() == (800, 1000)
        assert usage.calls() == first.crm.transport.api_calls > 0
    finally:
        first.close()
        second.close()


# ------------------------------------------------------------------ Redis down


def test_redis_down_stops_the_run_in_one_line_naming_redis_not_its_password(
    tmp_path, portal, monkeypatch
):
    from click.testing import CliRunner

    from crm_renewals.connector.adapters.hubspot import TOKEN_ENV
    from crm_renewals.connector.cli import main
    from tests.hubspot.conftest import hubspot_config

    portal.create("companies", {"name": "Acme"})
    monkeypatch.setenv(TOKEN_ENV, portal.token)
    monkeypatch.setenv("RENEWALS_REDIS_URL", "redis://:s3cret@127.0.0.1:1/0")  # nothing listens
    sync_settings = {"retry_attempts": 2, "retry_max_wait_seconds": 0}
    config = hubspot_config(tmp_path, portal, sync=sync_settings)
    result = CliRunner().invoke(main, ["--config", str(config), "sync"])
    assert result.exit_code != 0
    assert "Redis at 127.0.0.1:1/0 are unavailable" in result.output
    assert "still failing after 2 attempts" in result.output
    assert "Traceback" not in result.output and "s3cret" not in result.output
    assert portal.statuses.total() == 0  # no request went out uncounted


# ------------------------------------------------------------------ wiring


def test_bootstrap_shares_the_buckets_only_when_a_redis_url_is_set(
    tmp_path, portal, redis_url, queue, monkeypatch
):
    from crm_renewals.connector.adapters.hubspot import TOKEN_ENV
    from crm_renewals.connector.adapters.hubspot.limits import RollingBucket
    from tests.hubspot.conftest import hubspot_config

    monkeypatch.setenv(TOKEN_ENV, portal.token)
    monkeypatch.delenv("RENEWALS_REDIS_URL", raising=False)
    path = hubspot_config(tmp_path, portal, workers={"queue": queue})
    alone = bootstrap.build_hubspot(load_config(path))
    assert isinstance(alone.limits.general, RollingBucket)  # no Redis: as before
    monkeypatch.setenv("RENEWALS_REDIS_URL", redis_url)
    together = bootstrap.build_hubspot(load_config(path))
    assert isinstance(together.limits.general, SharedBucket)
    assert together.limits.general.tokens.startswith(f"renewals:{queue}:limits:hs:")
    again = bootstrap.build_hubspot(load_config(path))
    assert again.limits is together.limits  # one set of buckets per portal per process
    config = load_config(path)
    assert bootstrap.shared_limits(config).redis is bootstrap.shared_limits(config).redis  # 1 pool


def test_on_celery_with_a_redis_broker_the_limits_are_shared_through_the_broker(
    tmp_path, portal, redis_url, queue, monkeypatch
):
    from crm_renewals.connector.adapters.hubspot import TOKEN_ENV
    from crm_renewals.connector.adapters.hubspot.limits import RollingBucket
    from tests.hubspot.conftest import hubspot_config

    monkeypatch.setenv(TOKEN_ENV, portal.token)
    monkeypatch.delenv("RENEWALS_REDIS_URL", raising=False)
    amqp = {"queue": queue, "engine": "celery", "broker_url": "amqp://guest@127.0.0.1:5672//"}
    path = hubspot_config(tmp_path, portal, workers=amqp)
    alone = bootstrap.build_hubspot(load_config(path))
    assert isinstance(alone.limits.general, RollingBucket)  # RabbitMQ, no redis_url: alone
    celery = {"queue": queue, "engine": "celery", "broker_url": redis_url}
    path = hubspot_config(tmp_path, portal, workers=celery)
    shared = bootstrap.build_hubspot(load_config(path))
    assert isinstance(shared.limits.general, SharedBucket)
