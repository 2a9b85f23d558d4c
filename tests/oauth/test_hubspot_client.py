"""HubSpotOAuth against the fake's token endpoint: what it reads from the answer, how it
tells a refusal from the network, and what it needs from the environment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm_renewals.connector import bootstrap
from crm_renewals.connector.errors import ConfigError, RetriableCrmError
from crm_renewals.connector.oauth.grants import GrantRefused
from crm_renewals.connector.oauth.hubspot import HubSpotOAuth, refusal
from tests.oauth.conftest import CALLBACK, app_env


def client(deployment, env=None, **kw) -> HubSpotOAuth:
    return HubSpotOAuth(bootstrap.load_base(str(deployment)), env or app_env(), **kw)


def code_for(hub: HubSpotOAuth) -> str:
    url = hub.authorize_url(redirect_uri=CALLBACK, state="s", code_challenge=None)
    back = requests.get(url, allow_redirects=False, timeout=5).headers["Location"]
    return parse_qs(urlsplit(back).query)["code"][0]


def test_the_grant_names_the_portal_and_expires_as_the_answer_says(deployment, fake):
    fake.oauth.portal, fake.oauth.expires_in = "998877", 1234
    at = datetime(2026, 11, 30, 12, tzinfo=UTC)
    hub = client(deployment, clock=lambda: at)
    grant = hub.exchange(code=code_for(hub), redirect_uri=CALLBACK, code_verifier=None)
    assert grant.external_id == "998877"
    assert grant.expires_at == at + timedelta(seconds=1234)
    assert grant.refresh_token and grant.extra == {"redirect_uri": CALLBACK}
    assert "crm.objects.deals.write" in grant.scopes
    assert grant.access_token not in repr(grant) and grant.access_token not in repr(hub)
    fresh = hub.refresh(grant)
    assert fresh.refresh_token == grant.refresh_token and fresh.external_id == "998877"
    assert fresh.access_token != grant.access_token


def test_a_code_for_another_redirect_uri_is_refused(deployment, fake):
    hub = client(deployment)
    with pytest.raises(GrantRefused) as refused:
        hub.exchange(code=code_for(hub), redirect_uri="http://evil.test/cb", code_verifier=None)
    assert refused.value.error == "invalid_grant"


def test_both_refusal_shapes_are_read(deployment):
    rfc = refusal({"error": "invalid_grant", "error_description": "revoked"}, 400)
    legacy = refusal({"status": "BAD_REFRESH_TOKEN", "message": "missing or unknown"}, 400)
    odd = refusal(["not", "an", "object"], 400)
    assert (rfc.error, rfc.description) == ("invalid_grant", "revoked")
    assert legacy.error == "invalid_grant" and "BAD_REFRESH_TOKEN" in legacy.description
    assert odd.error == "invalid_request"


def test_hubspot_out_of_reach_is_retriable_and_says_no_secret(deployment, fake):
    hub = client(deployment)
    fake.stop()
    with pytest.raises(RetriableCrmError) as failed:
        hub.exchange(code="c", redirect_uri=CALLBACK, code_verifier=None)
    assert "client-secret" not in str(failed.value) and "network" in str(failed.value)


def test_missing_app_credentials_name_the_variables(deployment):
    env = app_env()
    del env["HUBSPOT_APP_CLIENT_ID"], env["HUBSPOT_APP_CLIENT_SECRET"]
    with pytest.raises(ConfigError) as missing:
        client(deployment, env=env)
    assert [p.path for p in missing.value.problems] == [
        "HUBSPOT_APP_CLIENT_ID",
        "HUBSPOT_APP_CLIENT_SECRET",
    ]


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    query=st.dictionaries(
        st.sampled_from(["code", "state", "error", "error_description", "scope", "x"]),
        st.text(max_size=300),
    )
)
def test_any_callback_query_gets_a_redirect_or_a_4xx_never_a_5xx(admin, query):
    admin.get("/oauth/hubspot/install")  # the session has a nonce
    answer = admin.get("/oauth/hubspot/callback", query_string=query)
    assert answer.status_code in (302, 400)
    if answer.status_code == 302:
        assert urlsplit(answer.headers["Location"]).path == "/admin/connections"
