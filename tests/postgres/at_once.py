"""Several threads released together, as several hosts or workers starting at the same time."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


def at_once(fn: Callable[[int], Any], n: int) -> list[Any]:
    """fn(0) ... fn(n - 1), each in a thread of its own, released together: their results in
    order (an exception in place of its result, for the test to look at)."""
    start, results = threading.Barrier(n), [None] * n

    def one(i: int) -> None:
        start.wait()
        try:
            results[i] = fn(i)
        except Exception as exc:  # noqa: BLE001 - handed back
            results[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results
