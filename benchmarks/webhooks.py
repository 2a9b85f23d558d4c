"""Webhook load: signed HubSpot batches against `renewals serve` on loopback, side by side with
a bare Flask app that only verifies the signature and inserts a row (benchmarks/bare_webhook.py),
both under gunicorn with the same workers and threads. Bounded by a request count and a time.

Reported: batches per second and client-side latency p50/p99 for each; targets: >= 90 % of the
bare app's throughput and p99 < 20 ms. The receiver's inbox worker runs as in production (the
events name HubSpot deals, which the sandbox mapping does not know: each is settled as ignored).
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

from benchmarks.common import Verdict, flush, heading, row, verdict
from webhooks.verify import hubspot_v3_signature

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-secret-0000-0000"
PATH = "/webhooks/hubspot"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(port: int, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read().decode()[-1500:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("server did not become healthy")


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def _batches(count: int, size: int, base_url: str, first_id: int) -> list[tuple[bytes, dict]]:
    ts = str(int(time.time() * 1000))
    out = []
    for b in range(count):
        events = [
            {
                "eventId": first_id + b * size + i,
                "subscriptionId": 250001,
                "portalId": 62515,
                "appId": 54321,
                "occurredAt": int(ts),
                "subscriptionType": "deal.propertyChange",
                "attemptNumber": 0,
                "objectId": 9_000_000_000 + b,
                "propertyName": "dealstage",
                "propertyValue": "closedwon",
                "changeSource": "CRM_UI",
            }
            for i in range(size)
        ]
        body = json.dumps(events, separators=(",", ":")).encode()
        sig = hubspot_v3_signature(SECRET, "POST", base_url + PATH, body, ts)
        headers = {
            "Content-Type": "application/json",
            "X-HubSpot-Signature-v3": sig,
            "X-HubSpot-Request-Timestamp": ts,
        }
        out.append((body, headers))
    return out


def _load(port: int, batches: list, clients: int, max_seconds: float) -> tuple[float, list[float]]:
    """Send the batches over `clients` keep-alive connections; (batches/s, latencies)."""
    latencies: list[float] = []
    lock = threading.Lock()
    next_i = iter(range(len(batches)))
    deadline = time.perf_counter() + max_seconds
    errors: list[str] = []

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine = []
        while time.perf_counter() < deadline:
            with lock:
                i = next(next_i, None)
            if i is None:
                break
            body, headers = batches[i]
            started = time.perf_counter()
            conn.request("POST", PATH, body, headers)
            resp = conn.getresponse()
            resp.read()
            mine.append(time.perf_counter() - started)
            if resp.status != 200:
                errors.append(str(resp.status))
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{len(errors)} requests failed: {sorted(set(errors))}")
    return len(latencies) / elapsed, latencies


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def _start_renewals(folder: Path, port: int, workers: int, threads: int) -> subprocess.Popen:
    data = yaml.safe_load((ROOT / "app.yaml").read_text())
    data["data_dir"] = str(folder / "renewals")
    data["mapping"] = str(ROOT / "mappings" / "sandbox.yaml")
    data["webhooks"]["public_base_url"] = f"http://127.0.0.1:{port}"
    config = folder / "app.yaml"
    config.write_text(yaml.safe_dump(data))
    script = Path(sys.executable).parent / "renewals"
    cmd = [str(script), "--config", str(config), "serve", "--bind", f"127.0.0.1:{port}"]
    cmd += ["--workers", str(workers), "--threads", str(threads)]
    env = {**os.environ, "HUBSPOT_CLIENT_SECRET": SECRET}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _start_bare(folder: Path, port: int, workers: int, threads: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "gunicorn", "benchmarks.bare_webhook:create_app()"]
    cmd += ["--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--threads", str(threads)]
    cmd += ["--worker-class", "gthread" if threads > 1 else "sync", "--log-level", "warning"]
    env = {
        **os.environ,
        "BARE_DB": str(folder / "bare.db"),
        "BARE_SECRET": SECRET,
        "BARE_BASE_URL": f"http://127.0.0.1:{port}",
        "PYTHONPATH": str(ROOT),
    }
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _measure(name, start, folder, requests, batch_size, clients, max_seconds, workers, threads):
    port = _port()
    proc = start(folder, port, workers, threads)
    try:
        _wait_healthy(port, proc)
        base = f"http://127.0.0.1:{port}"
        _load(port, _batches(min(200, requests), batch_size, base, 1), clients, max_seconds)
        batches = _batches(requests, batch_size, base, 1_000_000)
        rate, lat = _load(port, batches, clients, max_seconds)
    finally:
        _stop(proc)
    p50, p99 = _pct(lat, 50) * 1000, _pct(lat, 99) * 1000
    row(f"{name}", f"{rate:,.0f} batches/s, p50 {p50:.2f} ms, p99 {p99:.2f} ms ({len(lat)} sent)")
    flush()
    return rate, p50, p99


def run(
    requests: int = 3000,
    batch_size: int = 10,
    clients: int = 8,
    max_seconds: float = 20.0,
    workers: int = 2,
    threads: int = 4,
) -> list[Verdict]:
    heading("webhooks: signed HubSpot batches on loopback, renewals serve vs bare Flask")
    row("load", f"{requests} batches of {batch_size} events, {clients} keep-alive clients")
    row("servers", f"gunicorn, {workers} workers x {threads} threads each")
    with tempfile.TemporaryDirectory(prefix="bench-webhooks-") as tmp:
        folder = Path(tmp)
        args = (folder, requests, batch_size, clients, max_seconds, workers, threads)
        bare, _, _ = _measure("bare Flask (verify + insert)", _start_bare, *args)
        ours, _, p99 = _measure("renewals serve", _start_renewals, *args)
    share = ours / bare
    return [
        verdict(
            Verdict("webhooks", "throughput vs bare app", f"{share:.0%}", ">= 90%", share >= 0.9)
        ),
        verdict(Verdict("webhooks", "p99 latency", f"{p99:.1f} ms", "< 20 ms", p99 < 20)),
    ]
