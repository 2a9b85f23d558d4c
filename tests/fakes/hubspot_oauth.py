"""The OAuth side of FakeHubSpot: a public app's install page, its token endpoint and revocation,
and the access tokens it issues (the fake's CRM API accepts them until they expire).

As unkind as HubSpot and RFC 6749 are (API_NOTES F):
- the install URL's `scope` must be exactly the app's configured scopes, the redirect URI one
  registered with the app (HubSpot refuses an install whose scopes do not match the app's);
- codes are single-use and expire; a replayed code is `invalid_grant` and the tokens issued
  for it are revoked (RFC 6749 4.1.2: "MUST deny ... SHOULD revoke all tokens previously
  issued based on that authorization code");
- access tokens follow `expires_in` (30 minutes by default, settable); after it a CRM request
  answers 401 EXPIRED_AUTHENTICATION (HubSpot: a 401 is not a refresh signal);
- a revoked or unknown refresh token is `invalid_grant` (or the legacy `status:
  BAD_REFRESH_TOKEN` shape when `legacy_errors` is set); revoking an unknown token is not an
  error (RFC 7009 2.2)."""

from __future__ import annotations

import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode

from crm_renewals.connector.config_sections import HUBSPOT_OPTIONAL_SCOPES, HUBSPOT_SCOPES

CLIENT_ID = "fake-hubspot-app-client-id"
CLIENT_SECRET = "fake-hubspot-app-client-secret"
AUTHORIZE_PATH = "/oauth/authorize"
TOKEN_PATH = "/oauth/2026-03/token"
REVOKE_PATH = "/oauth/2026-03/token/revoke"
#: RFC 6749 10.5: short-lived codes (at most 10 minutes recommended)
CODE_SECONDS = 300


@dataclass
class Code:
    portal: str
    redirect_uri: str
    scopes: tuple[str, ...]
    expires: float
    used: bool = False
    refresh_tokens: list[str] = field(default_factory=list)


@dataclass
class Issued:
    portal: str
    scopes: tuple[str, ...]
    revoked: bool = False


