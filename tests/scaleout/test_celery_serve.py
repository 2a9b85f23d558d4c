"""`renewals serve` with `workers.engine: celery`: no inbox worker process of its own; a
signed delivery is stored and acknowledged, its connection's webhook_batch is enqueued, and a
`renewals worker --engine celery` processes it (the account turns red in the CRM)."""

from __future__ import annotations

import http.client
import json
import subprocess

from crm_renewals.connector import bootstrap
from crm_renewals.connector.config import load_config
from crm_renewals.jobs.dispatch import mark_key
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
