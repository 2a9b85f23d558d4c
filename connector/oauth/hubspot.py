"""HubSpot's OAuth (a public app): the install URL, the token endpoint (authorization code and
refresh token grants) and revocation, on HubSpot's date-versioned OAuth API (API_NOTES F: the
v1 endpoints are deprecated on 2027-02-16, so none is used here).

Plain `requests`, not requests-oauthlib's OAuth2Session: HubSpot has no PKCE, its token answer
carries what oauthlib does not read (`hubId`, the portal), refusals come in two shapes (RFC
6749 `error`/`error_description`, and the legacy `status: BAD_REFRESH_TOKEN`) that we must tell
apart from network failures ourselves, and oauthlib would refuse the http:// loopback fakes
the tests use unless a process-wide environment variable relaxed it. Three form posts are
clearer written out."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import requests

from crm_renewals.connector.config import AppConfig
from crm_renewals.connector.errors import ConfigError, Problem, RetriableCrmError
from crm_renewals.connector.oauth.grants import Grant, GrantRefused

log = logging.getLogger(__name__)
CLIENT_ID_ENV, CLIENT_SECRET_ENV = "HUBSPOT_APP_CLIENT_ID", "HUBSPOT_APP_CLIENT_SECRET"
TOKEN_PATH = "/oauth/2026-03/token"
REVOKE_PATH = "/oauth/2026-03/token/revoke"
#: the legacy refusal shape HubSpot still answers (API_NOTES F), read as RFC 6749's invalid_grant
LEGACY_ERRORS = {"BAD_REFRESH_TOKEN": "invalid_grant", "BAD_AUTH_CODE": "invalid_grant"}
TIMEOUT_S = 30


def app_credentials(env: Mapping[str, str], id_env: str, secret_env: str) -> tuple[str, str]:
    """The app's client id and secret from the environment; a ConfigError naming what is unset."""
    found = {name: (env.get(name) or "").strip() for name in (id_env, secret_env)}
    missing = [name for name, value in found.items() if not value]
    if missing:
        raise ConfigError(
            [
                Problem(
                    name,
                    "not set: the CRM app's credentials (README: Connections, registering the "
                    "app) are needed to connect by OAuth",
                    "environment",
                )
                for name in missing
            ]
        )
    return found[id_env], found[secret_env]


class HubSpotOAuth:
    """The HubSpot public app's OAuth client (connector.oauth.grants.Provider)."""

    crm = "hubspot"
    uses_pkce = False

    def __init__(
        self,
        base: AppConfig,
        env: Mapping[str, str],
        *,
        session: Any = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self.clock = clock
        self.settings = base.oauth
        self.base_url = base.hubspot.base_url.rstrip("/")
        self.timeout = min(base.hubspot.timeout_seconds, TIMEOUT_S)
        self.client_id, self._secret = app_credentials(env, CLIENT_ID_ENV, CLIENT_SECRET_ENV)
        self.http = session or requests.Session()

    def __repr__(self) -> str:
        return f"HubSpotOAuth(client_id={self.client_id!r})"

    def authorize_url(self, *, redirect_uri: str, state: str, code_challenge: str | None) -> str:
        params = {
            "client_id": self.client_id,
            "scope": " ".join(self.settings.hubspot_scopes),
            "redirect_uri": redirect_uri,
            "state": state,
        }
        if self.settings.hubspot_optional_scopes:
            params["optional_scope"] = " ".join(self.settings.hubspot_optional_scopes)
        return f"{self.settings.hubspot_authorize_url}?{urlencode(params)}"

    def exchange(self, *, code: str, redirect_uri: str, code_verifier: str | None) -> Grant:
        data = self._token(
            {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
        )
        hub = data.get("hubId", data.get("hub_id"))
        if hub in (None, ""):
            raise GrantRefused("invalid_response", "HubSpot's token answer names no portal (hubId)")
        return self._grant(data, str(hub), redirect_uri, scopes=())

    def refresh(self, grant: Grant) -> Grant:
        if not grant.refresh_token:
            raise GrantRefused("invalid_grant", "no refresh token stored: connect again")
        form = {"grant_type": "refresh_token", "refresh_token": grant.refresh_token}
        redirect_uri = grant.extra.get("redirect_uri")
        if redirect_uri:
            form["redirect_uri"] = redirect_uri
        data = self._token(form)
        fresh = self._grant(data, grant.external_id, redirect_uri, scopes=grant.scopes)
        if fresh.refresh_token is None:  # kept unless HubSpot hands out another
            fresh = dataclasses.replace(fresh, refresh_token=grant.refresh_token)
        return fresh

    def revoke(self, grant: Grant) -> None:
        token = grant.refresh_token or grant.access_token
        hint = "refresh_token" if grant.refresh_token else "access_token"
        form = {"token": token, "token_type_hint": hint}
        self._post(REVOKE_PATH, form, "revoke")

    # ------------------------------------------------------------------ wire

    def _token(self, form: dict[str, str]) -> dict[str, Any]:
        data = self._post(TOKEN_PATH, form, form["grant_type"])
        if not isinstance(data, dict) or not data.get("access_token"):
            raise GrantRefused("invalid_response", "HubSpot's token answer has no access_token")
        return data

    def _post(self, path: str, form: dict[str, str], what: str) -> Any:
        """A form post with the app's credentials; its JSON answer. Refusals -> GrantRefused,
        the network, 429 and 5xx -> RetriableCrmError (the form is never logged)."""
        body = {**form, "client_id": self.client_id, "client_secret": self._secret}
        try:
            resp = self.http.post(self.base_url + path, data=body, timeout=self.timeout)
        except requests.RequestException as exc:
            raise RetriableCrmError(
                f"HubSpot OAuth {what}: {type(exc).__name__} (network)", system="hubspot"
            ) from None
        try:
            data = resp.json() if resp.content else {}
        except ValueError:
            data = {}
        if resp.status_code == 429 or resp.status_code >= 500:
            raise RetriableCrmError(
                f"HubSpot OAuth {what}: HTTP {resp.status_code}",
                system="hubspot",
                status=resp.status_code,
            )
        if resp.status_code >= 400:
            raise refusal(data, resp.status_code)
        return data

    def _grant(
        self, data: dict[str, Any], hub: str, redirect_uri: str | None, scopes: tuple[str, ...]
    ) -> Grant:
        expires = data.get("expires_in")
        expires_at = None
        if expires not in (None, ""):
            expires_at = self.clock() + timedelta(seconds=float(expires))
        granted = data.get("scopes") or data.get("scope") or scopes or self.settings.hubspot_scopes
        if isinstance(granted, str):
            granted = granted.split()
        return Grant(
            access_token=str(data["access_token"]),
            refresh_token=data.get("refresh_token") or None,
            expires_at=expires_at,
            external_id=hub,
            scopes=tuple(str(s) for s in granted),
            extra={"redirect_uri": redirect_uri} if redirect_uri else {},
        )


def refusal(data: Any, status: int) -> GrantRefused:
    """A token endpoint's refusal: RFC 6749 `error`, else HubSpot's legacy `status`."""
    data = data if isinstance(data, dict) else {}
    if data.get("error"):
        return GrantRefused(str(data["error"]), str(data.get("error_description") or "")[:300])
    legacy = str(data.get("status") or "")
    if legacy in LEGACY_ERRORS:
        return GrantRefused(LEGACY_ERRORS[legacy], f"{legacy}: {data.get('message') or ''}"[:300])
    return GrantRefused("invalid_request", f"HTTP {status} {str(data.get('message') or '')[:200]}")
