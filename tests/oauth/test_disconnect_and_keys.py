"""Disconnecting (tokens revoked at the CRM), removing with the CRM away, sealed tokens that
never show (logs, `connections show/list --json`), new-key and rotate-key, connections that
cannot run refused in one line."""

from __future__ import annotations

import json
import logging
import os

import pytest
from click.testing import CliRunner
from cryptography.fernet import Fernet

from crm_renewals.connector import bootstrap
from crm_renewals.connector.cli import main
from crm_renewals.connector.errors import ConfigError, ConnectorError
from crm_renewals.connector.oauth.grants import Grant
from crm_renewals.connector.secretbox import KEY_ENV, SecretBox, UnreadableSecret, new_key
from crm_renewals.connector.services import connections as service
from crm_renewals.connector.services import sync
from tests.conftest import AS_OF
from tests.oauth.conftest import KEY, connect, install


def cli(deployment, *args: str):
    return CliRunner().invoke(main, ["--config", str(deployment), *args])


def secrets_of(fake) -> set[str]:
    """Every token and code the fake app handed out."""
    return set(fake.oauth.access_tokens) | set(fake.oauth.refresh_tokens) | set(fake.oauth.codes)


def test_disconnect_revokes_at_hubspot_forgets_the_tokens_and_stops_the_runs(
    deployment, fake, registry
):
    connect(deployment)
    refresh = Grant.from_json(SecretBox().open(registry.connections.get("acme").tokens))
    answer = cli(deployment, "connections", "disconnect", "acme", "--json")
    assert answer.exit_code == 0, answer.output
    shown = json.loads(answer.output)
    assert (shown["name"], shown["status"]) == ("acme", "disconnected")
    assert fake.oauth.revoked == [refresh.refresh_token]
    assert fake.oauth.refresh_tokens[refresh.refresh_token].revoked
    assert fake.oauth.valid_access_token(refresh.access_token)[0] is False
    row = registry.connections.get("acme")
    assert (row.status, row.tokens) == ("disconnected", None)
    assert row.status_reason.startswith("disconnected by cli")
    (entry,) = registry.audit.list(action="connection.disconnect")
    assert entry.target == "acme" and entry.detail["revoked"] is True
    with pytest.raises(
        ConnectorError, match="connection acme is disconnected: Connections > Reconnect"
    ):
        bootstrap.build(bootstrap.load(str(deployment), "acme"))


def test_the_default_connection_of_app_yaml_cannot_be_disconnected(deployment):
    answer = cli(deployment, "connections", "disconnect", "default")
    assert answer.exit_code == 2
    assert "credentials from the environment" in answer.output


def test_removing_with_hubspot_unreachable_still_removes_and_logs_no_secret(
    deployment, fake, registry, caplog
):
    connect(deployment)
    fake.stop()
    base = bootstrap.load_base(str(deployment))
    with caplog.at_level(logging.DEBUG):
        service.remove(base, registry, "acme", "test")
    assert registry.connections.get("acme") is None
    assert "connection acme: tokens not revoked at hubspot" in caplog.text
    assert not [s for s in secrets_of(fake) if s in caplog.text]


def test_tokens_never_reach_the_logs_nor_the_json_of_connections(admin, deployment, fake, caplog):
    fake.oauth.expires_in = 100  # the sync refreshes first
    with caplog.at_level(logging.DEBUG):
        assert install(admin) == {"connected": "acme"}
        ctx = bootstrap.build(bootstrap.load(str(deployment), "acme"))
        try:
            assert sync(ctx, as_of=AS_OF).status == "ok"
        finally:
            ctx.close()
    assert fake.oauth.token_calls["refresh_token"] >= 1
    shown = cli(deployment, "connections", "show", "acme", "--json")
    listed = cli(deployment, "connections", "list", "--json")
    plain = cli(deployment, "connections", "show", "acme")
    for said in (caplog.text, shown.output, listed.output, plain.output):
        assert not [s for s in secrets_of(fake) if s in said]
        assert "client-secret" not in said and KEY not in said
    assert "tokens" not in json.loads(shown.output)
    assert json.loads(shown.output)["status"] == "connected"


def test_rotate_key_seals_every_token_again_under_the_first_key(deployment, registry, monkeypatch):
    connect(deployment)
    before = registry.connections.get("acme").tokens
    fresh = new_key()
    monkeypatch.setenv(KEY_ENV, f"{fresh},{KEY}")
    answer = cli(deployment, "connections", "rotate-key", "--json")
    assert answer.exit_code == 0, answer.output
    assert json.loads(answer.output) == {"ok": True, "rotated": 1, "connections": ["acme"]}
    after = registry.connections.get("acme").tokens
    assert after != before
    assert Grant.from_json(SecretBox({KEY_ENV: fresh}).open(after)).external_id == "62515"
    with pytest.raises(UnreadableSecret):
        SecretBox({KEY_ENV: KEY}).open(after)
    monkeypatch.setenv(KEY_ENV, fresh)  # the old key dropped: the connection still runs
    ctx = bootstrap.build(bootstrap.load(str(deployment), "acme"))
    ctx.close()


def test_new_key_prints_a_fernet_key(deployment):
    answer = CliRunner().invoke(main, ["connections", "new-key", "--json"])
    key = json.loads(answer.output)["key"]
    Fernet(key.encode())  # a usable key, or this raises
    assert (
        key
        != json.loads(CliRunner().invoke(main, ["connections", "new-key", "--json"]).output)["key"]
    )


def test_a_connection_added_but_not_yet_authorised_is_refused_in_one_line(deployment):
    assert cli(deployment, "connections", "add", "beta", "--crm", "hubspot").exit_code == 0
    answer = CliRunner().invoke(main, ["--config", str(deployment), "sync", "--connection", "beta"])
    assert answer.exit_code == 2
    assert answer.output.strip() == (
        "Error: connection beta is not connected yet: Connections > Connect in the console"
    )


def test_without_the_encryption_key_an_oauth_connection_says_which_variable(
    deployment, monkeypatch
):
    connect(deployment)
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(ConfigError, match=KEY_ENV):
        bootstrap.build(bootstrap.load(str(deployment), "acme"))
    assert os.environ.get(KEY_ENV) is None
