"""The state store on PostgreSQL: created at this version or migrated from an earlier one (also
by several hosts starting at once), units of work, and the run lock: one holder across engines
and processes, let go by the server when its holder is killed."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest
from sqlalchemy import text

from crm_renewals.connector.errors import UnusableDatabaseError
from crm_renewals.connector.state import SCHEMA_VERSION, StateStore
from crm_renewals.connector.state import store as store_module
from crm_renewals.connector.state.runlock import RunLockBusy, run_lock
from tests.postgres.at_once import at_once
from tests.unit.test_state import letter


def version(store: StateStore) -> int:
    with store.engine.connect() as conn:
        return conn.execute(text("SELECT version FROM schema_version")).scalar()


def test_a_new_schema_is_created_at_this_version_through_psycopg_3(pg_store):
    assert pg_store.engine.dialect.driver == "psycopg"  # postgresql:// names no driver
    assert version(pg_store) == SCHEMA_VERSION


def test_opening_a_database_again_reads_its_version_only(postgres_url, pg_store):
    from sqlalchemy import event

    statements = []
    real_open_engine = store_module.open_engine

    def counted(url, name):
        engine = real_open_engine(url, name)
        event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
        return engine

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(store_module, "open_engine", counted)
        StateStore(postgres_url).close()
    reads = [s for s in statements if not s.startswith(("SAVEPOINT", "RELEASE", "select pg_"))]
    assert reads == ["SELECT max(schema_version.version) AS max_1 \nFROM schema_version"], reads


def test_a_version_1_database_gains_every_later_column_and_keeps_its_rows(postgres_url, pg_store):
    with pg_store.engine.begin() as conn:  # back to how version 1 stored its tables
        for table, column in [
            ("dead_letters", "payload"),
            ("dead_letters", "retriable"),
            ("job_runs", "lease_until"),  # came in version 3
            ("runs", "mapping_hash"),  # and these in 4
            ("runs", "config_hash"),
            ("runs", "progress"),  # and this in 5
            ("dead_letters", "resolution"),  # and this in 6
        ]:
            conn.execute(text(f"ALTER TABLE {table} DROP COLUMN {column}"))
        for table in ("config_versions", "audit_log", "login_failures", "users"):
            conn.execute(text(f"DROP TABLE {table}"))
        conn.execute(text("UPDATE schema_version SET version = 1"))
        conn.execute(
            text(
                "INSERT INTO dead_letters (stage, kind, record_id, message, attempts, created_at) "
                "VALUES ('write', 'task', 'old', 'refused', 1, '2026-11-01 00:00:00+00')"
            )
        )
    pg_store.close()
    store = StateStore(postgres_url)
    try:
        assert version(store) == SCHEMA_VERSION
        assert store.dead_letters.refused_writes()[("task", "old")].retriable is False
        store.dead_letters.add([letter("locked", True, {"fields": {"subject": "x"}})], run_id=1)
        refused = store.dead_letters.refused_writes()[("task", "k1:at_risk:2026-11-23")]
        assert refused.payload == {"fields": {"subject": "x"}}
        run_id = store.runs.start("full", "2026-11-23", "ab" * 32, None)
        store.runs.report_progress(run_id, {"stage": "writing"})
        assert store.runs.get(run_id).progress == {"stage": "writing"}
        assert store.users.add("a@example.com", "admin", "hash") and store.audit.list() == []
    finally:
        store.close()


def test_a_database_of_a_newer_schema_version_is_refused(postgres_url, pg_store):
    with pg_store.engine.begin() as conn:
        conn.execute(text("UPDATE schema_version SET version = :v"), {"v": SCHEMA_VERSION + 1})
    with pytest.raises(UnusableDatabaseError, match=f"schema version {SCHEMA_VERSION + 1}"):
        StateStore(postgres_url)


def test_hosts_starting_at_once_on_an_empty_schema_create_it_once(postgres_url):
    opened = at_once(lambda _: StateStore(postgres_url), 4)
    assert all(isinstance(s, StateStore) for s in opened), opened
    with opened[0].engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM schema_version")).scalar() == 1
    for s in opened:
        s.close()


def test_a_unit_of_work_commits_together_or_not_at_all(pg_store):
    with pytest.raises(RuntimeError), pg_store.begin() as uow:
        uow.dead_letters.add([letter("refused", False)], run_id=1)
        uow.runs.start("full", "2026-11-23")
        raise RuntimeError("crash before the commit")
    assert pg_store.dead_letters.list() == [] and pg_store.runs.list() == []
    with pg_store.begin() as uow:
        uow.dead_letters.add([letter("refused", False)], run_id=1)
        uow.runs.start("full", "2026-11-23")
    assert len(pg_store.dead_letters.list()) == 1 and len(pg_store.runs.list()) == 1


def test_filters_and_prefixes_treat_wildcards_as_text(pg_store):
    pg_store.audit.record("b@example.com", "run_%x", "target")
    pg_store.audit.record("a@example.com", "run.sync", "target")
    assert [e.action for e in pg_store.audit.list(action="run_%")] == ["run_%x"]
    pg_store.versions.keep("mapping", "a1" * 32, "version: 1\n", "mappings/sandbox.yaml")
    assert pg_store.versions.matching("mapping", "A1A1") == ["a1" * 32]
    assert pg_store.versions.matching("mapping", "%") == []


def test_the_run_lock_has_one_holder_across_engines(postgres_url, pg_store):
    other = StateStore(postgres_url)
    try:
        with (
            run_lock(pg_store),
            pytest.raises(RunLockBusy, match="advisory lock"),
            run_lock(other, wait=0.1),
        ):
            pass
        with run_lock(other):
            pass
    finally:
        other.close()


HOLDER = """
import sys, time
from crm_renewals.connector.state import StateStore
from crm_renewals.connector.state.runlock import run_lock
with run_lock(StateStore(sys.argv[1])):
    print("held", flush=True)
    time.sleep(600)
"""


def test_the_run_lock_of_a_killed_process_is_let_go_by_the_server(postgres_url, pg_store):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, postgres_url], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunLockBusy), run_lock(pg_store):
            pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with run_lock(pg_store, wait=30):  # the server notices the closed session
        pass
