"""Issue 21's "done when": signed signals that turn an account red, posted to a real
`renewals serve` (with its inbox worker), show in the sandbox CRM within seconds: the
account's health and an at-risk task, without any sync being run."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import os
import subprocess
import time

from crm_renewals.connector import bootstrap
from crm_renewals.connector.config import load_config
from tests.conftest import write_config
from tests.e2e.test_crash import renewals_cli
from tests.e2e.test_serve_and_scheduler import free_port, healthy, query, stop, wait_for
from tests.webhooks.test_signal_events import at_risk_tasks, green_account, red_signals

SECRET = "e2e-signals-secret"


def post_signed(port: int, signals: list[dict]) -> tuple[int, dict]:
    """As README "Sending signals" tells senders to sign: v1= HMAC-SHA256(ts + "." + body)."""
    body = json.dumps({"signals": signals}).encode()
    ts = str(int(time.time()))
    mac = hmac.new(SECRET.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/json",
        "X-Signals-Timestamp": ts,
        "X-Signals-Signature": f"v1={mac}",
    }
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST", "/webhooks/signals", body, headers)
    resp = conn.getresponse()
    return resp.status, json.loads(resp.read())


def test_signals_turn_an_account_red_in_the_crm_through_renewals_serve(tmp_path):
    path = write_config(tmp_path)
    ctx = bootstrap.build(load_config(path))
    try:
        _, acc, _ = green_account(ctx)
    finally:
        ctx.close()
    port = free_port()
    proc = subprocess.Popen(
        [*renewals_cli(), "--config", str(path), "serve", "--bind", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={
            **os.environ,
            "SIGNALS_WEBHOOK_SECRET": SECRET,
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        },
    )
    data = tmp_path / "data"
    try:
        wait_for(lambda: healthy(port), proc=proc)
        for one in red_signals(acc):  # a burst, one request each
            assert post_signed(port, [one]) == (200, {"accepted": 1, "new": 1})
        ctx = bootstrap.build(load_config(path))
        try:
            red = lambda: ctx.crm.get("Account", acc)["Health_Grade__c"] == "red"  # noqa: E731
            wait_for(lambda: red() and len(at_risk_tasks(ctx, acc)) == 1, timeout=30, proc=proc)
        finally:
            ctx.close()
        runs = query(data / "state.db", "SELECT mode FROM runs ORDER BY id")
        assert [m for (m,) in runs][0] == "incremental" and "full" not in {m for (m,) in runs}
        assert {m for (m,) in runs[1:]} == {"webhook"}  # no sync: only the inbox worker's runs
    finally:
        stop(proc)