class FakeHubSpotOAuth:
    """`fake.oauth`: the public app's registration, the tokens it issued, and switches."""

    def __init__(self, clock: Callable[[], float] = time.time):
        self.clock = clock
        self.client_id, self.client_secret = CLIENT_ID, CLIENT_SECRET
        self.scopes = set(HUBSPOT_SCOPES)
        self.optional = set(HUBSPOT_OPTIONAL_SCOPES)
        self.redirect_uris: set[str] = set()
        #: the portal an admin approving now belongs to
        self.portal = "62515"
        self.expires_in = 1800
        #: the admin clicks "Cancel" on the install page: error=access_denied
        self.deny = False
        self.legacy_errors = False
        self.codes: dict[str, Code] = {}
        self.refresh_tokens: dict[str, Issued] = {}
        #: access token -> (portal, expiry, refresh token it came from)
        self.access_tokens: dict[str, tuple[str, float, str]] = {}
        self.token_calls: Counter[str] = Counter()
        self.revoked: list[str] = []
        #: seconds the token endpoint takes to answer (concurrent refreshes overlap)
        self.token_delay = 0.0
        self.lock = threading.RLock()

    # ------------------------------------------------------------------ admin

    def register(self, redirect_uri: str) -> None:
        self.redirect_uris.add(redirect_uri)

    def valid_access_token(self, token: str) -> tuple[bool, str]:
        """Whether the CRM API takes `token` now, and HubSpot's reason when it does not."""
        with self.lock:
            found = self.access_tokens.get(token)
            if found is None:
                return False, "INVALID_AUTHENTICATION"
            _portal, expires, refresh = found
            if self.refresh_tokens[refresh].revoked:
                return False, "INVALID_AUTHENTICATION"
            if self.clock() >= expires:
                return False, "EXPIRED_AUTHENTICATION"
            return True, ""

    def revoke_all(self, portal: str | None = None) -> None:
        """The app uninstalled from the portal (or every portal): its refresh tokens die."""
        with self.lock:
            for issued in self.refresh_tokens.values():
                if portal is None or issued.portal == portal:
                    issued.revoked = True

    # ------------------------------------------------------------------ HTTP

    def route(self, method: str, path: str, query: str, raw: bytes) -> tuple[int, Any, dict]:
        """(status, JSON body or None, headers) of an OAuth request."""
        if path == TOKEN_PATH and self.token_delay:
            time.sleep(self.token_delay)
        with self.lock:
            if method == "GET" and path == AUTHORIZE_PATH:
                return self._authorize(parse_qs(query))
            form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
            if method == "POST" and path == TOKEN_PATH:
                self.token_calls[form.get("grant_type", "?")] += 1
                return self._token(form)
            if method == "POST" and path == REVOKE_PATH:
                return self._revoke(form)
        return 404, {"status": "error", "message": f"no route {method} {path}"}, {}

    def _authorize(self, q: dict[str, list[str]]) -> tuple[int, Any, dict]:
        one = {k: v[0] for k, v in q.items()}
        if one.get("client_id") != self.client_id:
            return 400, {"status": "error", "message": "Invalid client_id"}, {}
        if one.get("redirect_uri") not in self.redirect_uris:
            return 400, {"status": "error", "message": "redirect_uri does not match the app"}, {}
        asked = set((one.get("scope") or "").split())
        if asked != self.scopes:
            return 400, {"status": "error", "message": "scope mismatch with the app's settings"}, {}
        optional = set((one.get("optional_scope") or "").split())
        if not optional <= self.optional:
            return 400, {"status": "error", "message": "optional_scope not in the app"}, {}
        answer = {"state": one.get("state", "")}
        if self.deny:
            answer.update(error="access_denied", error_description="The user denied the request")
        else:
            code = f"code-{secrets.token_urlsafe(12)}"
            granted = tuple(sorted(asked | optional))
            self.codes[code] = Code(
                self.portal, one["redirect_uri"], granted, self.clock() + CODE_SECONDS
            )
            answer["code"] = code
        return 302, None, {"Location": f"{one['redirect_uri']}?{urlencode(answer)}"}

    def _token(self, form: dict[str, str]) -> tuple[int, Any, dict]:
        if (form.get("client_id"), form.get("client_secret")) != (
            self.client_id,
            self.client_secret,
        ):
            return self._error("invalid_client", "missing or unknown client_id/client_secret")
        grant = form.get("grant_type")
        if grant == "authorization_code":
            return self._code(form)
        if grant == "refresh_token":
            issued = self.refresh_tokens.get(form.get("refresh_token", ""))
            if issued is None or issued.revoked:
                if self.legacy_errors:
                    body = {"status": "BAD_REFRESH_TOKEN", "message": "missing or unknown token"}
                    return 400, body, {}
                return self._error("invalid_grant", "refresh token revoked or unknown")
            return 200, self._issue(issued.portal, issued.scopes, form["refresh_token"]), {}
        return self._error("unsupported_grant_type", f"grant_type {grant!r}")

    def _code(self, form: dict[str, str]) -> tuple[int, Any, dict]:
        code = self.codes.get(form.get("code", ""))
        if code is None:
            return self._error("invalid_grant", "authorization code unknown")
        if code.used:
            for refresh in code.refresh_tokens:
                self.refresh_tokens[refresh].revoked = True
            return self._error("invalid_grant", "authorization code already used")
        code.used = True
        if self.clock() >= code.expires:
            return self._error("invalid_grant", "authorization code expired")
        if form.get("redirect_uri") != code.redirect_uri:
            return self._error("invalid_grant", "redirect_uri does not match the authorization")
        refresh = f"rt-{secrets.token_urlsafe(16)}"
        self.refresh_tokens[refresh] = Issued(code.portal, code.scopes)
        code.refresh_tokens.append(refresh)
        return 200, self._issue(code.portal, code.scopes, refresh), {}

    def _issue(self, portal: str, scopes: tuple[str, ...], refresh: str) -> dict[str, Any]:
        access = f"at-{secrets.token_urlsafe(16)}"
        self.access_tokens[access] = (portal, self.clock() + self.expires_in, refresh)
        return {
            "token_type": "bearer",
            "access_token": access,
            "refresh_token": refresh,
            "expires_in": self.expires_in,
            "hubId": int(portal),
            "scopes": list(scopes),
        }

    def _revoke(self, form: dict[str, str]) -> tuple[int, Any, dict]:
        if (form.get("client_id"), form.get("client_secret")) != (
            self.client_id,
            self.client_secret,
        ):
            return self._error("invalid_client", "missing or unknown client_id/client_secret")
        token = form.get("token", "")
        self.revoked.append(token)
        if token in self.refresh_tokens:
            self.refresh_tokens[token].revoked = True
        elif token in self.access_tokens:
            self.refresh_tokens[self.access_tokens[token][2]].revoked = True
        return 200, None, {}

    @staticmethod
    def _error(error: str, description: str) -> tuple[int, Any, dict]:
        return 400, {"error": error, "error_description": description}, {}
