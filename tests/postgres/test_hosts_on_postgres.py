"""Several hosts on one PostgreSQL state database, as real processes on loopback: two
`renewals serve` (each with its own inbox worker) take the same event 100 times between them
and it has one effect; two `renewals scheduler` run each slot once."""

from __future__ import annotations

import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from functools import partial
from urllib.request import Request, urlopen

import pytest

from crm_renewals.connector import bootstrap
from crm_renewals.connector.config import load_config
from crm_renewals.connector.config_sections import DEFAULT_JOBS
from crm_renewals.connector.services import sync
from crm_renewals.connector.services.sync import today
from crm_renewals.connector.state import StateStore
from tests.conftest import Book, write_config
from tests.e2e.test_crash import renewals_cli
from tests.e2e.test_serve_and_scheduler import DELIVERIES, free_port, healthy, stop, wait_for
from tests.webhooks.conftest import SF_ACK, SF_ORG
from tests.webhooks.test_processing import outbound

pytestmark = pytest.mark.usefixtures("on_postgres")


def host(tmp_path, name: str, sandbox, **sections):
    """The app.yaml of one host: its own data folder, the shared sandbox CRM (the state
    database comes from RENEWALS_STATE_URL)."""
    folder = tmp_path / name
    folder.mkdir()
    return write_config(folder, sandbox={"database": str(sandbox)}, **sections)


def deliver(body: bytes, port: int) -> tuple[int, bytes]:
    """POST an outbound message to the host on `port`: its answer."""
    request = Request(
        f"http://127.0.0.1:{port}/webhooks/salesforce", body, {"Content-Type": "text/xml"}
    )
    with urlopen(request, timeout=30) as answer:
        return answer.status, answer.read()


def test_two_serve_hosts_give_100_copies_of_one_event_one_effect(tmp_path, postgres_url):
    sandbox = tmp_path / "sandbox.db"
    configs = [
        host(tmp_path, name, sandbox, webhooks={"salesforce_org_id": SF_ORG}) for name in ("a", "b")
    ]
    ctx = bootstrap.build(load_config(configs[0]))
    book = Book(ctx.crm)
    cid = book.contract(book.account(), today() + timedelta(days=100), status="Draft")
    sync(ctx)
    ctx.crm.edit("Contract", cid, {"Status": "Activated"})
    ctx.close()
    ports = [free_port(), free_port()]
    hosts = [
        subprocess.Popen(
            [*renewals_cli(), "--config", str(config), "serve", "--bind", f"127.0.0.1:{port}"]
            + ["--workers", "2", "--threads", "8"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(config.parent / "metrics")},
        )
        for config, port in zip(configs, ports, strict=True)
    ]
    store = StateStore(postgres_url)
    try:
        for proc, port in zip(hosts, ports, strict=True):
            wait_for(lambda port=port: healthy(port), proc=proc)

        copies = [ports[i % 2] for i in range(DELIVERIES)]  # shared between the two hosts
        with ThreadPoolExecutor(max_workers=DELIVERIES) as pool:
            answers = list(pool.map(partial(deliver, outbound(cid)), copies))
        assert answers == [(200, SF_ACK)] * DELIVERIES
        wait_for(lambda: store.deliveries.waiting() == 0)
        wait_for(lambda: [r.status for r in store.inbox.all()] == ["done"])
    finally:
        logs = [stop(p) for p in hosts]
        store.close()
    assert not [log for log in logs if "Traceback" in log], logs
    ctx = bootstrap.build(load_config(configs[1]))
    try:
        assert [r.mode for r in ctx.store.runs.list()].count("webhook") == 1, logs
        (renewal,) = Book(ctx.crm).opportunities()
        assert renewal["Renewal_Contract__c"] == cid
    finally:
        ctx.close()


def test_two_schedulers_on_one_postgresql_run_each_slot_once(tmp_path, postgres_url):
    sandbox = tmp_path / "sandbox.db"
    jobs = {name: {"enabled": False, "cron": "0 0 1 1 *"} for name in DEFAULT_JOBS}
    jobs["incremental_sync"] = {"interval_seconds": 1}  # the only job: a slot every second
    schedule = {"jobs": jobs, "misfire_grace_seconds": 5}
    configs = [host(tmp_path, name, sandbox, schedule=schedule) for name in ("a", "b")]
    ctx = bootstrap.build(load_config(configs[0]))
    Book(ctx.crm).contract(Book(ctx.crm).account(), today() + timedelta(days=100))
    ctx.close()
    procs = [
        subprocess.Popen(
            [*renewals_cli(), "--config", str(config), "-v", "scheduler"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for config in configs
    ]
    store = StateStore(postgres_url)
    try:
        wait_for(
            lambda: len([r for r in store.jobs.list() if r.status != "running"]) >= 4, timeout=30
        )
    finally:
        logs = [stop(p) for p in procs]
    assert not [log for log in logs if "Traceback" in log], logs
    slots = store.jobs.list()
    done = [s for s in slots if s.status != "running"]
    assert {s.status for s in done} == {"ok"}, logs
    runs = [r for r in store.runs.list(limit=100) if r.mode == "incremental"]
    assert len(runs) in (len(done), len(slots))  # one sync per slot, never two
    assert sum("already run by another scheduler" in log for log in logs) >= 1, logs
    store.close()
