"""The tests of this folder run against PostgreSQL (tests/conftest.py `postgres_url`: a schema
of each test's own). The modules that borrow tests from other folders use `on_postgres`:
RENEWALS_STATE_URL points every configuration loaded in them at the test's schema, so those
tests run unchanged on PostgreSQL."""

from __future__ import annotations

import pytest

from crm_renewals.connector.config import STATE_URL_ENV
from crm_renewals.connector.state import StateStore

# the webhook tests' fixtures, for the webhook tests borrowed here
from tests.webhooks.conftest import (  # noqa: F401
    app,
    client,
    clock,
    inbox,
    store,
    wh_config,
    wh_config_path,
)


@pytest.fixture
def on_postgres(monkeypatch, postgres_url: str):
    """Every configuration loaded in the test uses the test's schema; afterwards, check that
    the test did use it (a test that kept to SQLite proves nothing here)."""
    import psycopg

    monkeypatch.setenv(STATE_URL_ENV, postgres_url)
    yield postgres_url
    with psycopg.connect(postgres_url) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()"
        ).fetchone()[0]
    assert tables, "the test never opened the state store on PostgreSQL"


@pytest.fixture
def pg_store(postgres_url: str):
    s = StateStore(postgres_url)
    yield s
    s.close()
