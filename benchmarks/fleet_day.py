"""The fleet's simulated day: its processes (worker processes, `renewals serve` in celery mode)
and the beat that enqueues each connection's schedule slots at their wall time and sends
webhook deliveries after users changed records in the fakes: HubSpot's signed batches of
deal.propertyChange events, Salesforce's outbound messages (SOAP) of changed contracts, routed
by the org id in them.

Schedule of each connection, at a time of day of its own (a phase drawn over the 24 hours, as
a beat spreading connections does; a cron firing 1,000 connections at one instant would
measure the herd, not the pool): its daily reconciliation (full sync), the daily renewal scan
six hours later, an incremental sync every `incremental_hours` after the reconciliation (times
past midnight wrap round: the day's slots of every connection fall within the day)."""

from __future__ import annotations

import http.client
import json
import os
import random
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from crm_renewals.webhooks.verify import hubspot_v3_signature

HOUR = 3600.0
WEBHOOK_SECRET = "fleet-webhook-secret-0000"
PATH = "/webhooks/hubspot"
SF_PATH = "/webhooks/salesforce"
SF_ACTION = "04k000000000FLTAAA"


@dataclass(order=True)
class Event:
    at: float  # seconds from the start of the day (wall)
    kind: str = field(compare=False)  # job | webhook
    connection: str = field(compare=False)
    job: str = field(default="", compare=False)
    portal_id: int = field(default=0, compare=False)
    org_id: str = field(default="", compare=False)  # a Salesforce org's: an outbound message


def schedule(tenants, day_s: float, incremental_hours: float, webhooks: int, seed: int):
    """The day's events, in wall seconds from its start (scale: 86,400 / day_s)."""
    rng = random.Random(seed)
    per_hour = day_s / 24
    events: list[Event] = []
    for t in tenants:
        phase = rng.uniform(0, 24) * per_hour
        events.append(Event(phase, "job", t.name, "daily_reconciliation"))
        events.append(Event((phase + 6 * per_hour) % day_s, "job", t.name, "daily_renewal_scan"))
        step = incremental_hours * per_hour
        at = phase + step
        while at < phase + day_s - 1:
            events.append(Event(at % day_s, "job", t.name, "incremental_sync"))
            at += step
    small = [t for t in tenants if t.tier in ("small", "medium")] or tenants
    for _ in range(webhooks):
        t = rng.choice(small)
        at = rng.uniform(2, 23) * per_hour
        events.append(Event(at, "webhook", t.name, "", t.portal_id, t.org_id))
    return sorted(events)


def start_worker(env: dict, concurrency: int, log: Path, index: int) -> subprocess.Popen:
    """`renewals worker --engine celery --concurrency N`; its own PostgreSQL application name,
    so the sessions (and the run locks) each worker holds can be told apart."""
    own = dict(env)
    own["RENEWALS_STATE_URL"] = env["RENEWALS_STATE_URL"] + f"&application_name=fleet-w{index}"
    cmd = [_renewals(), "worker", "--engine", "celery", "--concurrency", str(concurrency)]
    with open(log, "ab") as out:
        return subprocess.Popen(cmd, env=own, stdout=out, stderr=subprocess.STDOUT)


def start_serve(env: dict, port: int, log: Path) -> subprocess.Popen:
    cmd = [_renewals(), "serve", "--bind", f"127.0.0.1:{port}", "--workers", "1"]
    cmd += ["--threads", "8"]
    env = {**env, "HUBSPOT_CLIENT_SECRET": WEBHOOK_SECRET}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with open(log, "ab") as out:
        return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)


def _renewals() -> str:
    return str(Path(sys.executable).parent / "renewals")


def wait_serving(port: int, proc: subprocess.Popen, connection: str, timeout: float = 300) -> float:
    """Wait until `renewals serve` answers; seconds it took."""
    t0 = time.monotonic()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"renewals serve exited ({proc.returncode}): see its log")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", f"/healthz/{connection}")
            if conn.getresponse().status in (200, 503):
                return time.monotonic() - t0
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("renewals serve did not answer")


