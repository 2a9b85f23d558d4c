"""Rate limits shared by every process through Redis (workers.redis_url): the same budgets as the
in-process buckets (connector.adapters.hubspot.limits), counted once for a whole fleet.

- `SharedBucket`: a HubSpot portal's rolling window (general or search). Exactly the in-process
  bucket's rule: a token is held from the request until one interval after its response, so no
  window of the server's (which counts arrivals) ever sees more than the limit, whatever the
  latency. Each token is a member of a sorted set scored by when it comes back; a request in
  flight holds a lease (request timeout + interval) so a process killed mid-request gives its
  token back. Time is the Redis server's (TIME), one clock for every machine. A moving-window
  log of request start times (`limits`' MovingWindowRateLimiter) cannot express "back one
  interval after the response", which is why this part is one small Lua script.
- A 429 anywhere sets the portal's pause key (PX = Retry-After): every process's acquire waits.
- `OrgUsage`: a Salesforce org's last Sforce-Limit-Info reading, and our calls per org per UTC
  day, counted with `limits`' Redis storage (`incr` with expiry, the library's atomic
  INCR-and-EXPIRE script).

Redis unreachable: acquire, pause and the usage check raise `SharedLimitsUnavailable` (retried
by the transport like any transient failure, then the run stops in one line and the next one
resumes). There is no fallback to in-process buckets: several processes each spending a
portal's whole budget is exactly what sharing is there to prevent.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import urlsplit

import redis
from limits.storage import RedisStorage

from crm_renewals.connector.adapters.hubspot.limits import BucketStats
from crm_renewals.connector.errors import RetriableCrmError

#: how long a Salesforce usage reading is trusted without a fresher one (the stop it causes
#: lifts after this unless a call sees the org still past the share)
USAGE_TTL_SECONDS = 600
#: our own call counts per org and UTC day are kept this long
CALLS_TTL_SECONDS = 2 * 86_400

_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local paused = redis.call('PTTL', KEYS[2])
if paused > 0 then return paused end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  local lease = tonumber(ARGV[2])
  redis.call('ZADD', KEYS[1], now + lease, ARGV[3])
  if redis.call('PTTL', KEYS[1]) < lease then redis.call('PEXPIRE', KEYS[1], lease) end
  return 0
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(tonumber(first[2]) - now, 1)
"""
_RELEASE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
redis.call('ZADD', KEYS[1], now + interval, ARGV[2])
if redis.call('PTTL', KEYS[1]) < interval then redis.call('PEXPIRE', KEYS[1], interval) end
return 0
"""
_PAUSE = """
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
end
return 0
"""
#: keep the highest use seen (the day's use only grows) until it expires or the total changes
_USAGE = """
local old = redis.call('HMGET', KEYS[1], 'used', 'total')
if old[1] and tonumber(old[2]) == tonumber(ARGV[2]) and tonumber(old[1]) >= tonumber(ARGV[1])
then return 0 end
redis.call('HSET', KEYS[1], 'used', ARGV[1], 'total', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""


class SharedLimitsUnavailable(RetriableCrmError):
    """Redis, which holds the shared rate limits, did not answer."""


_POOLS: dict[str, redis.Redis] = {}
_POOLS_LOCK = threading.Lock()


def redis_client(url: str) -> redis.Redis:
    """One client (one connection pool) per process per URL, shared by every transport."""
    with _POOLS_LOCK:
        found = _POOLS.get(url)
        if found is None:
            found = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=3)
            _POOLS[url] = found
        return found


