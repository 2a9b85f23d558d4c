"""Whatever Salesforce's login server answers (any status, any body), the OAuth client ends in a
Grant, a GrantRefused or a RetriableCrmError: never another exception, never a secret in the
message."""

from __future__ import annotations

import json

import responses
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm_renewals.connector.config import AppConfig
from crm_renewals.connector.errors import RetriableCrmError
from crm_renewals.connector.oauth.grants import Grant, GrantRefused
from crm_renewals.connector.oauth.salesforce import SalesforceOAuth, signature_of
from tests.oauth_salesforce.conftest import APP_ENV, CLIENT_SECRET

LOGIN = "https://login.example.test"
IDENTITY = f"{LOGIN}/id/00DFK0000000001AAA/005FK0000000001AAA"
KEYS = ("access_token", "refresh_token", "instance_url", "id", "issued_at", "signature", "scope")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
statuses = st.sampled_from([200, 200, 200, 302, 400, 401, 403, 404, 429, 500, 503])
token_answers = st.dictionaries(st.sampled_from(KEYS), json_values | st.text(), max_size=7)
bodies = st.one_of(
    token_answers.map(json.dumps), json_values.map(json.dumps), st.binary(max_size=200)
)


def client() -> SalesforceOAuth:
    return SalesforceOAuth(AppConfig(oauth={"salesforce_login_url": LOGIN}), APP_ENV)


def ends_well(call) -> Grant | None:
    try:
        return call()
    except (GrantRefused, RetriableCrmError) as exc:
        assert CLIENT_SECRET not in str(exc)
        return None


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(status=statuses, body=bodies)
def test_any_token_answer_is_a_grant_or_a_clear_refusal(status, body):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.post(f"{LOGIN}/services/oauth2/token", status=status, body=body)
        rsps.get(IDENTITY, status=200, json={})
        rsps.post(f"{LOGIN}/services/oauth2/revoke", status=status, body=body)
        oauth = client()
        ends_well(lambda: oauth.exchange(code="c", redirect_uri="https://x/cb", code_verifier="v"))
        grant = Grant("a", "r", None, "00DFK0000000001AAA", "https://i.example")
        ends_well(lambda: oauth.refresh(grant))
        ends_well(lambda: oauth.revoke(grant))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(status=statuses, body=bodies)
def test_any_identity_answer_to_a_signed_token_is_the_org_or_a_clear_refusal(status, body):
    signed = {
        "access_token": "00DFK!AQ-token",
        "refresh_token": "5Aep-refresh",
        "instance_url": "https://fake.my.salesforce.com",
        "id": IDENTITY,
        "issued_at": "1795000000000",
        "signature": signature_of(CLIENT_SECRET, IDENTITY, "1795000000000"),
    }
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.post(f"{LOGIN}/services/oauth2/token", json=signed)
        rsps.get(IDENTITY, status=status, body=body)
        oauth = client()
        grant = ends_well(
            lambda: oauth.exchange(code="c", redirect_uri="https://x/cb", code_verifier="v")
        )
    if grant is not None:  # only when the identity service named the signed org and user
        assert status == 200 and grant.external_id == "00DFK0000000001AAA"
