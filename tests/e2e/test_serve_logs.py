"""`renewals serve -v` as a real process, in both log formats: gunicorn's access and error
logs, the web workers' and the inbox worker's lines never show a secret, every line parses
in JSON mode (with the run's id and CRM on the inbox worker's run), and it warns once for the
webhook source that would refuse every delivery."""

from __future__ import annotations

import http.client
import json
import time

import pytest

from tests.e2e.test_serve_and_scheduler import wait_for
from tests.e2e.test_serve_hardening import serving
from tests.webhooks.conftest import SIGNALS_SECRET, VECTOR, signals_headers

NOTIFY = "slack://T0000/B0000/notify-token-in-the-url"
SECRETS = (VECTOR["client_secret"], SIGNALS_SECRET, NOTIFY)


def leak_secrets(port: int) -> None:
    """Requests that put every secret where a log line would show it: the path and the
    User-Agent and Referer of the access log, a signal's measure in the refusal the web
    worker logs."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = {"User-Agent": SECRETS[0], "Referer": f"https://x.example/{SECRETS[1]}"}
        conn.request("GET", f"/{NOTIFY}", headers=headers)
        conn.getresponse().read()
        body = json.dumps({"account": "001", "measure": NOTIFY, "value": 1}).encode()
        conn.request("POST", "/webhooks/signals", body, signals_headers(body, int(time.time())))
        assert conn.getresponse().status == 400
    finally:
        conn.close()


def send_signal(port: int) -> int:
    """A valid signal: the inbox worker re-scores its account in a webhook run."""
    body = json.dumps(
        {"account": "001", "measure": "nps", "value": 42, "timestamp": "2026-11-20T10:00:00Z"}
    ).encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", "/webhooks/signals", body, signals_headers(body, int(time.time())))
        return conn.getresponse().status
    finally:
        conn.close()


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_serve_logs_no_secret_in_either_format_and_each_json_line_parses(
    tmp_path, monkeypatch, fmt
):
    monkeypatch.setenv("RENEWALS_LOG_FORMAT", fmt)
    monkeypatch.setenv("RENEWALS_NOTIFY_SLACK_URL", NOTIFY)
    with serving(tmp_path, verbose=True, worker_poll_seconds=0.05) as (port, output):
        leak_secrets(port)
        assert send_signal(port) == 200  # the inbox worker runs it: a webhook run
        wait_for(lambda: "run 1 ok" in output() and "refused signals" in output(), timeout=30)
    text = output()
    assert not any(secret in text for secret in SECRETS), text[-3000:]
    assert "***" in text
    warnings = [line for line in text.splitlines() if "webhooks:" in line and "WARNING" in line]
    assert len(warnings) == 1 and "SALESFORCE_ORG_ID" in warnings[0], text[-3000:]
    if fmt == "text":
        assert warnings[0].split(" WARNING ", 1)[1].startswith("crm_renewals.connector.cli_serve")
        return
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]  # each parses
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    loggers = {line["logger"] for line in lines}
    assert {"gunicorn.access", "gunicorn.error", "crm_renewals.webhooks.app"} <= loggers
    (run,) = [line for line in lines if line["message"].startswith("run 1 ok")]
    assert run["run_id"] == 1 and run["crm"] == "sandbox" and run["mode"] == "webhook"
    assert run["created"] == 0 and run["failed"] == 0
    refused = {"method": "POST", "path": "/webhooks/signals", "status": 400}
    access = [line for line in lines if line["logger"] == "gunicorn.access"]
    assert any(refused.items() <= line.items() for line in access)  # the request's parts
    (warning,) = [line for line in lines if line["level"] == "WARNING"]
    assert warning["source"] == "salesforce"
