"""`renewals serve`'s keeping of the inbox worker process (the real process: tests/e2e)."""

from __future__ import annotations

import gc
import sys
import threading
import time

from crm_renewals.webhooks.server import (
    STEADY_S,
    InboxProcess,
    NativeThread,
    _worker_ready,
)
from tests.webhooks.conftest import Clock

MAIN = threading.main_thread()


def test_a_worker_that_keeps_dying_is_started_again_after_a_doubling_wait():
    clock = Clock()
    keeper = InboxProcess([sys.executable, "-c", "pass"], clock=clock)
    starts = []
    for wait in (2, 4, 8):
        keeper.keep_running()
        starts.append(keeper.process)
        keeper.process.wait()
        keeper.keep_running()  # notices the exit: nothing started before the wait is over
        clock.now += wait - 0.1
        keeper.keep_running()
        assert keeper.process is None
        clock.now += 0.1
    keeper.keep_running()
    assert keeper.process is not None and keeper.process not in starts
    keeper.process.wait()
    clock.now += STEADY_S + 1  # it ran a long while before dying: started again after 1 s
    keeper.keep_running()
    clock.now += 1
    keeper.keep_running()
    assert keeper.process is not None
    keeper.stop(5)


def test_a_stopped_keeper_starts_nothing_more():
    keeper = InboxProcess([sys.executable, "-c", "import time; time.sleep(60)"])
    keeper.keep_running()
    running = keeper.process
    keeper.stop(5)
    assert running.returncode is not None  # terminated, not left behind
    keeper.keep_running()
    assert keeper.process is running


def test_work_handed_to_later_runs_in_a_native_thread_and_a_failure_is_logged(caplog):
    native, ran = NativeThread(), threading.Event()
    native.later(lambda: ran.set() if threading.current_thread() is not MAIN else None)
    assert ran.wait(10)

    def fails():
        raise OSError("disk I/O error")

    native.later(fails)
    deadline = time.monotonic() + 10
    while "background work" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.01)
    assert "background work in the web worker failed" in caplog.text


def test_a_ready_web_worker_leaves_what_it_loaded_out_of_garbage_collection():
    gc.unfreeze()
    try:
        _worker_ready(False)(object())
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
