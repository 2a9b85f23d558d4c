"""Connections on PostgreSQL: each connection's state in a schema of its own, next to the
deployment's, created when the connection is added."""

from __future__ import annotations

import json

import pytest

from tests.conftest import cli_for, write_config

AS_OF = "2026-11-23"


@pytest.fixture
def beta_schema(on_postgres):
    """The schema of connection `beta` beside the test's own; dropped afterwards."""
    import psycopg

    with psycopg.connect(on_postgres) as conn:
        own = conn.execute("SELECT current_schema()").fetchone()[0]
    yield f"{own}_beta"
    with psycopg.connect(on_postgres, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{own}_beta" CASCADE')


def test_a_connection_keeps_its_state_in_a_schema_of_its_own(tmp_path, on_postgres, beta_schema):
    import psycopg

    cli = cli_for(write_config(tmp_path))
    assert cli("connections", "add", "beta", "--crm", "sandbox").exit_code == 0
    shown = json.loads(cli("connections", "show", "beta", "--json").output)
    assert f"search_path={beta_schema}" in shown["state"].replace("%3D", "=")
    assert cli("--connection", "beta", "sandbox", "seed", "--as-of", AS_OF).exit_code == 0
    synced = json.loads(cli("--connection", "beta", "sync", "--as-of", AS_OF, "--json").output)
    assert synced["created"] > 0
    with psycopg.connect(on_postgres) as conn:
        in_beta = conn.execute(f'SELECT count(*) FROM "{beta_schema}".runs').fetchone()[0]
        in_default = conn.execute("SELECT count(*) FROM runs").fetchone()[0]
        registry = conn.execute("SELECT name, status FROM connections").fetchall()
    assert (in_beta, in_default) == (1, 0)
    assert registry == [("beta", "connected")]
    assert json.loads(cli("runs", "--json").output) == []
