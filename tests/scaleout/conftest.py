"""The machine's Redis for the shared rate limits: a key prefix of its own per test (other
helpers' tests share the Redis), its keys deleted afterwards; skipped when Redis does not answer."""

from __future__ import annotations

import os
import uuid

import pytest

REDIS_URL = os.environ.get("RENEWALS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def redis_url() -> str:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        pytest.skip(f"no Redis at {REDIS_URL} ({type(exc).__name__}): shared limits need one")
    return REDIS_URL


@pytest.fixture
def queue(redis_url):
    """A workers.queue of its own: the shared keys live under renewals:<queue>:limits."""
    import redis

    name = f"test-{uuid.uuid4().hex[:12]}"
    yield name
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"renewals:{name}:*", count=1000))
    if keys:
        client.delete(*keys)


@pytest.fixture
def shared(redis_url, queue):
    from crm_renewals.connector.adapters.shared_limits import SharedLimits

    return SharedLimits.for_workers(redis_url, queue)
