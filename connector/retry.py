"""Bounded retries with jitter for transient CRM failures, honouring Retry-After."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

from crm_renewals.connector.errors import RetriableCrmError


def retrying(
    attempts: int = 5,
    max_wait: float = 30.0,
    max_total: float = 300.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Retrying:
    backoff = wait_random_exponential(multiplier=0.5, max=max_wait)

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        after = getattr(exc, "retry_after", None)
        return min(float(after), max_wait) if after is not None else backoff(state)

    return Retrying(
        retry=retry_if_exception_type(RetriableCrmError),
        stop=stop_after_attempt(attempts) | stop_after_delay(max_total),
        wait=wait,
        sleep=sleep,
        reraise=True,
    )


def backoff(attempt: int, max_wait: float) -> float:
    """Seconds to wait before attempt `attempt` + 1: full jitter over 0.5 s doubling, capped
    (as wait_random_exponential above)."""
    return random.uniform(0, min(max_wait, 0.5 * 2**attempt))
