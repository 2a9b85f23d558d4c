"""Change-to-CRM lag: signed HubSpot `deal.propertyChange` events at a steady rate to a real
`renewals serve` over a 10,000-contract HubSpot portal, timed from just before each request to
the CRM write it causes; then a ramp of rising rates.

A fake HubSpot portal (tests/fakes/hubspot_server.py, in a process of its own) holds N
closed-won deals (contracts) ending 200-299 days from today: outside the 120-day lead time, so
the first full sync (in this process, the portal's limit lifted) creates no renewal. The portal
then gets HubSpot's limit for a private app (100 requests per 10 s, search 5 a second) and
`renewals serve` starts over the synced state, with its inbox worker. For each event a user's
edit moves one contract's end date to 100-114 days from today (inside the lead time; made in
the portal through its admin route, which HubSpot's limit does not count), then the event is
sent, one a request: the worker reads the deal again, plans it and creates its renewal deal.
An event is timed from just before its request to the moment the portal recorded the first
write of the renewal deal whose `renewal_contract_id` is that contract (the receipt is a little
later than the request's start: the figure is on the safe side). Reported: p50, p95 and the
slowest, against the target p95 < 5 s, and how many events caused a write (all must).

The ramp then sends at each of `ramp` rates for `step_seconds` in turn (a step is cut short
when the book's contracts are used up: each event has a contract of its own), without pausing
(a backlog carries over, as it would), and waits for the last events: the rate of the first
step whose p95 passes 60 s (an event not written 60 s after the last was sent counts as
slower), the rates the sender actually reached, and the renewals written per second over the
busiest 10 s (while the worker had a backlog: what it keeps up with).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, date, datetime, timedelta
from itertools import count, islice
from pathlib import Path

import yaml

from benchmarks.common import Verdict, flush, heading, row, verdict
from benchmarks.webhooks import _pct, _port, _stop, _wait_healthy

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-hubspot-secret-0000"
PORTAL = 62515
TARGET_P95_S, CROSS_S = 5.0, 60.0
#: HubSpot's limits for a private app (app.yaml hubspot.limits: app_type private)
LIMIT, SEARCH_PER_S = 100, 5
SENDERS = 4


def run(
    contracts: int = 10_000,
    rate: float = 20.0,
    seconds: float = 30.0,
    ramp: tuple[float, ...] = (40, 80, 160, 320, 640),
    step_seconds: float = 10.0,
) -> list[Verdict]:
    heading(f"change lag: HubSpot events at {rate:g}/s for {seconds:g} s, {contracts:,} contracts")
    fake = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.change_lag", str(contracts)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        info = json.loads(fake.stdout.readline())
        row("portal seeded in", f"{info['seconds']:.1f} s ({len(info['deals']):,} contracts)")
        deals = iter(info["deals"])
        with tempfile.TemporaryDirectory(prefix="bench-change-lag-") as tmp:
            port = _port()
            config = _config(Path(tmp), info["url"], port)
            _first_sync(config, info["url"], info["token"])
            portal = Portal(info["url"])
            portal.admin("limit", {"burst": LIMIT, "interval": 10, "search": SEARCH_PER_S})
            portal.skip_writes()
            proc = _serve(config, port, info["token"])
            try:
                _wait_healthy(port, proc, timeout=120)
                steady = _send(port, portal, deals, rate, seconds)
                portal.wait(steady, time.time() + CROSS_S)
                steps = []
                for r in ramp:
                    sent = _send(port, portal, deals, r, step_seconds)
                    if sent:
                        steps.append((r, sent))
                portal.wait({c: t for _, s in steps for c, t in s.items()}, time.time() + CROSS_S)
            finally:
                _stop(proc)
    finally:
        fake.stdin.close()
        fake.wait(timeout=30)
    return _report(steady, steps, portal)


def _report(steady: dict, steps: list, portal: Portal) -> list[Verdict]:
    lags = portal.lags(steady)
    written = [x for x in lags if x != float("inf")]
    p95 = _pct(lags, 95)
    row("events sent", f"{len(steady)} ({len(written)} caused a renewal write)")
    row("receipt to CRM write, p50", f"{_pct(lags, 50):.2f} s")
    row("receipt to CRM write, p95", f"{p95:.2f} s")
    row("receipt to CRM write, slowest", f"{max(lags):.2f} s")
    crossed = None
    for wanted, sent in steps:
        step = portal.lags(sent)
        reached = _reached(sent)
        high = _pct(step, 95)
        row(
            f"ramp {wanted:g}/s: {len(sent)} sent at {reached:.0f}/s",
            f"p50 {_secs(_pct(step, 50))}, p95 {_secs(high)}, "
            f"{sum(x != float('inf') for x in step)}/{len(step)} written",
        )
        if crossed is None and high > CROSS_S:
            crossed = reached
    row("renewals written/s, busiest 10 s", f"{portal.capacity():.0f}")
    top = _reached(steps[-1][1]) if steps else 0.0
    row(
        f"p95 over {CROSS_S:g} s from",
        f"{crossed:.0f} events/s" if crossed else f"not reached up to {top:.0f} events/s",
    )
    flush()
    ok = p95 < TARGET_P95_S and len(written) == len(steady)
    return [
        verdict(
            Verdict(
                "lag",
                "HubSpot change to CRM write p95",
                f"{p95:.2f} s ({len(written)}/{len(steady)} written)",
                f"< {TARGET_P95_S:g} s, every event written",
                ok,
            )
        )
    ]


def _secs(value: float) -> str:
    return f"> {CROSS_S:g} s" if value == float("inf") else f"{value:.1f} s"


def _reached(sent: dict[str, float]) -> float:
    """The rate the sender reached: events over the time between the first and the last."""
    moments = sorted(sent.values())
    span = moments[-1] - moments[0] if len(moments) > 1 else 0.0
    return (len(moments) - 1) / span if span else 0.0


class Portal:
    """The fake portal's admin routes: edits, limits, and the writes it recorded."""

    def __init__(self, url: str):
        self.url, self.after = url, 0
        #: contract id -> when its renewal deal was first written; every write's moment
        self.renewed: dict[str, float] = {}
        self.moments: list[float] = []

    def admin(self, name: str, body: dict | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.url}/__fake__/{name}", data=data)
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

    def skip_writes(self) -> None:
        """Writes so far (the first sync's) are not the events'."""
        self.after = self.admin(f"writes?after={self.after}")["next"]

    def poll(self) -> None:
        answer = self.admin(f"writes?after={self.after}")
        self.after = answer["next"]
        for at, obj, _oid, props in answer["writes"]:
            contract = props.get("renewal_contract_id")
            if obj == "deals" and contract:
                self.moments.append(at)
                self.renewed.setdefault(contract, at)

    def wait(self, sent: dict[str, float], deadline: float) -> None:
        """Until every contract of `sent` has its renewal written, or `deadline` passes."""
        while True:
            self.poll()
            if all(c in self.renewed for c in sent) or time.time() > deadline:
                return
            time.sleep(0.25)

    def lags(self, sent: dict[str, float]) -> list[float]:
        return [self.renewed.get(c, float("inf")) - t for c, t in sent.items()] or [float("inf")]

    def capacity(self) -> float:
        """Renewal deals written a second over the busiest 10 s (the worker had a backlog)."""
        moments = sorted(self.moments)
        best, lo = 0, 0
        for hi, at in enumerate(moments):
            while moments[lo] < at - 10:
                lo += 1
            best = max(best, hi - lo + 1)
        return best / 10


