"""`renewals serve` with `workers.engine: celery`: no inbox worker process of its own; a
signed delivery is stored and acknowledged, its connection's webhook_batch is enqueued, and a
`renewals worker --engine celery` processes it (the account turns red in the CRM)."""

from __future__ import annotations

import http.client
import json
import os
import subprocess

from crm_renewals.connector import bootstrap
from crm_renewals.connector.config import load_config
from crm_renewals.connector.inbox import Inbox
from crm_renewals.jobs.dispatch import mark_key
from tests.conftest import write_config
from tests.e2e.test_crash import renewals_cli
from tests.e2e.test_serve_and_scheduler import free_port, healthy, stop
from tests.e2e.test_signals_serve import SECRET, post_signed
from tests.scaleout.conftest import wait_for
from tests.webhooks.test_signal_events import at_risk_tasks, green_account, red_signals


def health(port: int) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", "/healthz")
    return json.loads(conn.getresponse().read())


def test_serve_enqueues_a_webhook_batch_that_a_celery_worker_processes(fleet):
    ctx = bootstrap.build(load_config(fleet.path))
    try:
        _, acc, _ = green_account(ctx)
    finally:
        ctx.close()
    port = free_port()
    env = {**fleet.env, "SIGNALS_WEBHOOK_SECRET": SECRET}
    env["PROMETHEUS_MULTIPROC_DIR"] = str(fleet.folder / "metrics")
    serve = subprocess.Popen(
        [*renewals_cli(), "--config", str(fleet.path), "serve", "--bind", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        wait_for(lambda: healthy(port), procs=[serve])
        assert health(port)["worker"] == "celery"  # no inbox worker process here
        assert post_signed(port, red_signals(acc))[0] == 200
        mark = mark_key(fleet.queue, "default", "webhook_batch")
        wait_for(lambda: fleet.redis.exists(mark), procs=[serve])  # enqueued after the answer
        fleet.worker(concurrency=1)
        ctx = bootstrap.build(load_config(fleet.path))
        try:
            red = lambda: ctx.crm.get("Account", acc)["Health_Grade__c"] == "red"  # noqa: E731
            wait_for(lambda: red() and len(at_risk_tasks(ctx, acc)) == 1, procs=fleet.procs)
        finally:
            ctx.close()
        assert "webhook_batch[" in fleet.log()
    finally:
        err = stop(serve)
    assert "Traceback" not in err
    assert "inbox worker" not in err.lower().replace("no inbox worker", "")


def test_serve_acknowledges_and_stores_a_delivery_when_the_broker_does_not_answer(tmp_path):
    """The real server (gunicorn, gevent workers): the enqueue fails off the request path, the
    delivery is answered 200 and stored (the scheduler's sweep enqueues its batch later)."""
    nowhere = "redis://:s3cret-pw@127.0.0.1:1/0"  # nothing listens on port 1
    path = write_config(tmp_path, workers={"engine": "celery", "broker_url": nowhere})
    port = free_port()
    env = {**os.environ, "SIGNALS_WEBHOOK_SECRET": SECRET}
    env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path / "metrics")
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        serve = subprocess.Popen(
            [*renewals_cli(), "--config", str(path), "serve", "--bind", f"127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL,
            stderr=out,
            env=env,
        )
    try:
        wait_for(lambda: healthy(port), procs=[serve])
        assert post_signed(port, red_signals("001SB0000000001"))[0] == 200
        store = bootstrap.open_store(load_config(path))
        try:
            assert Inbox(store).depth() == 1
        finally:
            store.close()
        wait_for(lambda: "not enqueued (the sweep will)" in log.read_text(), procs=[serve])
    finally:
        serve.terminate()  # SIGTERM: gunicorn stops its workers
        serve.wait(30)
    assert "s3cret-pw" not in log.read_text() and "Traceback" not in log.read_text()
