"""RENEWALS_STATE_URL in place of state.url (its password never shown), and a PostgreSQL that
cannot be used: one line saying why, never a traceback."""

from __future__ import annotations

import json

import pytest

from crm_renewals.connector.config import STATE_URL_ENV
from tests.conftest import cli_for, write_config
from tests.e2e.test_cli_hardening import one_line_error


@pytest.fixture
def cli(tmp_path):
    return cli_for(write_config(tmp_path, state={"url": f"sqlite:///{tmp_path / 'file.db'}"}))


def test_the_environment_url_wins_and_config_show_says_so_without_its_password(cli, monkeypatch):
    monkeypatch.setenv(STATE_URL_ENV, "postgresql://renewals:hunter2@db.internal/renewals")
    shown = cli("config", "show", "--json")
    assert "hunter2" not in shown.output
    data = json.loads(shown.output)
    assert data["config"]["state"]["url"] == "postgresql://renewals:***@db.internal/renewals"
    assert data["files"]["state database"] == (
        "postgresql://renewals:***@db.internal/renewals (from RENEWALS_STATE_URL)"
    )
    assert data["secrets"][STATE_URL_ENV] is True
    assert "hunter2" not in cli("config", "show").output


def test_a_bad_environment_url_is_named_as_such_without_showing_it(cli, monkeypatch):
    monkeypatch.setenv(STATE_URL_ENV, "postgresql://u:hunter2@db:notaport/renewals")
    line = one_line_error(cli("status"), 2, "environment", STATE_URL_ENV, "not a database URL")
    assert "hunter2" not in line


def test_a_postgresql_that_refuses_the_connection_is_one_line(cli, monkeypatch):
    monkeypatch.setenv(STATE_URL_ENV, "postgresql://u:hunter2@127.0.0.1:1/renewals")
    line = one_line_error(cli("status"), 2, "cannot open the state database", "127.0.0.1")
    assert "refused" in line and "hunter2" not in line and "u:***@" in line


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda url: url.replace("/test?", "/no_such_database?"), ("no_such_database",)),
        (lambda url: url.replace("postgres@", "no_such_role:hunter2@"), ("no_such_role",)),
    ],
    ids=["database missing", "role missing"],
)
def test_a_postgresql_that_refuses_us_is_one_line(cli, monkeypatch, postgres_url, change, words):
    monkeypatch.setenv(STATE_URL_ENV, change(postgres_url))
    line = one_line_error(cli("status"), 2, "cannot open the state database", *words)
    assert "hunter2" not in line
