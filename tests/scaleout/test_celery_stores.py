"""A worker serving many connections on PostgreSQL opens each connection's store for a task
and closes it after: the sessions it holds follow its threads, not the number of connections
(max_connections is 100; a thousand connections' pools would exhaust it)."""

from __future__ import annotations

import threading

from crm_renewals.connector import bootstrap
from crm_renewals.connector.services import connections as manage
from crm_renewals.jobs.dispatch import Dispatcher
from tests.scaleout.conftest import pg_sessions, wait_for

MANY, THREADS = 8, 2  # more connections than the sessions allowed below


def test_many_connections_do_not_hold_a_session_each(fleet, pg_fleet_url):
    base = fleet.base
    registry = bootstrap.open_store(base)
    try:
        names = [f"c{i:02d}" for i in range(MANY)]
        for name in names:
            manage.add(base, registry, name, "sandbox", "test")
    finally:
        registry.close()
    dispatch = Dispatcher(base)
    try:
        for name in names:
            assert dispatch.sync(name)
    finally:
        dispatch.close()
    peak, done = [0], threading.Event()

    def watch() -> None:
        while not done.wait(0.05):
            peak[0] = max(peak[0], pg_sessions(pg_fleet_url))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    fleet.worker(concurrency=THREADS)
    try:
        synced = lambda: "".join(fleet.log()).count("Task sync[") >= 2 * MANY  # noqa: E731
        wait_for(lambda: fleet.log().count("] succeeded") >= MANY, timeout=120, procs=fleet.procs)
        assert synced()
    finally:
        done.set()
        watcher.join()
    # each task: its store's session and its run lock's; plus the registry's
    assert peak[0] <= 2 * THREADS + 2, peak[0]
    assert pg_sessions(pg_fleet_url) <= 1  # between tasks: the registry's at most
    for name in names[:3]:
        store = fleet.store(name)
        try:
            assert store.runs.list(limit=1)[0].status in ("ok", "partial")
        finally:
            store.close()
