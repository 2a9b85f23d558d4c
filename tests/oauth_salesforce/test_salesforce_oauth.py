"""The Salesforce OAuth client (web-server flow with PKCE) against a login server on loopback."""

from __future__ import annotations

import re
import socket
from urllib.parse import parse_qs, urlsplit

import pytest

from crm_renewals.connector.config import AppConfig
from crm_renewals.connector.errors import ConfigError, RetriableCrmError
from crm_renewals.connector.oauth.grants import Grant, GrantRefused
from crm_renewals.connector.oauth.salesforce import (
    KEY_ENV,
    SECRET_ENV,
    SalesforceOAuth,
    pkce_challenge,
    pkce_pair,
    signature_of,
)
from tests.fakes.salesforce_oauth import CALLBACK, CLIENT_ID, CLIENT_SECRET, ORG_ID, USER_ID
from tests.oauth_salesforce.conftest import APP_ENV, client_for


def approved_code(client, login, redirect_uri: str = CALLBACK) -> tuple[str, str]:
    """An admin approves the app: (the code the callback receives, the flow's verifier)."""
    verifier, challenge = pkce_pair()
    url = client.authorize_url(redirect_uri=redirect_uri, state="st-1", code_challenge=challenge)
    status, query, _ = login.approve(url)
    assert status == 302 and query["state"] == ["st-1"]
    return query["code"][0], verifier


def installed(client, login) -> Grant:
    code, verifier = approved_code(client, login)
    return client.exchange(code=code, redirect_uri=CALLBACK, code_verifier=verifier)


# ------------------------------------------------------------------ PKCE and the authorize URL


def test_pkce_challenge_is_rfc_7636s_s256_of_the_verifier():
    # RFC 7636 Appendix B: the example verifier and its S256 challenge
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert pkce_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_pkce_pairs_are_fresh_unreserved_verifiers_of_43_to_128_characters():
    (v1, c1), (v2, _) = pkce_pair(), pkce_pair()
    assert v1 != v2 and re.fullmatch(r"[A-Za-z0-9\-._~]{43,128}", v1)
    assert c1 == pkce_challenge(v1) and "=" not in c1


def test_authorize_url_asks_for_the_apps_scopes_with_an_s256_challenge(client, login):
    verifier, challenge = pkce_pair()
    url = client.authorize_url(redirect_uri=CALLBACK, state="s t&1", code_challenge=challenge)
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == (
        f"{login.url}/services/oauth2/authorize"
    )
    assert parse_qs(parts.query) == {
        "response_type": ["code"],
        "client_id": [CLIENT_ID],
        "redirect_uri": [CALLBACK],
        "state": ["s t&1"],
        "scope": ["api refresh_token"],
        "code_challenge": [pkce_challenge(verifier)],
        "code_challenge_method": ["S256"],
    }


def test_the_login_url_follows_salesforce_domain_unless_set():
    sandbox = SalesforceOAuth(AppConfig(salesforce={"domain": "test"}), APP_ENV)
    url = sandbox.authorize_url(redirect_uri=CALLBACK, state="s", code_challenge="c")
    assert url.startswith("https://test.salesforce.com/services/oauth2/authorize?")
    my_domain = SalesforceOAuth(AppConfig(salesforce={"domain": "acme.my"}), APP_ENV)
    assert my_domain.login_url == "https://acme.my.salesforce.com"


def test_an_install_without_a_challenge_is_a_programming_error(client):
    with pytest.raises(ValueError, match="PKCE"):
        client.authorize_url(redirect_uri=CALLBACK, state="s", code_challenge=None)


def test_missing_app_credentials_name_both_environment_variables(login):
    with pytest.raises(ConfigError) as caught:
        client_for(login, env={KEY_ENV: CLIENT_ID})
    assert str(caught.value).count("\n") == 0 and SECRET_ENV in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        client_for(login, env={})
    assert KEY_ENV in str(caught.value) and SECRET_ENV in str(caught.value)


# ------------------------------------------------------------------ the code exchange


def test_the_code_is_exchanged_and_the_org_read_from_the_identity_service(client, login):
    grant = installed(client, login)
    assert grant.external_id == ORG_ID and len(grant.external_id) == 18
    assert grant.instance_url == "https://fake.my.salesforce.com"
    assert grant.expires_at is None and grant.refresh_token and grant.access_token
    assert grant.extra == {"id_url": login.identity_url, "user_id": USER_ID}
    assert set(grant.scopes) == {"api", "refresh_token"}
    assert login.calls["token:authorization_code"] == 1 and login.calls["identity"] == 1
    assert login.live(grant.access_token)
    assert Grant.from_json(grant.to_json()) == grant
    assert grant.access_token not in repr(grant) and CLIENT_SECRET not in repr(client)


def test_a_token_answer_whose_identity_url_does_not_match_its_signature_is_refused(client, login):
    code, verifier = approved_code(client, login)
    login.tamper_identity = True
    with pytest.raises(GrantRefused) as refused:
        client.exchange(code=code, redirect_uri=CALLBACK, code_verifier=verifier)
    assert refused.value.error == "invalid_signature"
    assert login.calls["identity"] == 0  # nothing of the answer was used


def test_answers_signed_with_another_key_than_the_consumer_secret_are_refused(client, login):
    code, verifier = approved_code(client, login)
    login.signing_secret = "a-secret-this-deployment-does-not-hold"
    with pytest.raises(GrantRefused) as refused:
        client.exchange(code=code, redirect_uri=CALLBACK, code_verifier=verifier)
    assert refused.value.error == "invalid_signature"
    assert CLIENT_SECRET not in str(refused.value)


