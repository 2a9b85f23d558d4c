"""A deployment on the Celery engine: app.yaml with `workers.engine: celery` (the machine's
Redis as broker, a queue of the test's own, a short visibility timeout), its state on
PostgreSQL (a schema of the test's own), the sandbox CRM seeded for `default` and for a
second connection, and `renewals worker --engine celery` processes. Skipped, saying why,
where Redis or PostgreSQL does not answer."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from crm_renewals.connector import bootstrap
from crm_renewals.connector.config import STATE_URL_ENV, AppConfig, load_config
from crm_renewals.connector.deployment import Deployment
from crm_renewals.connector.services import connections as manage
from crm_renewals.connector.state import StateStore
from tests.conftest import cli_for, write_config
from tests.e2e.test_crash import renewals_cli

REDIS = "redis://127.0.0.1:6379"
#: the broker's db: the queues are the test's own (random names), never flushed
BROKER_DB = 13
#: a small seeded book each: runs take a fraction of a second
SMALL = ("--accounts", "10", "--contracts", "20")


def redis_or_skip():
    import redis

    client = redis.Redis.from_url(f"{REDIS}/{BROKER_DB}", socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.skip(f"no Redis at {REDIS}: {exc}")
    return client


def wait_for(predicate: Callable[[], object], timeout: float = 60.0, procs=()) -> None:
    """Until `predicate()` holds (a bound against a hang, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        for proc in procs:
            if proc.poll() is not None:
                raise AssertionError(f"process ended ({proc.returncode}): {_tail(proc)}")
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def _tail(proc) -> str:
    log = getattr(proc, "log_path", None)
    return log.read_text()[-3000:] if log and log.exists() else ""


@dataclass
class Fleet:
    """The test's deployment and the worker processes it started."""

    folder: Path
    path: Path
    queue: str
    redis: object
    env: dict[str, str]
    procs: list[subprocess.Popen] = field(default_factory=list)

    @property
    def base(self) -> AppConfig:
        return load_config(self.path)

    def worker(self, concurrency: int = 2, **env: str) -> subprocess.Popen:
        """`renewals worker --engine celery --concurrency N`, its output in a log file."""
        n = len(self.procs)
        log_path = self.folder / f"worker-{n}.log"
        argv = [*renewals_cli(), "--config", str(self.path), "-v", "worker", "--engine", "celery"]
        with open(log_path, "wb") as out:
            proc = subprocess.Popen(
                [*argv, "--concurrency", str(concurrency)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**self.env, **env},
            )
        proc.log_path = log_path  # type: ignore[attr-defined]
        self.procs.append(proc)
        return proc

    def log(self) -> str:
        return "".join(p.log_path.read_text() for p in self.procs)  # type: ignore[attr-defined]

    def stores(self) -> Iterator[tuple[str, StateStore]]:
        dep = Deployment(self.base)
        try:
            for conn in dep.connections():
                yield conn.name, dep.store(conn)
        finally:
            dep.close()

    def store(self, name: str = "default") -> StateStore:
        dep = Deployment(self.base)
        conn = dep.find(name)
        cfg = dep.config(conn)
        dep.close()
        return bootstrap.open_store(cfg)

    def stop(self, how: signal.Signals = signal.SIGTERM) -> None:
        """SIGTERM: a warm shutdown (tasks in hand finish); SIGQUIT: at once."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(how)
        for proc in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def forget_keys(self) -> None:
        """The test's own keys (its queues' and marks'), never a flush of the shared db."""
        for key in self.redis.scan_iter(f"*{self.queue}*", count=1000):
            self.redis.delete(key)


def make_fleet(tmp_path: Path, monkeypatch, state_url: str | None, **workers) -> Fleet:
    client = redis_or_skip()
    queue = f"t-{secrets.token_hex(5)}"
    settings = {
        "engine": "celery",
        "broker_url": f"{REDIS}/{BROKER_DB}",
        "queue": queue,
        "visibility_timeout_seconds": 10,
        "busy_retry_seconds": 0.2,
        **workers,
    }
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("RENEWALS_BROKER_URL", None)
    env.pop("RENEWALS_REDIS_URL", None)
    if state_url:
        monkeypatch.setenv(STATE_URL_ENV, state_url)
        env[STATE_URL_ENV] = state_url
    path = write_config(tmp_path, workers=settings)
    cli = cli_for(path)
    assert cli("sandbox", "seed", *SMALL).exit_code == 0
    base = load_config(path)
    registry = bootstrap.open_store(base)
    try:
        manage.add(base, registry, "second", "sandbox", "test")
    finally:
        registry.close()
    assert cli("--connection", "second", "sandbox", "seed", *SMALL).exit_code == 0
    return Fleet(tmp_path, path, queue, client, env)


@pytest.fixture
def pg_fleet_url(postgres_url: str) -> Iterator[str]:
    """The test's PostgreSQL state URL; afterwards the schemas of its connections (named
    `<the test's schema>_<connection>`) are dropped too."""
    import psycopg

    yield postgres_url
    schema = postgres_url.split("search_path%3D", 1)[1].split("&", 1)[0]
    with psycopg.connect(postgres_url.split("?", 1)[0], autocommit=True) as conn:
        names = conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE %s", (f"{schema}\\_%",)
        ).fetchall()
        for (name,) in names:
            conn.execute(f"DROP SCHEMA {name} CASCADE")


def pg_sessions(url: str) -> int:
    """Sessions open now under the test's application name (every connection's store)."""
    import psycopg

    app = url.split("application_name=", 1)[1].split("&", 1)[0]
    with psycopg.connect(url.split("?", 1)[0], autocommit=True) as conn:
        return conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (app,)
        ).fetchone()[0]


@pytest.fixture
def fleet(tmp_path, monkeypatch, pg_fleet_url) -> Iterator[Fleet]:
    """Two seeded sandbox connections, state on PostgreSQL, Redis broker."""
    f = make_fleet(tmp_path, monkeypatch, pg_fleet_url)
    yield f
    f.stop()
    f.forget_keys()


# ---- the shared rate limits' fixtures (branch limits)
REDIS_URL = os.environ.get("RENEWALS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def redis_url() -> str:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        pytest.skip(f"no Redis at {REDIS_URL} ({type(exc).__name__}): shared limits need one")
    return REDIS_URL


@pytest.fixture
def queue(redis_url):
    """A workers.queue of its own: the shared keys live under renewals:<queue>:limits."""
    import redis

    name = f"test-{uuid.uuid4().hex[:12]}"
    yield name
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"renewals:{name}:*", count=1000))
    if keys:
        client.delete(*keys)


@pytest.fixture
def shared(redis_url, queue):
    from crm_renewals.connector.adapters.shared_limits import SharedLimits

    return SharedLimits.for_workers(redis_url, queue)
