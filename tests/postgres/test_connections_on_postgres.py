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


def test_a_process_serving_many_connections_keeps_few_idle_sessions(tmp_path, on_postgres):
    """Every connection's store touched (as a /metrics scrape does): only the WARM_STORES most
    lately used keep a session; the others still answer when used again."""
    import psycopg

    from crm_renewals.connector import bootstrap, deployment
    from crm_renewals.connector.config import load_config
    from crm_renewals.connector.services import connections as manage

    base = load_config(write_config(tmp_path))
    registry = bootstrap.open_store(base)
    names = [f"c{i}" for i in range(5)]
    with psycopg.connect(on_postgres) as conn:
        own = conn.execute("SELECT current_schema()").fetchone()[0]
        app = conn.execute("SELECT current_setting('application_name')").fetchone()[0]
    try:
        for name in names:
            manage.add(base, registry, name, "sandbox", "test")
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(deployment, "WARM_STORES", 2)
            served = deployment.Deployment(base, registry)
            try:
                for _ in range(2):
                    for _conn, store, why in served.stores():
                        assert why is None and store.runs.totals() == []
                with psycopg.connect(on_postgres) as pg:
                    sessions = pg.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s "
                        "AND pid <> pg_backend_pid()",
                        (app,),
                    ).fetchone()[0]
            finally:
                served.close()
        # the default store (also the registry) and the two most lately used
        assert sessions <= 3, sessions
    finally:
        registry.close()
        with psycopg.connect(on_postgres, autocommit=True) as pg:
            for name in names:
                pg.execute(f'DROP SCHEMA IF EXISTS "{own}_{name}" CASCADE')