def test_signatures_match_a_vector_computed_with_openssl():
    # printf '%s' "$ID$ISSUED_AT" | openssl dgst -sha256 -hmac example-consumer-secret -binary
    #   | base64
    identity = "https://login.salesforce.com/id/00Dx0000000BV7zEAG/005x00000012Q9PAAU"
    assert (
        signature_of("example-consumer-secret", identity, "1278448384422")
        == "1HA2F4v7BnLwEyo8JDdO6TUOEdaK5ii5J5gAqkmReEs="
    )


def test_a_replayed_code_is_refused(client, login):
    code, verifier = approved_code(client, login)
    client.exchange(code=code, redirect_uri=CALLBACK, code_verifier=verifier)
    with pytest.raises(GrantRefused) as refused:
        client.exchange(code=code, redirect_uri=CALLBACK, code_verifier=verifier)
    assert (refused.value.error, refused.value.description) == (
        "invalid_grant",
        "invalid authorization code",
    )


def test_a_code_older_than_fifteen_minutes_is_refused(client, login, clock):
    code, verifier = approved_code(client, login)
    clock.now += 15 * 60 + 1
    with pytest.raises(GrantRefused, match="invalid_grant: expired authorization code"):
        client.exchange(code=code, redirect_uri=CALLBACK, code_verifier=verifier)


def test_a_verifier_other_than_the_challenges_is_refused(client, login):
    code, _ = approved_code(client, login)
    other, _ = pkce_pair()
    with pytest.raises(GrantRefused) as refused:
        client.exchange(code=code, redirect_uri=CALLBACK, code_verifier=other)
    assert refused.value.error == "invalid_request"
    assert login.calls["identity"] == 0


def test_the_redirect_uri_must_be_the_one_of_the_authorize_request(client, login):
    login.callbacks.append("https://other.example/cb")
    code, verifier = approved_code(client, login)
    with pytest.raises(GrantRefused, match="redirect_uri_mismatch"):
        client.exchange(code=code, redirect_uri="https://other.example/cb", code_verifier=verifier)


def test_a_denied_approval_and_an_unregistered_callback_never_yield_a_code(client, login):
    _, challenge = pkce_pair()
    status, _, page = login.approve(
        client.authorize_url(redirect_uri="https://evil.example/cb", state="s", code_challenge="c")
    )
    assert status == 400 and "redirect_uri_mismatch" in page  # an error page, no redirect
    login.deny = True
    url = client.authorize_url(redirect_uri=CALLBACK, state="s", code_challenge=challenge)
    status, query, _ = login.approve(url)
    assert status == 302 and query["error"] == ["access_denied"] and "code" not in query


def test_an_unreachable_login_server_is_worth_another_try(login):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base = AppConfig(oauth={"salesforce_login_url": f"http://127.0.0.1:{port}"})
    with pytest.raises(RetriableCrmError, match="cannot reach Salesforce at 127.0.0.1"):
        SalesforceOAuth(base, APP_ENV).exchange(code="c", redirect_uri=CALLBACK, code_verifier="v")


# ------------------------------------------------------------------ refresh and revoke


def test_refresh_keeps_the_refresh_token_when_salesforce_does_not_rotate_it(client, login):
    grant = installed(client, login)
    fresh = client.refresh(grant)
    assert fresh.access_token != grant.access_token and login.live(fresh.access_token)
    assert fresh.refresh_token == grant.refresh_token
    assert (fresh.external_id, fresh.instance_url) == (grant.external_id, grant.instance_url)
    assert fresh.extra["user_id"] == USER_ID
    assert client.refresh(fresh).refresh_token == grant.refresh_token  # still good
    assert login.calls["token:refresh_token"] == 2 and login.calls["identity"] == 1


def test_refresh_takes_the_rotated_refresh_token_and_the_old_one_is_dead(client, login):
    grant = installed(client, login)
    login.rotate = True
    fresh = client.refresh(grant)
    assert fresh.refresh_token and fresh.refresh_token != grant.refresh_token
    with pytest.raises(GrantRefused, match="invalid_grant: expired access/refresh token"):
        client.refresh(grant)
    assert client.refresh(fresh).refresh_token not in (None, fresh.refresh_token)


def test_a_revoked_refresh_token_is_refused_invalid_grant(client, login):
    grant = installed(client, login)
    login.revoke_refresh_tokens()  # an admin revoked the app in Setup
    with pytest.raises(GrantRefused) as refused:
        client.refresh(grant)
    assert refused.value.error == "invalid_grant"
    assert refused.value.description == "expired access/refresh token"


def test_revoke_ends_the_refresh_token_and_its_access_tokens(client, login):
    grant = installed(client, login)
    client.revoke(grant)
    assert not login.live(grant.access_token) and login.calls["revoke"] == 1
    with pytest.raises(GrantRefused, match="invalid_grant"):
        client.refresh(grant)
    client.revoke(grant)  # already revoked (400 invalid_token): nothing left to do
    assert login.calls["revoke"] == 2


def test_without_the_refresh_token_scope_the_install_is_refused_saying_which_scope(login):
    client = client_for(login, salesforce_scopes=["api"])
    code, verifier = approved_code(client, login)
    with pytest.raises(GrantRefused) as refused:
        client.exchange(code=code, redirect_uri=CALLBACK, code_verifier=verifier)
    assert refused.value.error == "no_refresh_token" and "refresh_token" in str(refused.value)


def test_a_token_the_identity_service_refuses_is_no_install(client, login):
    code, verifier = approved_code(client, login)
    login.session_seconds = 0  # every access token is dead on arrival
    with pytest.raises(GrantRefused) as refused:
        client.exchange(code=code, redirect_uri=CALLBACK, code_verifier=verifier)
    assert refused.value.error == "identity_refused" and "403" in str(refused.value)
