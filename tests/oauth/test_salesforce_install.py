"""Connecting a Salesforce org through the same routes and flows: the web-server flow with
PKCE (the verifier sealed in the flow, its S256 challenge in the authorize URL), against
h-sfoauth's login server fake."""

from __future__ import annotations

import base64
import hashlib

import pytest
import yaml
from sqlalchemy import select

from crm_renewals.connector.config import load_config
from crm_renewals.connector.secretbox import SecretBox
from crm_renewals.connector.state.schema import oauth_flows
from tests.console.conftest import ADMIN, sign_in
from tests.fakes.salesforce_oauth import CLIENT_ID, CLIENT_SECRET, ORG_ID, FakeSalesforceLogin
from tests.oauth.conftest import KEY, app_env, query_of


@pytest.fixture
def sf_app(deployment, monkeypatch):
    with FakeSalesforceLogin() as login:
        data = yaml.safe_load(deployment.read_text())
        data["oauth"]["salesforce_login_url"] = login.url
        deployment.write_text(yaml.safe_dump(data))
        from crm_renewals.webhooks.app import create_app

        env = app_env(
            SALESFORCE_APP_CONSUMER_KEY=CLIENT_ID, SALESFORCE_APP_CONSUMER_SECRET=CLIENT_SECRET
        )
        app = create_app(load_config(deployment), env=env)
        app.config["TESTING"] = True
        yield app, login
        app.extensions["console"].close()
        app.extensions["renewals"].store.close()


def test_a_salesforce_org_connects_with_pkce_and_its_verifier_is_sealed(sf_app, registry):
    app, login = sf_app
    admin = sign_in(app.test_client(), ADMIN)
    started = admin.get("/oauth/salesforce/install?connection=sfco")
    assert started.status_code == 302
    asked = query_of(started.headers["Location"])
    assert asked["code_challenge_method"] == "S256" and asked["response_type"] == "code"
    with registry.oauth_flows.db.read() as conn:
        (sealed,) = conn.execute(select(oauth_flows.c.verifier)).scalars()
    verifier = SecretBox({"RENEWALS_ENCRYPTION_KEY": KEY}).open(sealed)
    assert verifier not in sealed and 43 <= len(verifier) <= 128
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    assert asked["code_challenge"] == challenge.decode().rstrip("=")

    status, back, location = login.approve(started.headers["Location"])
    assert status == 302, location
    done = admin.get(f"/oauth/salesforce/callback?code={back['code'][0]}&state={back['state'][0]}")
    assert query_of(done.headers["Location"]) == {"connected": "sfco"}
    row = registry.connections.get("sfco")
    assert (row.crm, row.status, row.external_id) == ("salesforce", "connected", ORG_ID)
    assert row.instance_url == login.instance_url
    assert login.calls["token:authorization_code"] == 1
