"""Real processes on loopback: `renewals serve` under concurrent redeliveries, and two
`renewals scheduler` processes started by mistake on one database."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import sqlite3
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest

from crm_renewals.connector import bootstrap
from crm_renewals.connector.config import load_config
from crm_renewals.connector.services import sync
from crm_renewals.connector.services.sync import today
from crm_renewals.connector.state.deliveries import deliveries_path
from tests.conftest import Book, write_config
from tests.e2e.test_crash import renewals_cli
from tests.webhooks.conftest import SF_ACK, SF_ORG
from tests.webhooks.test_processing import outbound

DELIVERIES = 100


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float = 20.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process ended: {proc.stderr.read().decode()[-2000:]}")
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def stop(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return err.decode()


def healthy(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200
    except OSError:
        return False


def query(db: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


@pytest.fixture
def served(tmp_path):
    """`renewals serve` on a free loopback port, over a sandbox with one draft contract."""
    path = write_config(tmp_path, webhooks={"salesforce_org_id": SF_ORG})
    ctx = bootstrap.build(load_config(path))
    book = Book(ctx.crm)
    cid = book.contract(book.account(), today() + timedelta(days=100), status="Draft")
    sync(ctx)
    ctx.crm.edit("Contract", cid, {"Status": "Activated"})
    ctx.close()
    port = free_port()
    proc = subprocess.Popen(
        [*renewals_cli(), "--config", str(path), "serve", "--bind", f"127.0.0.1:{port}"]
        + ["--workers", "2", "--threads", "8"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")},
    )
    try:
        wait_for(lambda: healthy(port), proc=proc)
        yield port, cid, tmp_path / "data"
    finally:
        stop(proc)


def test_100_concurrent_deliveries_of_one_event_have_one_effect(served):
    port, cid, data = served
    body = outbound(cid)

    def deliver(_):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("POST", "/webhooks/salesforce", body, {"Content-Type": "text/xml"})
        resp = conn.getresponse()
        return resp.status, resp.read()

    with ThreadPoolExecutor(max_workers=DELIVERIES) as pool:
        answers = list(pool.map(deliver, range(DELIVERIES)))
    assert answers == [(200, SF_ACK)] * DELIVERIES
    state = data / "state.db"
    wait_for(lambda: query(deliveries_path(state), "SELECT count(*) FROM deliveries") == [(0,)])
    wait_for(lambda: query(state, "SELECT status FROM inbox") == [("done",)])
    assert query(state, "SELECT count(*) FROM runs WHERE mode = 'webhook'") == [(1,)]
    opps = query(data / "sandbox.db", "SELECT count(*) FROM records WHERE object='Opportunity'")
    assert opps == [(1,)]
    # every process's counts add up (multiprocess metrics): web workers and the inbox worker
    copies = DELIVERIES - 1
    labels = '{connection="default",source="salesforce"}'
    expected = [
        f"renewals_webhook_events_received_total{labels} {DELIVERIES}.0",
        f"renewals_webhook_events_duplicate_total{labels} {copies}.0",
        f"renewals_webhook_events_processed_total{labels} 1.0",
    ]
    # the worker counts right after it commits: give the counters a moment to catch up
    wait_for(lambda: all(line in metrics(port) for line in expected))


def metrics(port: int) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", "/metrics")
    return conn.getresponse().read().decode()


def health(port: int) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", "/healthz")
    return json.loads(conn.getresponse().read())


def running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_the_inbox_worker_runs_in_its_own_process_and_is_started_again(tmp_path):
    path = write_config(tmp_path)
    port = free_port()
    proc = subprocess.Popen(
        [*renewals_cli(), "--config", str(path), "serve", "--bind", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")},
    )
    pid_file = tmp_path / "data" / "inbox-worker.pid"
    try:
        wait_for(lambda: healthy(port), proc=proc)
        assert health(port)["worker"] == "ok"
        first = int(pid_file.read_text())
        assert first != proc.pid and os.getpriority(os.PRIO_PROCESS, first) >= 10
        os.kill(first, signal.SIGKILL)  # say, the OOM killer
        wait_for(lambda: health(port)["worker"] == "stopped", proc=proc)
        wait_for(lambda: healthy(port), proc=proc)  # started again
        second = int(pid_file.read_text())
        assert second != first and running(second)
    finally:
        err = stop(proc)
    assert "inbox worker exited" in err
    wait_for(lambda: not running(second))
    assert not pid_file.exists()


def test_two_schedulers_on_one_database_run_each_slot_once(tmp_path):
    jobs = {"incremental_sync": {"interval_seconds": 1}}
    jobs |= {
        name: {"enabled": False, "cron": "0 0 1 1 *"}
        for name in (
            "daily_renewal_scan",
            "daily_playbook_health",
            "quarterly_qbr_tasks",
            "daily_reconciliation",
        )
    }
    path = write_config(tmp_path, schedule={"jobs": jobs, "misfire_grace_seconds": 5})
    ctx = bootstrap.build(load_config(path))
    Book(ctx.crm).contract(Book(ctx.crm).account(), today() + timedelta(days=100))
    ctx.close()
    cmd = [*renewals_cli(), "--config", str(path), "-v", "scheduler"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)]
    procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
    state = tmp_path / "data" / "state.db"
    try:
        wait_for(
            lambda: (
                state.exists()
                and len(query(state, "SELECT 1 FROM job_runs WHERE status != 'running'")) >= 4
            ),
            timeout=30,
        )
    finally:
        logs = [stop(p) for p in procs]
    slots = query(state, "SELECT scheduled_at, status, runner FROM job_runs ORDER BY scheduled_at")
    done = [s for s in slots if s[1] != "running"]
    assert len(done) >= 4
    assert {s[1] for s in done} == {"ok"}, logs
    runs = query(state, "SELECT count(*) FROM runs WHERE mode = 'incremental'")[0][0]
    assert runs in (len(done), len(slots))  # one sync per slot, never two
    # both schedulers fired for the slots: the loser of each claim skipped it
    assert sum("already run by another scheduler" in log for log in logs) >= 1, logs
