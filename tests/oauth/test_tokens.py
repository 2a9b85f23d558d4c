"""An OAuth connection's access token: refreshed shortly before it expires, once however many
threads or processes find it due, renewed when stale, and a refused refresh token stopping
the connection's runs cleanly (needs_reconnect, one alert, one line)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from crm_renewals.connector import bootstrap
from crm_renewals.connector.errors import ConnectorError, FatalCrmError
from crm_renewals.connector.oauth.grants import ReconnectNeeded
from crm_renewals.connector.oauth.providers import provider
from crm_renewals.connector.oauth.tokens import TokenSource
from crm_renewals.connector.secretbox import SecretBox
from crm_renewals.connector.services import alerts, sync
from tests.conftest import AS_OF
from tests.e2e.test_crash import renewals_cli
from tests.oauth.conftest import connect

REFRESH = "refresh_token"


def source(deployment, clock=None, env=None) -> TokenSource:
    cfg = bootstrap.load(str(deployment), "acme")
    env = os.environ if env is None else env
    extra = {"clock": clock} if clock else {}
    return TokenSource(
        cfg, cfg.connections_url, provider(cfg, "hubspot", env), SecretBox(env), **extra
    )


def test_the_token_is_refreshed_only_once_within_refresh_before_seconds_of_expiry(
    deployment, fake, registry
):
    connect(deployment)
    at = [datetime.now(UTC)]
    tokens = source(deployment, clock=lambda: at[0])
    first = tokens.access_token()
    expires = tokens.grant().expires_at
    at[0] = expires - timedelta(seconds=301)  # oauth.refresh_before_seconds: 300
    assert tokens.access_token() == first and fake.oauth.token_calls[REFRESH] == 0
    fake.oauth.expires_in = 600  # followed, never assumed
    at[0] = expires - timedelta(seconds=299)
    fresh = tokens.access_token()
    assert fresh != first and fake.oauth.token_calls[REFRESH] == 1
    assert fake.oauth.valid_access_token(fresh) == (True, "")
    row = registry.connections.get("acme")
    assert fresh not in row.tokens
    assert abs((row.token_expires_at - datetime.now(UTC)).total_seconds() - 600) < 30
    at[0] = datetime.now(UTC)  # the new token's 600 s have just begun
    assert tokens.access_token() == fresh and fake.oauth.token_calls[REFRESH] == 1
    tokens.close()


def test_threads_of_four_sources_finding_the_token_due_refresh_it_once(deployment, fake):
    fake.oauth.expires_in = 100  # due at once (refresh_before_seconds 300)
    connect(deployment)
    fake.oauth.expires_in, fake.oauth.token_delay = 1800, 0.3
    sources = [source(deployment) for _ in range(4)]  # each its own database connection
    got: list[str] = []
    gate = threading.Barrier(len(sources))

    def work(tokens: TokenSource) -> None:
        gate.wait()
        got.append(tokens.access_token())

    threads = [threading.Thread(target=work, args=(s,)) for s in sources]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(got) == 4 and len(set(got)) == 1
    assert fake.oauth.token_calls[REFRESH] == 1
    for s in sources:
        s.close()


PROCESS = """
import sys
from crm_renewals.connector import bootstrap
from crm_renewals.connector.oauth.providers import provider
from crm_renewals.connector.oauth.tokens import TokenSource
from crm_renewals.connector.secretbox import SecretBox
import os
cfg = bootstrap.load(sys.argv[1], "acme")
t = TokenSource(cfg, cfg.connections_url, provider(cfg, "hubspot", os.environ), SecretBox())
t.grant()
print("ready", flush=True)
sys.stdin.readline()
print(t.access_token()[:12], t.refreshes)
"""


def test_two_processes_finding_the_token_due_refresh_it_once(deployment, fake):
    fake.oauth.expires_in = 100
    connect(deployment)
    fake.oauth.expires_in, fake.oauth.token_delay = 1800, 0.5
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", PROCESS, str(deployment)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for p in procs:  # both loaded, the stored token read: each waits for the word
        assert p.stdout.readline().strip() == "ready"
    for p in procs:  # the word to both at once, before either answer is read
        p.stdin.write("go\n")
        p.stdin.flush()
    outs = [p.communicate(timeout=30)[0].split() for p in procs]
    assert outs[0][0] == outs[1][0]
    assert sorted(o[1] for o in outs) == ["0", "1"]
    assert fake.oauth.token_calls[REFRESH] == 1


def test_renew_refreshes_a_stale_token_unless_another_process_did(deployment, fake):
    connect(deployment)
    one, two = source(deployment), source(deployment)
    stale = two.access_token()  # two holds the token too
    fresh = one.renew(stale)
    assert fresh != stale and fake.oauth.token_calls[REFRESH] == 1
    assert two.renew(stale) == fresh and fake.oauth.token_calls[REFRESH] == 1
    one.close()
    two.close()


def test_a_sync_after_the_token_expired_uses_the_refreshed_one_in_every_cached_client(
    deployment, fake
):
    connect(deployment)
    ctx = bootstrap.build(bootstrap.load(str(deployment), "acme"))
    try:
        assert sync(ctx, as_of=AS_OF).status == "ok"
        later = time.time() + 2000  # past the 30 minutes of the first token
        fake.oauth.clock = lambda: later
        tokens = ctx.crm.transport.token_source
        tokens.clock = tokens.provider.clock = lambda: datetime.now(UTC) + timedelta(seconds=2000)
        assert sync(ctx, as_of=AS_OF).status == "ok"
    finally:
        ctx.close()
    assert fake.oauth.token_calls[REFRESH] == 1
    assert fake.statuses.get(401, 0) == 0


def test_a_legacy_bad_refresh_token_answer_also_asks_for_a_reconnect(deployment, fake, registry):
    fake.oauth.expires_in = 100
    connect(deployment)
    fake.oauth.revoke_all()
    fake.oauth.legacy_errors = True
    tokens = source(deployment)
    with pytest.raises(ReconnectNeeded, match="connection acme needs reconnecting"):
        tokens.access_token()
    row = registry.connections.get("acme")
    assert row.status == "needs_reconnect" and "(invalid_grant)" in row.status_reason
    tokens.close()


def test_the_app_refused_for_its_credentials_leaves_the_connection_connected(
    deployment, fake, registry
):
    fake.oauth.expires_in = 100
    connect(deployment)
    env = {**os.environ, "HUBSPOT_APP_CLIENT_SECRET": "not-the-secret"}
    tokens = source(deployment, env=env)
    with pytest.raises(FatalCrmError, match="invalid_client"):
        tokens.access_token()
    assert registry.connections.get("acme").status == "connected"
    tokens.close()


def test_a_revoked_refresh_token_stops_the_sync_in_one_line_marks_it_and_alerts_once(
    deployment, fake, registry, hook
):
    fake.oauth.expires_in = 100  # the next run refreshes first
    connect(deployment)
    fake.oauth.revoke_all()  # the app uninstalled from the portal
    cli = [*renewals_cli(), "--config", str(deployment)]
    first = subprocess.run([*cli, "sync", "--connection", "acme"], capture_output=True, text=True)
    assert first.returncode == 2, first.stderr
    lines = first.stderr.strip().splitlines()
    assert (
        len(lines) == 1
        and "connection acme needs reconnecting: Connections > Reconnect" in lines[0]
    )
    row = registry.connections.get("acme")
    assert (
        row.status == "needs_reconnect"
        and "refused its refresh token (invalid_grant)" in row.status_reason
    )
    store = bootstrap.open_store(bootstrap.load(str(deployment), "acme"))
    (run,) = store.runs.list(5)  # the run ended failed, saying why
    store.close()
    assert run.status == "failed" and "connection acme needs reconnecting" in run.error
    with pytest.raises(ConnectorError) as again:  # refused before any CRM call now
        bootstrap.build(bootstrap.load(str(deployment), "acme"))
    assert str(again.value) == (
        f"connection acme needs reconnecting: Connections > Reconnect in the console "
        f"({row.status_reason})"
    )
    told = [t for t in hook.titles() if "needs reconnecting" in t]
    assert told == ["crm-renewals: connection acme needs reconnecting"]
    assert "hook-secret-part" not in first.stderr

    connect(deployment)  # an admin reconnects: the episode ends, the runs go on
    assert registry.connections.get("acme").status == "connected"
    assert registry.notices.get(alerts.reconnect_key("acme")).closed_at is not None
    ctx = bootstrap.build(bootstrap.load(str(deployment), "acme"))
    try:
        assert sync(ctx, as_of=AS_OF).status == "ok"
    finally:
        ctx.close()
