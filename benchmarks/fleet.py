"""Fleet: 1,000 connections (HubSpot portals and, a third of them, Salesforce orgs) on a Celery
worker pool for one simulated day.

The CRM side is one loopback server of fake portals (tests/fakes/fleet.py), each enforcing its
own limits (100 requests per rolling 10 s, search 5 a second), and one loopback HTTPS server of
fake orgs (tests/fakes/fleet_salesforce.py), each enforcing its daily API allocation; all count
what they see; books of 100 to 20,000 contracts, skewed (benchmarks/fleet_fake.py). The
deployment: a registry and a state schema per connection in a PostgreSQL database of the run's
own; worker processes `renewals worker --engine celery`; `renewals serve` in celery mode
receiving signed webhook deliveries; the benchmark is the beat (benchmarks/fleet_day.py),
enqueueing each connection's schedule slots through Dispatcher.job at their wall time. Mid-day,
the worker holding the biggest book's run lock is killed (-9): its task must come back
(visibility timeout) and converge. Reported against targets: runs completed, 429s (and
REQUEST_LIMIT_EXCEEDED), the highest share of a tenant's limit used (measured by the fakes: a
portal's peak 10 s window, an org's day of API use), p95 delay from slot to run start, the
kill's outcome."""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import zlib
from datetime import date
from pathlib import Path

from benchmarks.common import Verdict, flush, heading, row
from benchmarks.fleet_day import (
    Beat,
    cpu_seconds,
    machine_busy,
    schedule,
    start_serve,
    start_worker,
    stop,
    wait_serving,
)
from benchmarks.fleet_fake import LIMIT, describe, plan_fleet, spec_of
from benchmarks.fleet_report import report, slot_key
from benchmarks.fleet_state import FleetState, app_yaml, connection_files

ROOT = Path(__file__).resolve().parent.parent
VISIBILITY_S = 30
#: the drain gives up once no run started or finished for this long, none running
QUIET_S = 60
#: CPU seconds a run costs this machine (workers, the fakes, PostgreSQL, Redis: all share its
#: cores), a fixed part and a part per contract: measured on the 1,000-connection day (2,703
#: busy CPU s for 3,000 runs and 300 webhook batches over 316,326 contracts; a run's fixed part
#: profiled at ~0.3 CPU s in the worker)
RUN_CPU_S, CONTRACT_CPU_S = 0.35, 0.0016
#: the share of the machine's cores the day's runs should take (loaded, not saturated)
LOAD = 0.6


