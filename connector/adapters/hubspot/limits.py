"""HubSpot rate limits: one bucket per portal, shared by everything in the process.

HubSpot counts requests in a rolling window (N per 10 s per app and portal; search: 5 per second
per portal). A bucket here holds N tokens; each token spent comes back one window after the
response to its request arrived, so no window of the server's ever sees more than N requests,
while a steady stream still runs at the full rate. After a 429 the bucket is drained, so every
thread in the process pauses for the interval HubSpot names.

With workers.redis_url set, `limits_for(..., shared=...)` answers the same two budgets kept in
Redis for every process (connector.adapters.shared_limits.SharedBucket, same interface).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from crm_renewals.connector.adapters.shared_limits import SharedLimits


@dataclass
class BucketStats:
    """What others may read: calls let through, how often and how long callers waited."""

    calls: int = 0
    waits: int = 0
    waited_seconds: float = 0.0
    throttled: int = 0  # 429 answers reported back


class Bucket(Protocol):
    """What the transport calls: a token before each request, back after its response."""

    limit: int
    interval: float
    stats: BucketStats

    def acquire(self) -> Any: ...
    def release(self, token: Any = None) -> None: ...
    def pause(self, seconds: float) -> None: ...


class RollingBucket:
    """At most `limit` requests in any `interval` seconds (tokens return one interval after use)."""

    def __init__(
        self,
        limit: int,
        interval: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.limit, self.interval = limit, interval
        self.clock, self.sleep = clock, sleep
        self.stats = BucketStats()
        self._spent: deque[float] = deque()  # when each token in use comes back
        self._in_flight = 0
        self._lock = threading.Lock()

    def acquire(self) -> None:
        waited = False
        started = self.clock()
        while True:
            with self._lock:
                now = self.clock()
                while self._spent and self._spent[0] <= now:
                    self._spent.popleft()
                if len(self._spent) + self._in_flight < self.limit:
                    self._in_flight += 1
                    self.stats.calls += 1
                    if waited:
                        self.stats.waits += 1
                        self.stats.waited_seconds += now - started
                    return
                delay = self._spent[0] - now if self._spent else self.interval / self.limit
            waited = True
            self.sleep(max(delay, 0.0005))

    def release(self, token: Any = None) -> None:
        """The response arrived: the token comes back one interval from now."""
        with self._lock:
            self._in_flight -= 1
            self._spent.append(self.clock() + self.interval)

    def pause(self, seconds: float) -> None:
        """HubSpot said 429: no token for anyone for `seconds`."""
        with self._lock:
            self.stats.throttled += 1
            back = self.clock() + seconds
            self._spent = deque([back] * max(self.limit - self._in_flight, 0))


@dataclass
class PortalLimits:
    """The two budgets of one portal: general requests and CRM search."""

    general: Bucket
    search: Bucket


_REGISTRY: dict[str, PortalLimits] = {}
_REGISTRY_LOCK = threading.Lock()


def portal_key(base_url: str, token: str) -> str:
    """Buckets are per portal; the token identifies the portal without a call."""
    return hashlib.sha256(f"{base_url}\n{token}".encode()).hexdigest()[:16]


def limits_for(
    key: str,
    burst: int,
    search_per_second: int,
    *,
    interval: float = 10.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    shared: SharedLimits | None = None,
    lease: float = 60.0,
) -> PortalLimits:
    """The process-wide limits of a portal, created on first use; with `shared`, kept in Redis
    for every process (`lease`: how long a request in flight may hold its token)."""
    name = key if shared is None else f"{shared.prefix}:hs:{key}"
    with _REGISTRY_LOCK:
        found = _REGISTRY.get(name)
        if found is None:
            if shared is None:
                found = PortalLimits(
                    RollingBucket(burst, interval, clock, sleep),
                    RollingBucket(search_per_second, interval / 10, clock, sleep),
                )
            else:
                kw = {"lease": lease, "sleep": sleep}
                found = PortalLimits(
                    shared.bucket(f"hs:{key}:general", burst, interval, **kw),
                    shared.bucket(f"hs:{key}:search", search_per_second, interval / 10, **kw),
                )
            _REGISTRY[name] = found
        return found


def snapshot() -> dict[str, dict[str, BucketStats]]:
    """Every portal's bucket counters (calls, waits, seconds waited, 429s) in this process, for
    metrics: {portal key: {"general": BucketStats, "search": BucketStats}} (shared buckets under
    "<prefix>:hs:<portal key>")."""
    with _REGISTRY_LOCK:
        return {
            key: {"general": replace(lim.general.stats), "search": replace(lim.search.stats)}
            for key, lim in _REGISTRY.items()
        }


def bucket_waits() -> tuple[int, float]:
    """Waits for a token, and seconds waited, over every portal's buckets in this process."""
    stats = [s for by in snapshot().values() for s in by.values()]
    return sum(s.waits for s in stats), sum(s.waited_seconds for s in stats)
