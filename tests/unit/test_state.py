"""The state store: a database of an earlier version is migrated when it opens; a refused write
keeps one open dead letter, its latest refusal with what was sent."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from crm_renewals.connector.errors import UnusableDatabaseError
from crm_renewals.connector.state import SCHEMA_VERSION, StateStore


def letter(message: str, retriable: bool, payload: dict | None = None) -> dict:
    return {
        "stage": "write",
        "kind": "task",
        "record_id": "k1:at_risk:2026-11-23",
        "contract_id": "k1",
        "field": None,
        "value": None,
        "error_code": "UNABLE_TO_LOCK_ROW" if retriable else "FIELD_CUSTOM_VALIDATION_EXCEPTION",
        "message": message,
        "payload": payload,
        "retriable": retriable,
    }


def test_a_version_1_database_gains_the_refused_write_columns(tmp_path):
    url = f"sqlite:///{tmp_path / 'state.db'}"
    store = StateStore(url)
    with store.engine.begin() as conn:  # back to how version 1 stored dead letters
        conn.execute(text("ALTER TABLE dead_letters DROP COLUMN payload"))
        conn.execute(text("ALTER TABLE dead_letters DROP COLUMN retriable"))
        conn.execute(text("ALTER TABLE job_runs DROP COLUMN lease_until"))  # came in version 3
        conn.execute(text("ALTER TABLE runs DROP COLUMN mapping_hash"))  # and these in 4
        conn.execute(text("ALTER TABLE runs DROP COLUMN config_hash"))
        conn.execute(text("ALTER TABLE runs DROP COLUMN progress"))  # and this in 5
        conn.execute(text("ALTER TABLE dead_letters DROP COLUMN resolution"))  # and this in 6
        conn.execute(text("UPDATE schema_version SET version = 1"))
        conn.execute(
            text(
                "INSERT INTO dead_letters (stage, kind, record_id, message, attempts, created_at) "
                "VALUES ('write', 'task', 'old', 'refused', 1, '2026-11-01 00:00:00')"
            )
        )
    store.close()
    store = StateStore(url)
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT version FROM schema_version")).scalar() == SCHEMA_VERSION
    assert store.dead_letters.refused_writes()[("task", "old")].retriable is False
    store.dead_letters.add([letter("locked", True, {"fields": {"subject": "x"}})], run_id=1)
    assert store.dead_letters.refused_writes()[("task", "k1:at_risk:2026-11-23")].payload == {
        "fields": {"subject": "x"}
    }


def test_a_refused_write_keeps_one_open_letter_with_its_latest_refusal(tmp_path):
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    store.dead_letters.add([letter("locked", True, {"fields": {"a": 1}})], run_id=1)
    store.dead_letters.add([letter("a validation rule", False, {"fields": {"a": 2}})], run_id=2)
    (open_,) = store.dead_letters.list()
    assert (open_.message, open_.retriable, open_.attempts) == (
        "a validation rule",
        False,
        2,
    )
    assert open_.payload == {"fields": {"a": 2}}
    store.dead_letters.resolve("task", ["k1:at_risk:2026-11-23"])
    assert store.dead_letters.refused_writes() == {}


def test_a_database_of_a_newer_schema_version_is_refused_naming_both_versions(tmp_path):
    url = f"sqlite:///{tmp_path / 'state.db'}"
    StateStore(url).close()
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE schema_version SET version = :v"), {"v": SCHEMA_VERSION + 1})
    engine.dispose()
    with pytest.raises(UnusableDatabaseError, match=f"version {SCHEMA_VERSION + 1}, newer"):
        StateStore(url)


def test_a_unit_of_work_commits_its_ledger_rows_and_dead_letters_together_or_not_at_all(tmp_path):
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    row = {"kind": "task", "key": "k1:t", "contract_id": "k1", "crm_id": "T1", "fields": {"a": 1}}
    with pytest.raises(RuntimeError), store.begin() as uow:
        uow.ledger.record([row], run_id=1)
        uow.dead_letters.add([letter("locked", True)], run_id=1)
        raise RuntimeError("the process dies before the batch is recorded")
    assert store.ledger.load() == {} and store.dead_letters.list() == []
    with store.begin() as uow:
        uow.ledger.record([row], run_id=1)
        uow.dead_letters.add([letter("locked", True)], run_id=1)
    assert store.ledger.load() == {("task", "k1:t"): {"a": 1}}
    (open_,) = store.dead_letters.list()
    assert open_.as_dict()["message"] == "locked" and list(open_.as_dict())[:3] == [
        "id",
        "run_id",
        "stage",
    ]


def load_fixture(path, version: int) -> None:
    """A state database as release `version` wrote it (tests/fixtures/state/v<version>.sql)."""
    sql = Path(__file__).resolve().parents[1] / "fixtures" / "state" / f"v{version}.sql"
    with sqlite3.connect(path) as db:
        db.executescript(sql.read_text())


def test_a_version_3_database_gains_the_config_versions_and_keeps_its_runs(tmp_path):
    load_fixture(tmp_path / "state.db", 3)
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT version FROM schema_version")).scalar() == SCHEMA_VERSION
    (old,) = store.runs.list()
    assert (old.status, old.api_calls) == ("partial", 7)
    assert (old.mapping_hash, old.config_hash) == (None, None)
    assert store.versions.history("mapping") == []  # a run of release 3 named no version
    store.versions.keep("mapping", "ab" * 32, "version: 1\n", "mappings/sandbox.yaml")
    run_id = store.runs.start("full", "2026-11-23", "ab" * 32, None)
    (version,) = store.versions.history("mapping")
    assert (version.short, version.runs, version.path) == ("abababab", 1, "mappings/sandbox.yaml")
    assert store.runs.list(1)[0].id == run_id and store.runs.list(1)[0].mapping_hash == "ab" * 32


def test_a_version_is_stored_once_and_listed_by_its_last_use(tmp_path):
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    first, second = "a1" * 32, "a2" * 32
    for digest, content in ((first, "one\n"), (second, "two\n"), (first, "one\n")):
        store.versions.keep("mapping", digest, content, "m.yaml")
        store.runs.start("incremental", "2026-11-23", digest, None)
    history = store.versions.history("mapping")
    assert [(v.hash, v.runs) for v in history] == [(first, 2), (second, 1)]  # used last first
    assert history[0].first_used_at < history[1].first_used_at  # its first use is kept
    assert store.versions.content("mapping", first) == "one\n"
    assert store.versions.matching("mapping", "a") == [first, second]  # ambiguous
    assert store.versions.matching("mapping", "A1A1") == [first]
    assert store.versions.matching("mapping", "%") == [] and store.versions.history("config") == []


def test_a_version_3_database_gains_console_users_an_audit_log_and_run_progress(tmp_path):
    load_fixture(tmp_path / "state.db", 3)
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    (old,) = store.runs.list()
    assert old.progress is None
    assert store.users.count() == 0 and store.audit.list() == []
    run_id = store.runs.start("full", "2026-11-23")
    store.runs.report_progress(run_id, {"stage": "writing", "done": {"task": 3}})
    assert store.runs.get(run_id).progress == {"stage": "writing", "done": {"task": 3}}
    assert store.users.add("a@example.com", "admin", "hash")
    assert not store.users.add("a@example.com", "viewer", "hash")
    store.audit.record("a@example.com", "login", "127.0.0.1")
    assert [(e.actor, e.action) for e in store.audit.list()] == [("a@example.com", "login")]


def test_the_audit_log_pages_newest_first_and_filters_by_actor_and_action_prefix(tmp_path):
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    for actor, action in [
        ("a@example.com", "login"),
        ("cli:ops", "user.add"),
        ("a@example.com", "run.sync"),
        ("a@example.com", "login.failed"),
        ("b@example.com", "run_%x"),  # not a wildcard when filtering by "run_%"
        ("a@example.com", "run.dry_run"),
    ]:
        store.audit.record(actor, action, "target")
    newest = [e.action for e in store.audit.list(limit=2)]
    assert newest == ["run.dry_run", "run_%x"]
    assert [e.action for e in store.audit.list(limit=2, offset=2)] == ["login.failed", "run.sync"]
    mine = store.audit.list(actor="a@example.com", action="run.")
    assert [e.action for e in mine] == ["run.dry_run", "run.sync"]
    assert [e.action for e in store.audit.list(action="login")] == ["login.failed", "login"]
    assert [e.action for e in store.audit.list(action="run_%")] == ["run_%x"]
    assert store.audit.count() == 6 and store.audit.count("a@example.com", "run") == 2
    assert store.audit.actors() == ["a@example.com", "b@example.com", "cli:ops"]
    assert "user.add" in store.audit.actions()
    store.close()


def test_a_version_5_database_gains_how_a_dead_letter_was_discarded(tmp_path):
    url = f"sqlite:///{tmp_path / 'state.db'}"
    store = StateStore(url)
    store.dead_letters.add([letter("refused", False, {"fields": {"subject": "x"}})], run_id=1)
    with store.engine.begin() as conn:  # back to how version 5 stored dead letters
        conn.execute(text("ALTER TABLE dead_letters DROP COLUMN resolution"))
        conn.execute(text("UPDATE schema_version SET version = 5"))
    store.close()
    store = StateStore(url)
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT version FROM schema_version")).scalar() == SCHEMA_VERSION
    (old,) = store.dead_letters.list()
    assert old.resolution is None and not old.discarded
    assert store.dead_letters.discard([old.id], {"action": "discarded", "by": "a", "reason": "b"})
    (gone,) = store.dead_letters.list(include_resolved=True)
    assert gone.discarded and gone.resolved_at is not None and store.dead_letters.list() == []
    assert store.dead_letters.discarded_writes() == {
        ("task", "k1:at_risk:2026-11-23"): [{"fields": {"subject": "x"}}]
    }
