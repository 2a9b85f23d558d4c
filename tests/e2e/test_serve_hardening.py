"""`renewals serve` as a real process on loopback: slow or idle clients cannot take every
worker, a body that never arrives is cut, /metrics counts what the web workers saw, and the
access log never shows a query string's values."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

from tests.conftest import write_config
from tests.e2e.test_crash import renewals_cli
from tests.e2e.test_serve_and_scheduler import free_port, healthy, metrics, wait_for
from tests.webhooks.conftest import SIGNALS_SECRET, VECTOR, hubspot_headers

SLOW_CLIENTS = 64


@contextmanager
def serving(tmp_path: Path, *args: str, verbose: bool = False, **webhooks):
    """`renewals serve` (2 workers x 8 threads, as the e2e fixture) with the HubSpot and
    signals secrets set; PROMETHEUS_MULTIPROC_DIR left for `renewals serve` to set, as in
    production. Yields its port and a reader of everything it has printed so far."""
    path = write_config(
        tmp_path,
        webhooks={"public_base_url": "https://connector.example.com", **webhooks},
    )
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env |= {"HUBSPOT_CLIENT_SECRET": VECTOR["client_secret"]}
    env |= {"SIGNALS_WEBHOOK_SECRET": SIGNALS_SECRET}
    out = tmp_path / "serve.log"
    cmd = [*renewals_cli(), "--config", str(path), *(["-v"] if verbose else [])]
    cmd += ["serve", "--bind", f"127.0.0.1:{port}", "--workers", "2", "--threads", "8", *args]
    with out.open("wb") as sink:
        proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT, env=env)
        try:
            wait_for(lambda: healthy(port), proc=proc, timeout=30)
            yield port, lambda: out.read_text(errors="replace")
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def deliver(port: int, event_id: int, sign: bool = True, query: str = "") -> int:
    """A HubSpot batch of one event, signed now for the public URI."""
    body = json.dumps(
        [{"eventId": event_id, "subscriptionType": "deal.creation", "objectId": 7}]
    ).encode()
    path = "/webhooks/hubspot" + (f"?{query}" if query else "")
    headers = hubspot_headers(body, path, ts=str(int(time.time() * 1000)))
    if not sign:
        headers["X-HubSpot-Signature-v3"] = "bm90IGEgc2lnbmF0dXJl"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", path, body, headers)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def slow_client(port: int) -> socket.socket:
    """Declares a 100-byte body and sends 2 bytes of it (then nothing)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(
        b"POST /webhooks/hubspot HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n[{"
    )
    return sock


def test_64_slow_clients_do_not_stop_signed_deliveries_from_being_acked(tmp_path):
    with serving(tmp_path) as (port, _), ExitStack() as held:
        for _ in range(SLOW_CLIENTS):
            held.callback(slow_client(port).close)
        time.sleep(0.5)  # every slow request is in a worker, waiting for its body
        for event_id in range(1, 6):
            started = time.monotonic()
            assert deliver(port, event_id) == 200
            assert time.monotonic() - started < 1
        started = time.monotonic()
        assert healthy(port) and time.monotonic() - started < 1


def test_a_body_that_never_arrives_is_cut_after_the_configured_time(tmp_path):
    with serving(tmp_path, request_body_seconds=2) as (port, _):
        sock = slow_client(port)
        started = time.monotonic()
        answer = b""
        while chunk := sock.recv(4096):  # until the server closes the connection
            answer += chunk
        waited = time.monotonic() - started
        sock.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert 1.5 < waited < 6


def test_an_idle_connection_is_closed_after_a_few_seconds(tmp_path):
    with serving(tmp_path) as (port, _):
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        started = time.monotonic()
        assert sock.recv(4096) == b""  # closed, having sent nothing
        assert time.monotonic() - started < 6
        sock.close()


def test_metrics_of_renewals_serve_count_received_refused_and_latency(tmp_path):
    with serving(tmp_path) as (port, _):
        assert [deliver(port, i) for i in (1, 2, 3)] == [200] * 3
        assert [deliver(port, i, sign=False) for i in (4, 5, 6)] == [401] * 3
        text = metrics(port)
    assert (
        'renewals_webhook_events_received_total{connection="default",source="hubspot"} 3.0' in text
    )
    assert (
        'renewals_webhook_requests_refused_total{reason="signature",source="hubspot"} 3.0' in text
    )
    assert 'renewals_webhook_request_seconds_count{endpoint="hubspot"} 6.0' in text


