"""Signal lag: signed signals at a steady rate to a real `renewals serve`, and how long each
takes from receipt to the CRM write it causes.

A sandbox of N contracts (the demo seed, scaled) is synced once (as of today: the inbox worker
plans as of today). `renewals serve` starts over it, with its inbox worker; then one signed
signal a request (NPS -60, each for its own green account) is sent at `rate` a second for
`seconds`. A signal is timed from just before its request is sent (its receipt is a little
later: the figure is on the safe side) to the moment the sandbox stamped the account record
with its new health (`records.modstamp`: the account's health is the run's last write, after
its renewals' health and any at-risk task). Reported: p50, p95 and the slowest, against the
target p95 < 5 s, and how many signals caused a write.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import sqlite3
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.common import Verdict, flush, heading, row, verdict
from benchmarks.webhooks import _pct, _port, _stop, _wait_healthy
from crm_renewals.connector import bootstrap
from crm_renewals.connector.adapters.sandbox.seed import seed
from crm_renewals.connector.config import load_config
from crm_renewals.connector.services.sync import sync, today
from tests.conftest import write_config

SECRET = "bench-signals-0000-0000"
TARGET_P95_S = 5.0


def run(contracts: int = 10_000, rate: float = 20.0, seconds: float = 30.0) -> list[Verdict]:
    heading(f"signal lag: {rate:g} signals/s for {seconds:g} s on a {contracts:,}-contract book")
    with tempfile.TemporaryDirectory(prefix="bench-signal-lag-") as tmp:
        folder = Path(tmp)
        config = write_config(folder)
        accounts = _book(config, contracts, int(rate * seconds))
        port = _port()
        proc = _serve(config, port)
        try:
            _wait_healthy(port, proc)
            sent = _send(port, accounts, rate)
            lags, written = _lags(folder / "data" / "sandbox.db", sent, timeout=60)
        finally:
            _stop(proc)
    p50, p95 = _pct(lags, 50), _pct(lags, 95)
    row("signals sent", f"{len(sent)} ({len(written)} caused an account write)")
    row("receipt to CRM write, p50", f"{p50:.2f} s")
    row("receipt to CRM write, p95", f"{p95:.2f} s")
    row("receipt to CRM write, slowest", f"{max(lags):.2f} s")
    flush()
    ok = p95 < TARGET_P95_S and len(written) == len(sent)
    return [
        verdict(
            Verdict(
                "signals",
                "receipt to CRM write p95",
                f"{p95:.2f} s ({len(written)}/{len(sent)} written)",
                f"< {TARGET_P95_S:g} s, every signal written",
                ok,
            )
        )
    ]


def _book(config: Path, contracts: int, wanted: int) -> list[str]:
    """Seed and sync the sandbox; `wanted` green accounts with an NPS a -60 signal lowers."""
    started = time.perf_counter()
    ctx = bootstrap.build(load_config(config))
    try:
        seed(ctx.crm, as_of=today(), accounts=contracts * 3 // 5, contracts=contracts)
        sync(ctx)
        green = [
            a["Id"]
            for a in ctx.crm.all("Account")
            if a.get("Health_Grade__c") == "green" and (a.get("NPS__c") or 0) > -20
        ]
    finally:
        ctx.close()
    row("seed and first sync", f"{time.perf_counter() - started:.1f} s")
    if len(green) < wanted:
        raise RuntimeError(f"only {len(green)} green accounts for {wanted} signals")
    return sorted(green)[:wanted]


def _serve(config: Path, port: int):
    import os
    import subprocess
    import sys

    script = Path(sys.executable).parent / "renewals"
    cmd = [str(script), "--config", str(config), "serve", "--bind", f"127.0.0.1:{port}"]
    env = {**os.environ, "SIGNALS_WEBHOOK_SECRET": SECRET}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _send(port: int, accounts: list[str], rate: float) -> dict[str, float]:
    """One signed signal a request, one account each, at `rate` a second; account -> the
    wall-clock moment its request was sent."""
    sent: dict[str, float] = {}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    start = time.monotonic()
    for i, account in enumerate(accounts):
        time.sleep(max(0.0, start + i / rate - time.monotonic()))
        at = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
        body = json.dumps(
            {"account": account, "measure": "nps", "value": -60, "timestamp": at}
        ).encode()
        ts = str(int(time.time()))
        mac = hmac.new(SECRET.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
        headers = {
            "Content-Type": "application/json",
            "X-Signals-Timestamp": ts,
            "X-Signals-Signature": f"v1={mac}",
        }
        sent[account] = time.time()
        conn.request("POST", "/webhooks/signals", body, headers)
        resp = conn.getresponse()
        if resp.status != 200:
            raise RuntimeError(f"signal refused: {resp.status} {resp.read()[:200]!r}")
        resp.read()
    conn.close()
    return sent


def _lags(sandbox: Path, sent: dict[str, float], timeout: float) -> tuple[list[float], set[str]]:
    """Seconds from each signal's sending to its account's write in the sandbox; the accounts
    written (waiting up to `timeout` s for the last ones)."""
    deadline = time.monotonic() + timeout
    stamps: dict[str, float] = {}
    while True:
        db = sqlite3.connect(sandbox, timeout=30)
        try:
            rows = db.execute("SELECT id, modstamp FROM records WHERE object = 'Account'")
            for record_id, modstamp in rows:
                if record_id in sent:
                    moment = datetime.fromisoformat(modstamp.replace("Z", "+00:00")).timestamp()
                    if moment >= sent[record_id]:
                        stamps[record_id] = moment
        finally:
            db.close()
        if len(stamps) == len(sent) or time.monotonic() > deadline:
            break
        threading.Event().wait(0.5)
    lags = [stamps[a] - sent[a] for a in stamps] or [float("inf")]
    return lags, set(stamps)