def _send(port: int, portal: Portal, deals, rate: float, seconds: float) -> dict[str, float]:
    """At `rate` a second for `seconds`: a user's edit of one contract's end date, then its
    signed event, one a request (SENDERS threads keep the pace); contract -> the moment its
    request was sent."""
    chosen = list(islice(deals, int(rate * seconds)))  # fewer when the book is used up
    total = len(chosen)
    sent: dict[str, float] = {}
    slots = count()
    lock = threading.Lock()
    start = time.monotonic() + 0.05
    base = f"http://127.0.0.1:{port}/webhooks/hubspot"
    errors: list[str] = []

    def sender() -> None:
        hook = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while True:
            with lock:
                i = next(slots)
            if i >= total or errors:
                return
            time.sleep(max(0.0, start + i / rate - time.monotonic()))
            deal, end = chosen[i], date.today() + timedelta(days=100 + i % 15)
            portal.admin(
                "edit",
                {"type": "deals", "id": deal, "properties": {"contract_end_date": end.isoformat()}},
            )
            body, headers = _event(base, int(deal), end)
            at = time.time()
            hook.request("POST", "/webhooks/hubspot", body, headers)
            resp = hook.getresponse()
            resp.read()
            if resp.status != 200:
                errors.append(f"{resp.status}")
            with lock:
                sent[deal] = at

    threads = [threading.Thread(target=sender) for _ in range(SENDERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"events refused: {errors[:5]}")
    return sent


_EVENT_IDS = count(1)


def _event(uri: str, deal: int, end: date) -> tuple[bytes, dict[str, str]]:
    """One signed `deal.propertyChange` event (the official sample's shape)."""
    now_ms = int(time.time() * 1000)
    midnight = datetime(end.year, end.month, end.day, tzinfo=UTC)
    event = {
        "eventId": next(_EVENT_IDS),
        "subscriptionId": 250001,
        "portalId": PORTAL,
        "appId": 54321,
        "occurredAt": now_ms,
        "subscriptionType": "deal.propertyChange",
        "attemptNumber": 0,
        "objectId": deal,
        "propertyName": "contract_end_date",
        "propertyValue": str(int(midnight.timestamp() * 1000)),
        "changeSource": "CRM_UI",
    }
    body = json.dumps([event], separators=(",", ":")).encode()
    ts = str(now_ms)
    mac = hmac.new(SECRET.encode(), b"POST" + uri.encode() + body + ts.encode(), hashlib.sha256)
    return body, {
        "Content-Type": "application/json",
        "X-HubSpot-Signature-v3": base64.b64encode(mac.digest()).decode(),
        "X-HubSpot-Request-Timestamp": ts,
    }


def _config(folder: Path, url: str, port: int) -> Path:
    data = yaml.safe_load((ROOT / "app.yaml").read_text())
    data.update(
        crm="hubspot", data_dir=str(folder / "data"), mapping=str(ROOT / "mappings/hubspot.yaml")
    )
    data["hubspot"].update(base_url=url, portal_id=str(PORTAL))
    data["renewals"].update(
        initial_stage="appointmentscheduled",
        closed_won_stages=["closedwon"],
        closed_lost_stages=["closedlost"],
    )
    data["webhooks"]["public_base_url"] = f"http://127.0.0.1:{port}"
    path = folder / "app.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _first_sync(config: Path, url: str, token: str) -> None:
    """The first full sync, its rate limit lifted (x200: the portal enforces none yet)."""
    from crm_renewals.connector import bootstrap
    from crm_renewals.connector.adapters.hubspot import HubSpotCrm
    from crm_renewals.connector.config import load_config
    from crm_renewals.connector.mapping_file import load_mapping
    from crm_renewals.connector.services.sync import sync

    started = time.perf_counter()
    cfg = load_config(config)
    mapping = load_mapping(cfg.mapping_path, expect_crm="hubspot")
    crm = HubSpotCrm(mapping, cfg.hubspot, token, interval=0.05)
    ctx = bootstrap.build(cfg, crm)
    try:
        report = sync(ctx)
    finally:
        ctx.close()
    row(
        "first sync",
        f"{time.perf_counter() - started:.1f} s: created {report.created}, "
        f"skipped {report.skipped}, failed {report.failed}",
    )


def _serve(config: Path, port: int, token: str) -> subprocess.Popen:
    script = Path(sys.executable).parent / "renewals"
    cmd = [str(script), "--config", str(config), "serve", "--bind", f"127.0.0.1:{port}"]
    env = {**os.environ, "HUBSPOT_CLIENT_SECRET": SECRET, "HUBSPOT_ACCESS_TOKEN": token}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def serve_portal(contracts: int) -> None:
    """The benchmark's fake portal: seed, print where it listens and its contracts' deal ids,
    serve until stdin closes. No limit until the benchmark sets one (/__fake__/limit)."""
    from benchmarks.hubspot import _Discard, seed
    from tests.fakes.hubspot_server import FakeHubSpot

    fake = FakeHubSpot(burst=None, search_per_second=0)
    fake.start()
    fake.define_connector_properties()
    t0 = time.perf_counter()
    today = date.today()
    seed(fake, contracts, contracts * 3 // 5, end_of=lambda i: today + timedelta(200 + i % 100))
    fake.requests = _Discard()
    deals = [oid for oid, o in fake.objects["deals"].items() if not o["archived"]]
    info = {"url": fake.url, "token": fake.token, "deals": deals}
    print(json.dumps({**info, "seconds": time.perf_counter() - t0}), flush=True)
    sys.stdin.read()
    fake.stop()


if __name__ == "__main__":
    serve_portal(int(sys.argv[1]))