def test_the_access_log_shows_no_query_string_values(tmp_path):
    secret = "qs-secret-4f9a7c"
    with serving(tmp_path, verbose=True) as (port, printed):
        assert deliver(port, 1, query=f"tenant=acme&token={secret}") == 200
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", f"/healthz?hapikey={secret}", headers={"Referer": f"/x?k={secret}"})
        conn.getresponse().read()
        # two workers write the access log: wait for both lines, in whichever order
        wait_for(lambda: "GET /healthz?" in printed() and "POST /webhooks/hubspot?" in printed())
        log = printed()
    assert "POST /webhooks/hubspot?tenant=***&token=***" in log
    assert "GET /healthz?hapikey=***" in log
    assert secret not in log


def test_deliveries_waiting_on_a_locked_database_stall_no_worker(tmp_path):
    """Another process holds the write lock of the deliveries' file: deliveries wait for it
    (and are acked once it is free), while both web workers go on answering /healthz at once."""
    import sqlite3
    from concurrent.futures import ThreadPoolExecutor

    from crm_renewals.connector.state.deliveries import deliveries_path

    with serving(tmp_path) as (port, _), ThreadPoolExecutor(4) as pool:
        locked = deliveries_path(tmp_path / "data" / "state.db")
        other = sqlite3.connect(locked, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        acks = [pool.submit(deliver, port, i) for i in range(1, 5)]
        time.sleep(0.5)  # the deliveries are in, waiting for the lock
        answers = []
        for _ in range(4):
            started = time.monotonic()
            answers.append(healthy(port) and time.monotonic() - started < 1)
        assert not any(a.done() for a in acks), "the lock did not hold the deliveries"
        other.execute("COMMIT")
        other.close()
        assert [a.result(timeout=30) for a in acks] == [200] * 4
    assert answers == [True] * 4


def test_a_delivery_is_acked_at_once_while_the_state_database_is_held(tmp_path):
    """The inbox worker storing events holds the state database's write lock: deliveries go
    to their own file and are acknowledged without waiting for it."""
    import sqlite3

    with serving(tmp_path) as (port, _):
        worker = sqlite3.connect(tmp_path / "data" / "state.db", isolation_level=None)
        worker.execute("BEGIN IMMEDIATE")
        try:
            started = time.monotonic()
            assert [deliver(port, i) for i in range(1, 4)] == [200] * 3
            assert time.monotonic() - started < 2
        finally:
            worker.execute("COMMIT")
            worker.close()


def send_signal(port: int, value: float) -> int:
    """One signed signal (README "Sending signals": v1= HMAC-SHA256(ts + "." + body))."""
    import hashlib
    import hmac

    signal = {
        "account": "001A",
        "measure": "nps",
        "value": value,
        "timestamp": "2026-11-20T10:00:00Z",
    }
    body = json.dumps(signal).encode()
    ts = str(int(time.time()))
    mac = hmac.new(SIGNALS_SECRET.encode(), ts.encode() + b"." + body, hashlib.sha256)
    headers = {
        "Content-Type": "application/json",
        "X-Signals-Timestamp": ts,
        "X-Signals-Signature": f"v1={mac.hexdigest()}",
    }
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", "/webhooks/signals", body, headers)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def test_signals_waiting_on_a_locked_database_stall_no_worker(tmp_path):
    """As deliveries: a signal (stored with its inbox event) waits for the state database's
    write lock in a native thread, while the web workers go on answering /healthz at once."""
    import sqlite3
    from concurrent.futures import ThreadPoolExecutor

    with serving(tmp_path) as (port, _), ThreadPoolExecutor(4) as pool:
        other = sqlite3.connect(tmp_path / "data" / "state.db", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        sent = [pool.submit(send_signal, port, v) for v in (10, 20, 30, 40)]
        time.sleep(0.5)  # the signals are in, waiting for the lock
        answers = []
        for _ in range(4):
            started = time.monotonic()
            answers.append(healthy(port) and time.monotonic() - started < 1)
        assert not any(s.done() for s in sent), "the lock did not hold the signals"
        other.execute("COMMIT")
        other.close()
        assert [s.result(timeout=30) for s in sent] == [200] * 4
    assert answers == [True] * 4
