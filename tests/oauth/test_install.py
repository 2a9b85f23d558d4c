"""Connecting HubSpot by OAuth from the console: /oauth/hubspot/install and /callback through
the Flask test client, the admin's browser hopping through the fake portal's install page."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import requests
from sqlalchemy import text

from crm_renewals.connector import bootstrap
from crm_renewals.connector.config_sections import HUBSPOT_OPTIONAL_SCOPES, HUBSPOT_SCOPES
from crm_renewals.connector.oauth.grants import Grant
from crm_renewals.connector.secretbox import SecretBox
from crm_renewals.connector.services import sync
from tests.conftest import AS_OF
from tests.console.conftest import ADMIN, sign_in
from tests.fakes.hubspot_oauth import CLIENT_ID
from tests.hubspot.conftest import HubBook
from tests.oauth.conftest import CALLBACK, KEY, app_env, approve, install, query_of


def test_install_sends_the_admin_to_hubspot_with_the_apps_scopes_and_a_fresh_state(admin, fake):
    first = admin.get("/oauth/hubspot/install?connection=acme")
    second = admin.get("/oauth/hubspot/install?connection=acme")
    assert first.status_code == 302
    url = urlsplit(first.headers["Location"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{fake.url}/oauth/authorize"
    q = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert set(q) == {"client_id", "scope", "optional_scope", "redirect_uri", "state"}
    assert q["client_id"] == CLIENT_ID and q["redirect_uri"] == CALLBACK
    assert q["scope"] == " ".join(HUBSPOT_SCOPES)
    assert q["optional_scope"] == " ".join(HUBSPOT_OPTIONAL_SCOPES)
    assert len(q["state"]) >= 40
    assert q["state"] != query_of(second.headers["Location"])["state"]


def test_an_admin_connects_the_portal_and_its_first_sync_uses_the_oauth_token(
    admin, fake, deployment, registry
):
    assert install(admin) == {"connected": "acme"}
    row = registry.connections.get("acme")
    assert (row.crm, row.auth, row.status, row.external_id) == (
        "hubspot",
        "oauth",
        "connected",
        "62515",
    )
    assert row.connected_by == ADMIN[0] and row.status_reason is None
    assert row.token_expires_at is not None and "crm.objects.deals.write" in row.scopes
    grant = Grant.from_json(SecretBox({"RENEWALS_ENCRYPTION_KEY": KEY}).open(row.tokens))
    assert grant.access_token in fake.oauth.access_tokens
    assert grant.access_token not in row.tokens and grant.refresh_token not in row.tokens
    (entry,) = [e for e in registry.audit.list() if e.action.startswith("connection.")]
    assert (entry.actor, entry.action, entry.target) == (ADMIN[0], "connection.connect", "acme")

    hub = HubBook(fake)
    deal = hub.contract(hub.company("Acme"), AS_OF + timedelta(days=100))
    ctx = bootstrap.build(bootstrap.load(str(deployment), "acme"))
    try:
        report = sync(ctx, as_of=AS_OF)
    finally:
        ctx.close()
    assert report.status == "ok" and report.created == 1
    assert fake.find("deals", "renewal_contract_id", deal) is not None
    assert fake.oauth.token_calls == {"authorization_code": 1}  # still fresh: no refresh


def test_connecting_the_same_portal_again_reconnects_it_under_its_name(admin, registry):
    assert install(admin) == {"connected": "acme"}
    assert install(admin, "/oauth/hubspot/install") == {"connected": "acme"}
    actions = [e.action for e in registry.audit.list() if e.action.startswith("connection.")]
    assert actions == ["connection.reconnect", "connection.connect"]


def test_an_unnamed_install_is_named_after_the_portal(admin, registry):
    assert install(admin, "/oauth/hubspot/install") == {"connected": "hubspot-62515"}
    assert registry.connections.get("hubspot-62515").external_id == "62515"


def test_a_portal_connected_under_one_name_is_refused_under_another(admin, registry):
    install(admin)
    refused = install(admin, "/oauth/hubspot/install?connection=other")
    assert "62515 is connection 'acme' already" in refused["error"]
    assert registry.connections.get("other") is None


def test_a_callback_replayed_is_refused(admin):
    callback = approve(admin)
    assert query_of(admin.get(callback).headers["Location"]) == {"connected": "acme"}
    again = query_of(admin.get(callback).headers["Location"])
    assert "used already" in again["error"]


def test_a_state_we_never_issued_is_refused_before_any_code_is_exchanged(admin, fake):
    callback = approve(admin)
    code = query_of(callback)["code"]
    answer = admin.get(f"/oauth/hubspot/callback?code={code}&state=forged-state")
    assert "unknown" in query_of(answer.headers["Location"])["error"]
    assert fake.oauth.token_calls == {}


def test_the_state_of_another_session_is_refused_and_spent(app, admin, fake):
    callback = approve(admin)
    other = sign_in(app.test_client(), ADMIN)  # the same admin, another browser
    other.get("/oauth/hubspot/install")  # that session has a nonce of its own
    refused = query_of(other.get(callback).headers["Location"])
    assert "another console session" in refused["error"]
    assert "used already" in query_of(admin.get(callback).headers["Location"])["error"]
    assert fake.oauth.token_calls == {}


def test_a_callback_without_a_console_session_is_a_400_page(app, admin):
    callback = approve(admin)
    answer = app.test_client().get(callback)
    assert answer.status_code == 400
    assert "no console session" in answer.get_data(as_text=True)


def test_a_replayed_code_is_refused_by_hubspot_and_its_tokens_revoked(admin, fake, registry):
    first = approve(admin)
    assert query_of(admin.get(first).headers["Location"]) == {"connected": "acme"}
    second = approve(admin)  # a new flow of this session, answered with the old code
    replay = (
        f"/oauth/hubspot/callback?code={query_of(first)['code']}&state={query_of(second)['state']}"
    )
    refused = query_of(admin.get(replay).headers["Location"])
    assert "refused the authorization code (invalid_grant" in refused["error"]
    assert fake.oauth.token_calls == {"authorization_code": 2}
    # RFC 6749 4.1.2: the tokens issued for a replayed code are revoked
    assert all(issued.revoked for issued in fake.oauth.refresh_tokens.values())


def test_an_admin_who_declines_lands_on_connections_with_the_reason(admin, fake, registry):
    fake.oauth.deny = True
    callback = approve(admin)
    refused = query_of(admin.get(callback).headers["Location"])
    assert refused["error"] == "HubSpot not connected: access_denied: The user denied the request"
    assert registry.connections.get("acme") is None
    fake.oauth.deny = False
    state = query_of(callback)["state"]
    late = query_of(admin.get(f"/oauth/hubspot/callback?code=x&state={state}").headers["Location"])
    assert "used already" in late["error"]  # the declined flow is spent


def test_an_install_older_than_flow_minutes_is_refused(admin, registry):
    callback = approve(admin)
    with registry.oauth_flows.db.write() as conn:
        conn.execute(text("UPDATE oauth_flows SET created_at = '2000-01-01 00:00:00'"))
    refused = query_of(admin.get(callback).headers["Location"])
    assert "older than 15 minutes" in refused["error"]


def test_install_wants_a_signed_in_admin(app, viewer):
    anonymous = app.test_client().get("/oauth/hubspot/install?connection=acme")
    assert anonymous.status_code == 302
    login = urlsplit(anonymous.headers["Location"])
    assert login.path == "/admin/login"
    assert (
        query_of(anonymous.headers["Location"])["next"] == "/oauth/hubspot/install?connection=acme"
    )
    assert viewer.get("/oauth/hubspot/install").status_code == 403


def test_signing_in_leads_back_to_the_install(app):
    client = app.test_client()
    from tests.console.conftest import csrf_token

    answer = client.post(
        "/admin/login?next=/oauth/hubspot/install%3Fconnection%3Dacme",
        data={"email": ADMIN[0], "password": ADMIN[1], "csrf_token": csrf_token(client)},
    )
    assert answer.headers["Location"] == "/oauth/hubspot/install?connection=acme"


def test_with_the_console_off_install_is_a_404_saying_why(deployment):
    from crm_renewals.connector.config import load_config
    from crm_renewals.webhooks.app import create_app

    env = app_env()
    env.pop("RENEWALS_SECRET_KEY")
    app = create_app(load_config(deployment), env=env)
    try:
        answer = app.test_client().get("/oauth/hubspot/install")
        assert answer.status_code == 404
        assert "RENEWALS_SECRET_KEY is not set" in answer.get_data(as_text=True)
    finally:
        app.extensions["console"].close()
        app.extensions["renewals"].store.close()


def test_refusals_at_install_say_why_without_a_5xx(app, admin):
    assert admin.get("/oauth/sandbox/install").status_code == 404
    assert admin.get("/oauth/sandbox/callback").status_code == 404
    bad_name = query_of(
        admin.get("/oauth/hubspot/install?connection=Bad%20Name").headers["Location"]
    )
    assert "is not a connection name" in bad_name["error"]
    default = query_of(admin.get("/oauth/hubspot/install?connection=default").headers["Location"])
    assert "its CRM is sandbox, not hubspot" in default["error"]
    app.extensions["renewals"].env = {**app.extensions["renewals"].env}
    app.extensions["renewals"].env.pop("HUBSPOT_APP_CLIENT_SECRET")
    missing = query_of(admin.get("/oauth/hubspot/install").headers["Location"])
    assert "HUBSPOT_APP_CLIENT_SECRET: not set" in missing["error"]


def test_the_fake_install_page_refuses_scopes_the_app_was_not_given(admin, fake):
    started = admin.get("/oauth/hubspot/install")
    url = started.headers["Location"].replace("crm.objects.deals.write", "crm.objects.quotes.write")
    assert requests.get(url, allow_redirects=False, timeout=5).status_code == 400