def stop(proc: subprocess.Popen, timeout: float = 30) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Beat:
    """Sends the day's events at their wall time: Dispatcher.job for slots (the slot is the
    wall-clock moment it was due), and for webhooks: a user edits 1-3 deals in the portal,
    then HubSpot's signed delivery of their propertyChange events reaches `renewals serve`."""

    def __init__(
        self, dispatcher, fake_url: str, serve_port: int, seed: int, orgs_url: str, ca_path: Path
    ):
        self.dispatcher, self.fake_url, self.port = dispatcher, fake_url, serve_port
        self.orgs_url = orgs_url
        self.tls = ssl.create_default_context(cafile=str(ca_path))
        self.rng = random.Random(seed)
        #: (connection, job) -> [slot datetimes]
        self.slots: dict[tuple[str, str], list[datetime]] = {}
        self.enqueued = self.pending = 0
        self.deliveries: dict[str, int] = {}  # "<crm> <HTTP status>" -> count
        self.events_sent = 0
        self.late: list[float] = []  # how late the beat itself sent each event (s)
        self._event_id = int(time.time() * 1000)

    def run(self, events: list[Event], started: float, stop_at: float | None = None) -> None:
        for ev in events:
            due = started + ev.at
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            self.late.append(max(0.0, time.monotonic() - due))
            if ev.kind == "job":
                slot = datetime.now(UTC).replace(microsecond=0)
                self.slots.setdefault((ev.connection, ev.job), []).append(slot)
                if self.dispatcher.job(ev.connection, ev.job, slot):
                    self.enqueued += 1
                else:
                    self.pending += 1
            elif ev.org_id:
                self._outbound(ev)
            else:
                self._webhook(ev)

    def _edit(self, url: str, spec: dict, tls=None) -> list[str]:
        """A user changes records in a fake (its admin route): their ids."""
        req = urllib.request.Request(
            url + "/__fleet__/edit", data=json.dumps(spec).encode(), method="POST"
        )
        with urllib.request.urlopen(req, timeout=30, context=tls) as resp:
            return json.loads(resp.read())["ids"]

    def _webhook(self, ev: Event) -> None:
        count = self.rng.randint(1, 3)
        changes = {"dealname": f"Contract edited {self._event_id}"}
        spec = {"portal_id": ev.portal_id, "object": "deals", "count": count, "changes": changes}
        ids = self._edit(self.fake_url, spec)
        ts = str(int(time.time() * 1000))
        batch = []
        for oid in ids:
            self._event_id += 1
            batch.append(
                {
                    "eventId": self._event_id,
                    "subscriptionId": 250001,
                    "portalId": ev.portal_id,
                    "appId": 54321,
                    "occurredAt": int(ts),
                    "subscriptionType": "deal.propertyChange",
                    "attemptNumber": 0,
                    "objectId": int(oid),
                    "propertyName": "dealname",
                    "propertyValue": changes["dealname"],
                    "changeSource": "CRM_UI",
                }
            )
        payload = json.dumps(batch, separators=(",", ":")).encode()
        url = f"http://127.0.0.1:{self.port}{PATH}"
        headers = {
            "Content-Type": "application/json",
            "X-HubSpot-Signature-v3": hubspot_v3_signature(
                WEBHOOK_SECRET, "POST", url, payload, ts
            ),
            "X-HubSpot-Request-Timestamp": ts,
        }
        self._deliver("hubspot", PATH, payload, headers, len(batch))

    def _outbound(self, ev: Event) -> None:
        """An org's user changes 1-3 contracts; its outbound message (the Contract fields the
        workflow sends) reaches `renewals serve`, which routes it by OrganizationId."""
        spec = {
            "org_id": ev.org_id,
            "object": "Contract",
            "count": self.rng.randint(1, 3),
            "changes": {"Renewal_Uplift__c": self.rng.choice([3, 5, 7])},
        }
        ids = self._edit(self.orgs_url, spec, self.tls)
        notes = []
        for rid in ids:
            self._event_id += 1
            note = f"04l{self._event_id % 10**12:012d}AAA"
            notes.append(
                f"<Notification><Id>{note}</Id>"
                '<sObject xsi:type="sf:Contract" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">'
                f"<sf:Id>{rid}</sf:Id></sObject></Notification>"
            )
        payload = (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>'
            '<notifications xmlns="http://soap.sforce.com/2005/09/outbound">'
            f"<OrganizationId>{ev.org_id}</OrganizationId><ActionId>{SF_ACTION}</ActionId>"
            f"{''.join(notes)}</notifications></soapenv:Body></soapenv:Envelope>"
        ).encode()
        headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'}
        self._deliver("salesforce", SF_PATH, payload, headers, len(notes))

    def _deliver(self, crm: str, path: str, payload: bytes, headers: dict, events: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("POST", path, payload, headers)
            status = conn.getresponse().status
        except OSError:
            status = 0
        finally:
            conn.close()
        key = f"{crm} {status}"
        self.deliveries[key] = self.deliveries.get(key, 0) + 1
        self.events_sent += events

    def keys(self) -> set[tuple[str, str, datetime]]:
        return {(c, j, s) for (c, j), slots in self.slots.items() for s in slots}

    def scheduled(self) -> int:
        return sum(len(v) for v in self.slots.values())


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its reaped children (Linux /proc), in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = sum(int(x) for x in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the machine since boot (/proc/stat)."""
    parts = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = parts[3] + parts[4]
    hz = os.sysconf("SC_CLK_TCK")
    return (sum(parts) - idle) / hz, sum(parts) / hz


def slot_wall(slot: datetime) -> datetime:
    return slot.astimezone(UTC)


__all__ = ["Beat", "Event", "schedule", "timedelta"]