def where(url: str) -> str:
    """The Redis a URL names, without its password (for messages)."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"unix:{parts.path}"
    return f"{parts.hostname}:{parts.port or 6379}{parts.path or ''}"


class SharedLimits:
    """The Redis a deployment shares its limits through, and the key prefix (per queue)."""

    def __init__(self, url: str, prefix: str):
        self.url, self.prefix = url, prefix
        self.redis = redis_client(url)
        self._scripts = {
            name: self.redis.register_script(src)
            for name, src in (
                ("acquire", _ACQUIRE),
                ("release", _RELEASE),
                ("pause", _PAUSE),
                ("usage", _USAGE),
            )
        }
        self._storage: RedisStorage | None = None

    @classmethod
    def for_workers(cls, redis_url: str | None, queue: str) -> SharedLimits | None:
        """workers.redis_url (RENEWALS_REDIS_URL wins) and workers.queue; None: no Redis."""
        return cls(redis_url, f"renewals:{queue}:limits") if redis_url else None

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def run(self, script: str, keys: list[str], args: list) -> int:
        try:
            return int(self._scripts[script](keys=keys, args=args))
        except redis.RedisError as exc:
            raise self.unavailable(exc) from None

    def unavailable(self, exc: Exception) -> SharedLimitsUnavailable:
        return SharedLimitsUnavailable(
            f"the shared rate limits in Redis at {where(self.url)} are unavailable "
            f"({type(exc).__name__}); check workers.redis_url / RENEWALS_REDIS_URL",
            system="redis",
        )

    @property
    def storage(self) -> RedisStorage:
        """`limits`' Redis storage over this process's pool for the URL."""
        if self._storage is None:
            pool = self.redis.connection_pool
            self._storage = RedisStorage(self.url, connection_pool=pool, key_prefix=self.prefix)
        return self._storage

    def bucket(
        self,
        name: str,
        limit: int,
        interval: float,
        *,
        lease: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> SharedBucket:
        return SharedBucket(self, name, limit, interval, lease=lease, sleep=sleep)

    def org(self, org: str) -> OrgUsage:
        return OrgUsage(self, org)


class SharedBucket:
    """At most `limit` requests of every process in any `interval` (RollingBucket's interface:
    acquire -> token, release(token), pause(seconds), stats of this process's callers)."""

    def __init__(
        self,
        shared: SharedLimits,
        name: str,
        limit: int,
        interval: float,
        *,
        lease: float,
        sleep: Callable[[float], None],
    ):
        self.shared, self.limit, self.interval = shared, limit, interval
        self.tokens, self.paused = shared.key(name, "tokens"), shared.key(name, "pause")
        self.lease_ms = int((lease + interval) * 1000)
        self.interval_ms = max(int(interval * 1000), 1)
        self.sleep = sleep
        self.stats = BucketStats()
        self._lock = threading.Lock()

    def acquire(self) -> str:
        token, started, waited = uuid.uuid4().hex, time.monotonic(), False
        while True:
            wait_ms = self.shared.run(
                "acquire", [self.tokens, self.paused], [self.limit, self.lease_ms, token]
            )
            if wait_ms == 0:
                with self._lock:
                    self.stats.calls += 1
                    if waited:
                        self.stats.waits += 1
                        self.stats.waited_seconds += time.monotonic() - started
                return token
            waited = True
            self.sleep(wait_ms / 1000)

    def release(self, token: str | None = None) -> None:
        """The response arrived: the token comes back one interval from now. Redis failing
        here is not the request's failure: the lease gives the token back instead."""
        if token is None:
            return
        with contextlib.suppress(SharedLimitsUnavailable):
            self.shared.run("release", [self.tokens], [self.interval_ms, token])

    def pause(self, seconds: float) -> None:
        """A 429: no process gets a token of this bucket for `seconds`."""
        with self._lock:
            self.stats.throttled += 1
        ms = max(int(seconds * 1000), 1)
        with contextlib.suppress(SharedLimitsUnavailable):  # the next acquire says so
            self.shared.run("pause", [self.paused], [ms])


class OrgUsage:
    """A Salesforce org's daily API use as every process last saw it, and our calls today."""

    def __init__(self, shared: SharedLimits, org: str):
        self.shared, self.org = shared, org
        self.usage_key = shared.key("sf", org, "usage")

    def get(self) -> tuple[int, int] | None:
        """(used, total) of the highest Sforce-Limit-Info seen lately by any process."""
        try:
            used, total = self.shared.redis.hmget(self.usage_key, "used", "total")
        except redis.RedisError as exc:
            raise self.shared.unavailable(exc) from None
        return (int(used), int(total)) if used is not None and total is not None else None

    def set(self, used: int, total: int) -> None:
        """A reading of an answer: kept if it is the highest (Redis down: the next check,
        before the next call, says so; the answer itself is not failed)."""
        with contextlib.suppress(SharedLimitsUnavailable):
            self.shared.run("usage", [self.usage_key], [used, total, USAGE_TTL_SECONDS])

    def count_call(self, day: str | None = None) -> None:
        """One more API call of ours to the org today (UTC)."""
        with contextlib.suppress(redis.RedisError):  # a statistic: never why a call fails
            self.shared.storage.incr(self._calls(day), CALLS_TTL_SECONDS)

    def calls(self, day: str | None = None) -> int:
        """Our API calls to the org on `day` (YYYY-MM-DD, UTC; default today), all processes."""
        try:
            return self.shared.storage.get(self._calls(day))
        except redis.RedisError as exc:
            raise self.shared.unavailable(exc) from None

    def _calls(self, day: str | None) -> str:
        return f"sf:{self.org}:calls:{day or datetime.now(UTC).date().isoformat()}"