def day_for(tenants, incremental_hours: float, webhooks: int) -> float:
    """Wall seconds a day needs for its runs to take LOAD of the cores (at least 120 s)."""
    runs = 2 + int((24 - 2) // incremental_hours)
    work = sum(runs * (RUN_CPU_S + CONTRACT_CPU_S * t.contracts) for t in tenants)
    work += webhooks * RUN_CPU_S
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(120.0, work / (cores * LOAD))


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(
    connections: int = 1000,
    day_seconds: float | None = None,
    workers: int = 4,
    threads: int = 2,
    *,
    max_book: int | None = None,
    incremental_hours: float = 12.0,
    webhooks: int = 300,
    redis_db: int = 11,
    seed: int = 7,
    kill: bool = True,
) -> list[Verdict]:
    tenants = plan_fleet(connections, seed, max_book)
    sized = day_seconds is None
    day_seconds = day_for(tenants, incremental_hours, webhooks) if sized else day_seconds
    scale = 86_400 / day_seconds
    heading(
        f"fleet: {connections:,} connections, {workers} workers x {threads} threads, a day in "
        f"{day_seconds:.0f} s (x{scale:.0f})"
    )
    if sized:
        print(
            f"  day sized for ~{LOAD:.0%} of the cores: {RUN_CPU_S} CPU s a run + "
            f"{CONTRACT_CPU_S * 1000:g} ms a contract (measured), --fleet-day-seconds overrides"
        )
    for line in describe(tenants):
        print(f"  {line}")
    flush()
    with tempfile.TemporaryDirectory(prefix="renewals-fleet-") as tmp:
        folder = Path(tmp)
        state = FleetState()
        fake_port, sf_port = _port(), _port()
        ca_path = folder / "fleet-ca.pem"  # the orgs' certificate authority, made by the fake
        spec = spec_of(tenants, date.today(), seed, fake_port, sf_port, ca_path)
        spec_path = folder / "fleet.json"
        spec_path.write_text(json.dumps(spec))
        t0 = time.perf_counter()
        fake = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.fleet_fake", str(spec_path)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        procs: list[subprocess.Popen] = []
        try:
            fake_url = f"http://127.0.0.1:{fake_port}"
            sf_url = f"https://127.0.0.1:{sf_port}"
            queue = f"fleet-{state.prefix}"
            config = app_yaml(folder, fake_url, queue, VISIBILITY_S, LIMIT)
            connection_files(folder, tenants)
            broker = f"redis://127.0.0.1:6379/{redis_db}"
            env = {
                **os.environ,
                "RENEWALS_CONFIG": str(config),
                "RENEWALS_STATE_URL": state.url,
                "RENEWALS_BROKER_URL": broker,
                "RENEWALS_REDIS_URL": broker,
                "HUBSPOT_APP_CLIENT_ID": "fleet-app",
                "HUBSPOT_APP_CLIENT_SECRET": "fleet-app-secret",
                "SALESFORCE_APP_CONSUMER_KEY": "fleet-connected-app",
                "SALESFORCE_APP_CONSUMER_SECRET": "fleet-connected-app-secret",
                # simple-salesforce's requests session trusts the orgs' certificate through it
                "REQUESTS_CA_BUNDLE": str(ca_path),
                "PYTHONPATH": str(ROOT),
            }
            base = _base(config, env)
            state.create(base, tenants, env, sf_url)
            schemas_s = time.perf_counter() - t0
            info = json.loads(fake.stdout.readline())
            row(
                "set-up: state (PostgreSQL)",
                f"{schemas_s:.0f} s: registry + {len(tenants):,} schemas",
            )
            row(
                "set-up: fake portals and orgs seeded",
                f"{info['seconds']:.0f} s: {info['objects']:,} objects "
                f"(HubSpot {info['url']}, Salesforce {info['salesforce_url']})",
            )
            row("set-up: wall", f"{time.perf_counter() - t0:.0f} s (not part of the day)")
            flush()
            logs = Path(tempfile.mkdtemp(prefix="renewals-fleet-logs-"))
            row("process logs", str(logs))
            pool = [start_worker(env, threads, logs / f"worker{i}.log", i) for i in range(workers)]
            procs += pool
            serve_port = _port()
            if webhooks:  # its start checks every connection (builds each one's adapter)
                serve = start_serve(env, serve_port, logs / "serve.log")
                procs.append(serve)
                ready = wait_serving(serve_port, serve, tenants[0].name, timeout=1800)
                row("renewals serve answering after", f"{ready:.0f} s")
            from crm_renewals.jobs.dispatch import Dispatcher

            dispatcher = Dispatcher(base)
            beat = Beat(dispatcher, fake_url, serve_port, seed, sf_url, ca_path)
            events = schedule(tenants, day_seconds, incremental_hours, webhooks, seed)
            huge = max(tenants, key=lambda t: t.contracts)
            # mid-run: 5 s in, or half the run's estimated cost for a book smaller than that
            after = min(5.0, (RUN_CPU_S + CONTRACT_CPU_S * huge.contracts) / 2)
            killer = Killer(state, huge.name, pool, env, threads, logs, after)
            cpu0 = {p.pid: cpu_seconds(p.pid) for p in [*procs, fake]}
            busy0 = machine_busy()
            started = time.monotonic()
            if kill:
                killer.start()
            beat.run(events, started)
            day_wall = time.monotonic() - started
            drained = _drain(state, [t.name for t in tenants], beat, deadline=900)
            busy1 = machine_busy()
            watched = [*procs, *killer.spawned, fake]
            cpu = {p.pid: cpu_seconds(p.pid) - cpu0.get(p.pid, 0.0) for p in watched}
            killer.stop()
            hub, orgs = _fake_stats(fake_url), _fake_stats(sf_url, ca_path)
            stats = {
                "portals": hub["portals"],
                "orgs": orgs["orgs"],
                "unrouted": hub["unrouted"] + orgs["unrouted"],
            }
            runs = state.job_runs([t.name for t in tenants])
            inbox = state.inbox([t.name for t in tenants])
            dispatcher.close()
            return report(
                tenants=tenants,
                beat=beat,
                runs=runs,
                inbox=inbox,
                stats=stats,
                killer=killer if kill else None,
                day_s=day_seconds,
                day_wall=day_wall,
                drained=drained,
                workers=workers,
                threads=threads,
                cpu=(sum(cpu.values()), cpu.get(fake.pid, 0.0)),
                machine=(busy1[0] - busy0[0], busy1[1] - busy0[1]),
                incremental_hours=incremental_hours,
            )
        finally:
            for p in procs + getattr(locals().get("killer"), "spawned", []):
                stop(p)
            fake.stdin.close()
            fake.wait(timeout=60)
            state.drop()
            _forget_keys(f"redis://127.0.0.1:6379/{redis_db}", f"fleet-{state.prefix}")


def _base(config: Path, env: dict):
    """The fleet's AppConfig as the processes read it (its environment applied here too)."""
    for key in ("RENEWALS_STATE_URL", "RENEWALS_BROKER_URL", "RENEWALS_REDIS_URL"):
        os.environ[key] = env[key]
    from crm_renewals.connector.config import load_config

    return load_config(config)


def _forget_keys(url: str, queue: str) -> None:
    """The run's keys in the broker's Redis (queues, bindings, marks, shared limits)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"*{queue}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def _fake_stats(url: str, ca_path: Path | None = None) -> dict:
    """A fleet fake's counters (the orgs' over HTTPS, trusting their CA)."""
    tls = ssl.create_default_context(cafile=str(ca_path)) if ca_path else None
    with urllib.request.urlopen(url + "/__fleet__/stats", timeout=120, context=tls) as resp:
        return json.loads(resp.read())


def _drain(state: FleetState, names: list[str], beat: Beat, deadline: float) -> float:
    """Wait until every scheduled slot has a finished run, or nothing has run or finished for
    QUIET_S (a slot lost: the report says which), or `deadline` s: seconds waited."""
    wanted = beat.keys()
    t0 = last_change = time.monotonic()
    seen = None
    while time.monotonic() - t0 < deadline:
        runs = state.job_runs(names)
        finished = {slot_key(r) for r in runs if r[4] is not None}
        if wanted <= finished:
            break
        now = (len(finished), sum(1 for r in runs if r[4] is None))
        if now != seen:
            seen, last_change = now, time.monotonic()
        elif now[1] == 0 and time.monotonic() - last_change > QUIET_S:
            break
        time.sleep(2)
    return time.monotonic() - t0


class Killer(threading.Thread):
    """Once the biggest book's run has held its run lock for a while, kill -9 the worker
    process whose session holds it (PostgreSQL: pg_locks, by the workers' application names),
    then start a replacement (a supervisor's restart)."""

    def __init__(
        self,
        state: FleetState,
        connection: str,
        pool,
        env,
        threads: int,
        logs: Path,
        after_s: float = 5.0,
    ):
        super().__init__(daemon=True)
        self.after_s = after_s
        self.state, self.connection, self.pool = state, connection, pool
        self.env, self.threads, self.logs = env, threads, logs
        self.schema = f"{state.prefix}_{connection.replace('-', '_')}"
        self.key = zlib.crc32(f"crm-renewals run lock {self.schema}".encode())
        self.killed_at: float | None = None
        self.killed_worker: int | None = None
        self.spawned: list[subprocess.Popen] = []
        self.slot: tuple | None = None  # (job, scheduled_at) running when killed
        self._stop = threading.Event()

    def holder(self) -> int | None:
        from sqlalchemy import text

        with self.state.engine.connect() as conn:
            name = conn.execute(
                text(
                    "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a "
                    "ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.objid = :k "
                    "AND l.granted"
                ),
                {"k": self.key},
            ).scalar()
        if name and name.startswith("fleet-w"):
            return int(name.removeprefix("fleet-w"))
        return None

    def running(self) -> tuple | None:
        from sqlalchemy import text

        with self.state.engine.connect() as conn:
            found = conn.execute(
                text(
                    f'SELECT job, scheduled_at FROM "{self.schema}".job_runs '
                    "WHERE status = 'running' ORDER BY started_at DESC LIMIT 1"
                )
            ).first()
        return None if found is None else tuple(found)

    def run(self) -> None:
        held_since = None
        while not self._stop.wait(min(0.5, self.after_s / 3)):
            index = self.holder()
            if index is None:
                held_since = None
                continue
            held_since = held_since or time.monotonic()
            if time.monotonic() - held_since >= self.after_s:  # mid-run, not at its start
                self.slot = self.running()
                os.kill(self.pool[index].pid, signal.SIGKILL)
                self.killed_at, self.killed_worker = time.time(), index
                log = self.logs / f"worker{index}-replacement.log"
                self.spawned.append(start_worker(self.env, self.threads, log, index))
                return

    def stop(self) -> None:
        self._stop.set()
