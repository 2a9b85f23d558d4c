"""Webhook load: signed HubSpot batches against `renewals serve` on loopback, side by side with
a bare Flask app that only verifies the signature and inserts a row (benchmarks/bare_webhook.py),
both under gunicorn with the same workers and threads: the bare app in gthread workers (threads
read the requests), `renewals serve` in its gevent workers (slow clients cost no worker, see
webhooks/server.py), so the figures include what that protection costs. Bounded by a request
count and a time.

Both servers run at once and are loaded in alternating rounds (bare, ours, bare, ours, ...), so
a change in the machine's background load hits both alike; each round starts once the receiver's
inbox worker has drained the previous one (its backlog would otherwise take CPU from the next
round). Reported: the median round's batches per second and the client-side latency p50/p99
over all rounds for each, and how fast the inbox worker drains what a round left; targets:
>= 90 % of the bare app's throughput and p99 < 20 ms. The inbox worker runs as in production
(the events name HubSpot deals, which the sandbox mapping does not read: each is read from its
delivery, deduplicated, and settled as ignored).
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
from crm_renewals.webhooks.verify import hubspot_v3_signature

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


def _inbox(port: int) -> tuple[int, int]:
    """(deliveries waiting, events pending) of the receiver, from /healthz."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/healthz")
    body = json.loads(conn.getresponse().read())
    return body["deliveries_waiting"], body["inbox_depth"]


def _drained(port: int, timeout: float = 120) -> float:
    """Wait until the receiver's inbox worker has nothing left; seconds it took."""
    started = time.perf_counter()
    while _inbox(port) != (0, 0):
        if time.perf_counter() - started > timeout:
            raise RuntimeError(f"the inbox worker did not drain in {timeout:.0f} s")
        time.sleep(0.05)
    return time.perf_counter() - started


def run(
    requests: int = 3000,
    batch_size: int = 10,
    clients: int = 8,
    max_seconds: float = 20.0,
    workers: int = 2,
    threads: int = 4,
    rounds: int = 5,
) -> list[Verdict]:
    heading("webhooks: signed HubSpot batches on loopback, renewals serve vs bare Flask")
    row("load", f"{rounds} rounds each of {requests} batches of {batch_size} events")
    row("clients", f"{clients} keep-alive connections")
    row(
        "servers",
        f"gunicorn, {workers} workers x {threads} at once each (bare: gthread; ours: gevent)",
    )
    names = ("bare Flask (verify + insert)", "renewals serve")
    rates: dict[str, list[float]] = {n: [] for n in names}
    latencies: dict[str, list[float]] = {n: [] for n in names}
    drains: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-webhooks-") as tmp:
        folder = Path(tmp)
        ports = {n: _port() for n in names}
        procs = {
            names[0]: _start_bare(folder, ports[names[0]], workers, threads),
            names[1]: _start_renewals(folder, ports[names[1]], workers, threads),
        }
        ours = ports[names[1]]
        try:
            for name in names:
                _wait_healthy(ports[name], procs[name])
                base = f"http://127.0.0.1:{ports[name]}"
                _load(ports[name], _batches(200, batch_size, base, 1), clients, max_seconds)
            _drained(ours)
            first_id = 1_000_000
            for _ in range(rounds):
                for name in names:
                    base = f"http://127.0.0.1:{ports[name]}"
                    batches = _batches(requests, batch_size, base, first_id)
                    rate, lat = _load(ports[name], batches, clients, max_seconds)
                    rates[name].append(rate)
                    latencies[name] += lat
                    if name == names[1]:
                        drains.append(_drained(ours))
                first_id += requests * batch_size
        finally:
            for proc in procs.values():
                _stop(proc)
    for name in names:
        lat = latencies[name]
        median = sorted(rates[name])[len(rates[name]) // 2]
        spread = ", ".join(f"{r:,.0f}" for r in rates[name])
        p50, p99 = _pct(lat, 50) * 1000, _pct(lat, 99) * 1000
        row(name, f"{median:,.0f} batches/s (rounds: {spread}), p50 {p50:.2f} ms, p99 {p99:.2f} ms")
    events = requests * batch_size
    slowest = max(drains)
    row(
        "inbox worker",
        f"a round's {events:,} events read, deduplicated and settled within "
        f"{slowest:.1f} s of its end (at most)",
    )
    flush()
    bare = sorted(rates[names[0]])[rounds // 2]
    ours_rate = sorted(rates[names[1]])[rounds // 2]
    p99 = _pct(latencies[names[1]], 99) * 1000
    share = ours_rate / bare
    return [
        verdict(
            Verdict("webhooks", "throughput vs bare app", f"{share:.0%}", ">= 90%", share >= 0.9)
        ),
        verdict(Verdict("webhooks", "p99 latency", f"{p99:.1f} ms", "< 20 ms", p99 < 20)),
    ]
