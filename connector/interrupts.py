"""Ctrl-C at a safe point: what must happen together (a transaction's commit, and the counts
that say it happened) is not cut in the middle by a KeyboardInterrupt."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def deferred_interrupt() -> Iterator[None]:
    """Hold a Ctrl-C (SIGINT) that arrives in the block, then raise it as it ends. Python raises
    KeyboardInterrupt between any two bytecodes: inside SQLAlchemy's commit it would leave the
    transaction open with the database's lock held (so recording the interrupted run fails),
    after the commit but before the run's counts it would make them disagree with the ledger.
    Only where Ctrl-C means KeyboardInterrupt (the main thread, Python's default handler);
    elsewhere, and inside another such block, the block just runs."""
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, _frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught:
            raise KeyboardInterrupt
