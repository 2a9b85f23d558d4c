"""Connections: which one a command is for, each one's settings and state, and the
`renewals connections` commands that manage them."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from crm_renewals.connector import bootstrap, connections
from crm_renewals.connector.connections import CONNECTED, DEFAULT, PENDING
from crm_renewals.connector.errors import ConfigError
from crm_renewals.connector.state import SCHEMA_VERSION, StateStore
from tests.conftest import cli_for, write_config

AS_OF = "2026-11-23"


@pytest.fixture
def app(tmp_path, monkeypatch):
    monkeypatch.delenv(connections.CONNECTION_ENV, raising=False)
    return write_config(tmp_path)


def add(app, name: str, crm: str = "sandbox") -> None:
    base = bootstrap.load_base(str(app))
    registry = bootstrap.open_registry(base)
    try:
        registry.connections.save(connections.new_row(name, crm, "env", CONNECTED, "test"))
    finally:
        registry.close()


def test_app_yaml_alone_is_the_default_connection_and_creates_no_database(app):
    cfg = bootstrap.load(str(app))
    assert cfg.connection == DEFAULT and cfg.connection_auth == "env"
    assert cfg.state_url == bootstrap.load_base(str(app)).state_url
    assert not (app.parent / "data" / "state.db").exists()  # choosing opened nothing


def test_a_connection_has_its_own_data_folder_and_state_database(app):
    add(app, "acme")
    cfg = bootstrap.load(str(app), "acme")
    assert cfg.connection == "acme"
    assert cfg.data_path == app.parent / "data" / "connections" / "acme"
    assert cfg.state_url.endswith("/data/connections/acme/state.db")
    assert cfg.sandbox_path == cfg.data_path / "sandbox.db"
    assert cfg.connections_url == bootstrap.load_base(str(app)).state_url


def test_which_connection_a_command_is_for(app, monkeypatch):
    add(app, "acme")
    assert bootstrap.load(str(app)).connection == DEFAULT  # several: `default`
    monkeypatch.setenv(connections.CONNECTION_ENV, "acme")
    assert bootstrap.load(str(app)).connection == "acme"
    assert bootstrap.load(str(app), DEFAULT).connection == DEFAULT  # the flag wins
    with pytest.raises(ConfigError, match="no connection named 'nope'.*default, acme"):
        bootstrap.load(str(app), "nope")
    with pytest.raises(ConfigError, match="not a connection name"):
        bootstrap.load(str(app), "Bad Name")


def test_without_default_the_only_connection_is_chosen_and_two_must_be_named(app):
    cli = cli_for(app)
    add(app, "acme")
    assert cli("connections", "remove", DEFAULT, "--yes").exit_code == 0
    assert bootstrap.load(str(app)).connection == "acme"
    add(app, "beta")
    with pytest.raises(ConfigError, match="2 connections: name one with --connection"):
        bootstrap.load(str(app))


def test_a_connection_file_lays_its_sections_over_app_yaml(app):
    add(app, "acme")
    folder = app.parent / "connections"
    folder.mkdir()
    (folder / "acme.yaml").write_text("renewals:\n  lead_time_days: 150\n")
    cfg = bootstrap.load(str(app), "acme")
    assert cfg.renewals.lead_time_days == 150
    assert cfg.renewals.notice_days == bootstrap.load_base(str(app)).renewals.notice_days
    assert bootstrap.load(str(app)).renewals.lead_time_days == 120  # default's untouched


def test_a_connection_file_is_checked_and_its_problems_point_into_it(app):
    add(app, "acme")
    folder = app.parent / "connections"
    folder.mkdir()
    own = folder / "acme.yaml"
    own.write_text("renewals:\n  lead_time_days: -3\nwebhooks:\n  max_body_bytes: 1\n")
    with pytest.raises(ConfigError) as caught:
        bootstrap.load(str(app), "acme")
    assert [p.file for p in caught.value.problems] == [str(own)]
    assert "cannot set 'webhooks'" in caught.value.problems[0].message
    own.write_text("renewals:\n  lead_time_days: -3\n")
    with pytest.raises(ConfigError) as caught:
        bootstrap.load(str(app), "acme")
    problem = caught.value.problems[0]
    assert (problem.file, problem.line, problem.path) == (str(own), 2, "renewals.lead_time_days")


def test_a_connection_of_another_crm_takes_that_crms_mapping(app):
    add(app, "hub", crm="hubspot")
    cfg = bootstrap.load(str(app), "hub")
    assert cfg.crm == "hubspot" and cfg.mapping_path == app.parent / "mappings" / "hubspot.yaml"


def test_state_on_postgresql_is_a_schema_per_connection(app):
    base = bootstrap.load_base(str(app))
    pg = base.model_copy(
        update={"state": base.state.model_copy(update={"url": "postgresql://u:pw@db/renewals"})}
    )
    url, schema = connections.state_url(pg, "acme-eu")
    assert schema == "renewals_acme_eu"
    assert url == "postgresql://u:pw@db/renewals?options=-csearch_path%3Drenewals_acme_eu"
    own = "postgresql://u@db/x?options=-csearch_path%3Dtenant1&application_name=a"
    pg = base.model_copy(update={"state": base.state.model_copy(update={"url": own})})
    url, schema = connections.state_url(pg, "acme")
    assert schema == "tenant1_acme" and "search_path%3Dtenant1_acme" in url
    assert "application_name=a" in url


def test_two_connections_sync_side_by_side_and_keep_their_state_apart(app):
    cli = cli_for(app)
    assert cli("connections", "add", "beta", "--crm", "sandbox").exit_code == 0
    assert cli("sandbox", "seed", "--as-of", AS_OF).exit_code == 0
    assert cli("--connection", "beta", "sandbox", "seed", "--as-of", AS_OF).exit_code == 0
    first = json.loads(cli("sync", "--as-of", AS_OF, "--json").output)
    assert first["created"] > 0
    beta_runs = json.loads(cli("runs", "--connection", "beta", "--json").output)
    assert beta_runs == []  # the default's run is not beta's
    second = json.loads(cli("sync", "--connection", "beta", "--as-of", AS_OF, "--json").output)
    assert second["created"] > 0  # beta's own book, planned from its own (empty) ledger
    default_runs = json.loads(cli("runs", "--json").output)
    beta_runs = json.loads(cli("--connection", "beta", "runs", "--json").output)
    assert len(default_runs) == len(beta_runs) == 1
    assert default_runs[0]["id"] == beta_runs[0]["id"] == 1  # two databases, each its first


def test_connections_commands_list_show_add_remove(app):
    cli = cli_for(app)
    listed = json.loads(cli("connections", "list", "--json").output)["connections"]
    assert [(c["name"], c["crm"], c["auth"], c["status"]) for c in listed] == [
        (DEFAULT, "sandbox", "env", CONNECTED)
    ]
    added = json.loads(cli("connections", "add", "acme", "--crm", "hubspot", "--json").output)
    assert (added["status"], added["auth"]) == (PENDING, "oauth")
    assert added["install_path"] == "/oauth/hubspot/install?connection=acme"
    again = cli("connections", "add", "acme", "--crm", "hubspot")
    assert again.exit_code == 2 and "exists already" in again.output
    shown = json.loads(cli("connections", "show", "acme", "--json").output)
    assert shown["state"].endswith("connections/acme/state.db") and shown["last_run"] is None
    assert "tokens" not in shown
    assert cli("connections", "remove", "acme", "--json").exit_code == 0
    names = [
        c["name"] for c in json.loads(cli("connections", "list", "--json").output)["connections"]
    ]
    assert names == [DEFAULT]
    refused = cli("connections", "add", DEFAULT, "--crm", "sandbox")
    assert refused.exit_code == 2 and "app.yaml's own connection" in refused.output


def test_removing_default_hides_it_and_adding_it_back_restores_app_yaml(app):
    cli = cli_for(app)
    assert cli("connections", "remove", DEFAULT, "--yes").exit_code == 0
    shown = json.loads(cli("connections", "list", "--json").output)["connections"]
    assert shown == []
    refused = cli("runs")
    assert refused.exit_code == 2 and "has no connections: add one" in refused.output
    assert cli("connections", "add", DEFAULT, "--crm", "sandbox").exit_code == 0
    assert cli("runs").exit_code == 0
    shown = json.loads(cli("connections", "show", DEFAULT, "--json").output)
    assert (shown["auth"], shown["status"]) == ("env", CONNECTED)  # app.yaml's, as before


def test_every_command_takes_connection(app):
    from crm_renewals.connector.cli import main

    def leaves(group, path=()):
        for name, command in group.commands.items():
            if hasattr(command, "commands"):
                yield from leaves(command, (*path, name))
            else:
                yield (*path, name), command

    missing = [
        " ".join(path)
        for path, command in leaves(main)
        if not any(p.name == "connection" for p in command.params)
    ]
    assert missing == []


def test_a_version_7_database_migrates_and_keeps_its_state(tmp_path):
    url = f"sqlite:///{tmp_path / 'state.db'}"
    store = StateStore(url)
    with store.engine.begin() as conn:
        conn.execute(text("DROP TABLE connections"))
        conn.execute(text("DROP TABLE oauth_flows"))
        conn.execute(text("UPDATE schema_version SET version = 7"))
    store.close()
    store = StateStore(url)
    try:
        with store.engine.connect() as conn:
            assert conn.execute(text("SELECT version FROM schema_version")).scalar() == (
                SCHEMA_VERSION
            )
        assert store.connections.list() == []
    finally:
        store.close()


def test_the_registry_lock_serialises_writers(app):
    add(app, "acme")
    base = bootstrap.load_base(str(app))
    registry = bootstrap.open_registry(base)
    try:
        with registry.connections.locked("acme") as (row, conn):
            assert row.name == "acme"
            registry.connections.store_locked(conn, row.replace(scopes="a b"))
        assert registry.connections.get("acme").scopes == "a b"
        with registry.connections.locked("nobody") as (row, _conn):
            assert row is None
    finally:
        registry.close()


def test_starting_the_sandbox_over_keeps_the_deployments_connections(app):
    cli = cli_for(app)
    assert cli("connections", "add", "acme", "--crm", "hubspot").exit_code == 0
    assert cli("sandbox", "seed", "--as-of", AS_OF).exit_code == 0
    assert cli("sync", "--as-of", AS_OF, "--json").exit_code == 1
    assert cli("sandbox", "seed", "--reset", "--as-of", AS_OF).exit_code == 0
    assert json.loads(cli("runs", "--json").output) == []  # the default's state started over
    names = [
        c["name"] for c in json.loads(cli("connections", "list", "--json").output)["connections"]
    ]
    assert names == [DEFAULT, "acme"]
