"""Salesforce as a connected app: the OAuth 2.0 web-server flow with PKCE (S256), refresh and
revocation, read into a Grant whose external id is the org id (outbound messages are routed by
it) and whose instance URL is where the org's REST API lives.

Salesforce facts followed here (developer.salesforce.com / help.salesforce.com, "OAuth 2.0 Web
Server Flow for Web App Integration", "OAuth 2.0 Refresh Token Flow for Renewed Sessions",
"Identity URLs", "Revoke OAuth Tokens"; shared/API_NOTES.md section F):
- the token answer holds `access_token`, `refresh_token`, `instance_url`, `id` (the identity URL,
  https://login.salesforce.com/id/<orgId>/<userId>), `issued_at` (ms since the epoch) and
  `signature`: "Base64-encoded HMAC-SHA256 signature signed with the consumer's private key
  containing the concatenated ID and issued_at value ... used to verify that the identity URL
  wasn't modified" (REST API Developer's Guide, web server flow). The key is the consumer
  secret; every answer's signature is checked before anything of it is used.
- no `expires_in`: an access token lives as long as the org's session timeout, and an expired
  one shows as 401 INVALID_SESSION_ID (the adapter then calls `refresh`).
- with refresh token rotation on, each refresh answers a new refresh token and the old one is
  invalidated; without it no refresh token comes back and the old one stays good.
- revoking a refresh token revokes its access tokens; Salesforce answers 200, or 400 with
  `invalid_token` / `unsupported_token_type`.
- errors follow RFC 6749 (`error`, `error_description`), e.g. invalid_grant "expired
  access/refresh token".

Plain requests, not requests-oauthlib's OAuth2Session: the install spans two HTTP requests and
the code verifier lives sealed in oauth_flows between them, while OAuth2Session makes and keeps
its own verifier on the session object (pkce="S256" sets the private `_code_verifier`); oauthlib
refuses any token URL that is not https unless OAUTHLIB_INSECURE_TRANSPORT is set for the whole
process, and raises a Warning when the scopes granted differ from those asked for unless
OAUTHLIB_RELAX_TOKEN_SCOPE is set; and Salesforce's answers need checks of their own (signature,
identity) anyway. Three form posts and one GET are clearer without it.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests

from crm_renewals.connector.config import AppConfig
from crm_renewals.connector.errors import ConfigError, Problem, RetriableCrmError
from crm_renewals.connector.oauth.grants import Grant, GrantRefused

KEY_ENV = "SALESFORCE_APP_CONSUMER_KEY"
SECRET_ENV = "SALESFORCE_APP_CONSUMER_SECRET"
#: the identity URL's path: /id/<18-char org id>/<18-char user id>
IDENTITY_PATH = re.compile(r"/id/(00D[a-zA-Z0-9]{15})/(005[a-zA-Z0-9]{15})/?$")


def pkce_challenge(verifier: str) -> str:
    """RFC 7636 4.2, S256: BASE64URL(SHA256(ASCII(code_verifier))), without padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def pkce_pair() -> tuple[str, str]:
    """A fresh (code_verifier, code_challenge): 86 characters of the unreserved set (RFC 7636
    4.1 wants 43 to 128), from 64 random bytes, and its S256 challenge."""
    verifier = secrets.token_urlsafe(64)
    return verifier, pkce_challenge(verifier)


def signature_of(secret: str, identity_url: str, issued_at: str) -> str:
    """What Salesforce signs a token answer with: base64(HMAC-SHA256(secret, id + issued_at))."""
    mac = hmac.new(secret.encode(), (identity_url + issued_at).encode(), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode("ascii")


class SalesforceOAuth:
    """A Salesforce org's OAuth client for this deployment's connected app (the Provider
    protocol of connector/oauth/grants.py)."""

    crm = "salesforce"
    uses_pkce = True

    def __init__(
        self,
        base: AppConfig,
        env: Mapping[str, str],
        session: requests.Session | None = None,
    ):
        missing = [name for name in (KEY_ENV, SECRET_ENV) if not env.get(name)]
        if missing:
            raise ConfigError(
                [
                    Problem(
                        name,
                        "not set: connecting Salesforce orgs by OAuth needs the connected app's "
                        f"consumer key and secret in {KEY_ENV} and {SECRET_ENV}",
                        "environment",
                    )
                    for name in missing
                ]
            )
        self._client_id, self._secret = env[KEY_ENV], env[SECRET_ENV]
        default = f"https://{base.salesforce.domain}.salesforce.com"
        self.login_url = (base.oauth.salesforce_login_url or default).rstrip("/")
        self.scopes = tuple(base.oauth.salesforce_scopes)
        self.timeout = base.salesforce.timeout_seconds
        self.session = session or requests.Session()

    def __repr__(self) -> str:  # the secret never reaches a log through a repr
        return f"SalesforceOAuth(login_url={self.login_url!r})"

    # ------------------------------------------------------------------ the protocol

    def authorize_url(self, *, redirect_uri: str, state: str, code_challenge: str | None) -> str:
        if not code_challenge:
            raise ValueError("a Salesforce install needs a PKCE code_challenge (pkce_pair())")
        query = {
            "response_type": "code",
            "client_id": self._client_id,
            "redirect_uri": redirect_uri,
            "state": state,
            "scope": " ".join(self.scopes),
            "code_challenge": code_challenge,
            "code_challenge_method": "S256",
        }
        return f"{self.login_url}/services/oauth2/authorize?{urlencode(query)}"

    def exchange(self, *, code: str, redirect_uri: str, code_verifier: str | None) -> Grant:
        if not code_verifier:
            raise ValueError("a Salesforce install needs the PKCE code_verifier of its flow")
        answer = self._token(
            grant_type="authorization_code",
            code=code,
            redirect_uri=redirect_uri,
            code_verifier=code_verifier,
        )
        if not answer.get("refresh_token"):
            raise GrantRefused(
                "no_refresh_token",
                "Salesforce gave no refresh token: the connected app's OAuth scopes must "
                "include refresh_token (Perform requests at any time)",
            )
        org_id, user_id = self._identity(answer["id"], answer["access_token"])
        return Grant(
            access_token=answer["access_token"],
            refresh_token=answer["refresh_token"],
            expires_at=None,
            external_id=org_id,
            instance_url=answer["instance_url"],
            scopes=tuple(str(answer.get("scope") or "").split()),
            extra={"id_url": answer["id"], "user_id": user_id},
        )

    def refresh(self, grant: Grant) -> Grant:
        if not grant.refresh_token:
            raise GrantRefused("invalid_grant", "no refresh token is kept for this org")
        answer = self._token(grant_type="refresh_token", refresh_token=grant.refresh_token)
        org_id, _ = _ids(answer["id"])
        if org_id != grant.external_id:
            raise GrantRefused(
                "invalid_identity",
                f"the refreshed token is of org {org_id}, not {grant.external_id}",
            )
        return dataclasses.replace(
            grant,
            access_token=answer["access_token"],
            # rotation: a new refresh token replaces the old (now invalid); else keep it
            refresh_token=answer.get("refresh_token") or grant.refresh_token,
            instance_url=answer["instance_url"],
            scopes=tuple(str(answer.get("scope") or "").split()) or grant.scopes,
            extra={**grant.extra, "id_url": answer["id"]},
        )

    def revoke(self, grant: Grant) -> None:
        token = grant.refresh_token or grant.access_token
        response = self._send("POST", "/services/oauth2/revoke", data={"token": token})
        if response.status_code == 200:
            return
        error, description = _error_of(response)
        if error == "invalid_token":
            return  # already revoked or expired at Salesforce: what revoking wants
        raise GrantRefused(error, description)

    # ------------------------------------------------------------------ wire

    def _token(self, **form: str) -> dict[str, Any]:
        """A token answer, its signature checked."""
        form = {**form, "client_id": self._client_id, "client_secret": self._secret}
        response = self._send("POST", "/services/oauth2/token", data=form)
        if response.status_code != 200:
            raise GrantRefused(*_error_of(response))
        try:
            answer = response.json()
        except ValueError:
            answer = None
        need = ("access_token", "instance_url", "id", "issued_at", "signature")
        if not isinstance(answer, dict) or any(not isinstance(answer.get(k), str) for k in need):
            raise GrantRefused(
                "invalid_response",
                f"Salesforce's token answer lacks one of {', '.join(need)}",
            )
        expected = signature_of(self._secret, answer["id"], answer["issued_at"])
        if not hmac.compare_digest(expected.encode(), answer["signature"].encode()):
            raise GrantRefused(
                "invalid_signature",
                "the token answer's signature does not match its identity URL and issue time "
                f"(signed with another consumer secret than {SECRET_ENV}, or altered)",
            )
        if urlsplit(answer["instance_url"]).scheme != "https":
            raise GrantRefused("invalid_response", "the instance URL is not https")
        if not isinstance(answer.get("refresh_token") or "", str):
            raise GrantRefused("invalid_response", "the refresh token is not a string")
        return answer

    def _identity(self, identity_url: str, access_token: str) -> tuple[str, str]:
        """(org id, user id) as the identity service tells them for the new token, checked
        against the (signed) identity URL."""
        org_id, user_id = _ids(identity_url)
        response = self._send(
            "GET", identity_url, headers={"Authorization": f"Bearer {access_token}"}
        )
        if response.status_code != 200:
            raise GrantRefused(
                "identity_refused",
                f"Salesforce's identity service answered {response.status_code} for the new token",
            )
        try:
            about = response.json()
        except ValueError:
            about = None
        about = about if isinstance(about, dict) else {}
        told = (about.get("organization_id"), about.get("user_id"))
        if told != (org_id, user_id):
            raise GrantRefused(
                "invalid_identity",
                f"the identity service names org {told[0]} user {told[1]}, "
                f"the token answer {org_id} {user_id}",
            )
        return org_id, user_id

    def _send(self, method: str, target: str, **kwargs: Any) -> requests.Response:
        url = target if target.startswith("http") else self.login_url + target
        try:
            response = self.session.request(method, url, timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise RetriableCrmError(
                f"cannot reach Salesforce at {urlsplit(url).netloc}: {type(exc).__name__}",
                system="salesforce",
            ) from None
        if response.status_code == 429 or response.status_code >= 500:
            raise RetriableCrmError(
                f"Salesforce answered {response.status_code} at {urlsplit(url).path}",
                system="salesforce",
                status=response.status_code,
            )
        return response


def _ids(identity_url: str) -> tuple[str, str]:
    found = IDENTITY_PATH.search(urlsplit(identity_url).path)
    if not found:
        raise GrantRefused(
            "invalid_identity", f"not a Salesforce identity URL: {identity_url[:120]}"
        )
    return found.group(1), found.group(2)


def _error_of(response: requests.Response) -> tuple[str, str]:
    """RFC 6749 5.2's (error, error_description) of a refusal; its status if it is not JSON."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return body["error"], str(body.get("error_description") or "")
    return f"http_{response.status_code}", response.text[:200]
