"""Salesforce's login server on loopback: the OAuth 2.0 web-server flow with PKCE, refresh,
identity and revocation, as unkind as the real one.

Served on http://127.0.0.1:PORT (tests/fakes/loopback.py) (tests that also mock the org with
`responses` let it through: `rsps.add_passthru("http://127.0.0.1")`). The org it issues tokens
for is tests/fakes/salesforce_org.py's FakeOrg (instance https://fake.my.salesforce.com); a
FakeOrg built with `sessions=login.live` accepts exactly the access tokens issued here that are
still live, and answers 401 INVALID_SESSION_ID to the rest.

What it holds to (Salesforce's documentation; shared/API_NOTES.md section F):
- authorize: response_type=code, the connected app's consumer key and a registered callback URL
  (else an error page, never a redirect: RFC 6749 4.1.2.1); "Require PKCE" on, so a missing
  code_challenge or a method other than S256 is refused; 302 to redirect_uri?code&state, or
  ?error=access_denied&state when the user denies (switch `deny`).
- token, authorization_code: the consumer secret checked; codes single use and expiring after 15
  minutes ("invalid authorization code" / "expired authorization code", invalid_grant); the
  redirect_uri of the authorize request; the code_verifier against the challenge: a challenge
  without a verifier -> invalid_grant, a verifier that does not match -> invalid_request (REST
  API guide, web server flow: "If the code_challenge value isn't valid or doesn't match, the
  login fails with the invalid_request error code").
- token answers: access_token, refresh_token (for a code, if the refresh_token or
  offline_access scope was granted; for a refresh, on rotation only), scope,
  instance_url, id (the identity URL /id/<orgId>/<userId>), token_type, scope, issued_at (ms) and
  signature = base64 HMAC-SHA256 of id + issued_at keyed with the consumer secret. No
  expires_in: an access token lives for the org's session timeout (`session_seconds`, or
  `expire_access_tokens()`).
- token, refresh_token: a new access token; with refresh token rotation (`rotate`) a new
  refresh token too and the old one invalidated; a revoked, rotated-out or unknown refresh token
  -> 400 invalid_grant "expired access/refresh token".
- identity: GET /id/<org>/<user> with a live bearer token of that user -> organization_id,
  user_id, ...; else 403 Bad_OAuth_Token.
- revoke: POST token=<refresh or access token>; a refresh token takes its access tokens with
  it; 200, or 400 invalid_token.
`calls` counts requests per endpoint ("authorize", "token:authorization_code",
"token:refresh_token", "identity", "revoke").
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlencode, urlsplit

from tests.fakes.loopback import LoopbackServer, serve
from tests.fakes.salesforce_org import INSTANCE

CLIENT_ID = "3MVG9FAKE.consumer.key"
CLIENT_SECRET = "FAKE-CONSUMER-SECRET-0123456789"
ORG_ID = "00DFK0000000001AAA"
USER_ID = "005FK0000000001AAA"
CALLBACK = "http://localhost/oauth/salesforce/callback"
CODE_SECONDS = 15 * 60
EXPIRED = "expired access/refresh token"


@dataclass
class _Code:
    client_id: str
    redirect_uri: str
    challenge: str | None
    issued: float
    scope: str
    used: bool = False


@dataclass
class _Access:
    refresh_token: str | None
    issued: float
    live: bool = True


class FakeSalesforceLogin:
    """login.salesforce.com for one connected app and one org; `start()` serves it."""

    def __init__(
        self,
        *,
        client_id: str = CLIENT_ID,
        client_secret: str = CLIENT_SECRET,
        callbacks: tuple[str, ...] = (CALLBACK,),
        org_id: str = ORG_ID,
        user_id: str = USER_ID,
        instance_url: str = f"https://{INSTANCE}",
        clock: Callable[[], float] = time.time,
    ):
        self.client_id, self.client_secret = client_id, client_secret
        self.callbacks = list(callbacks)
        self.org_id, self.user_id, self.instance_url = org_id, user_id, instance_url
        self.clock = clock
        #: the user denies access on the approval page
        self.deny = False
        #: refresh token rotation (connected app OAuth policy)
        self.rotate = False
        #: the org's session timeout; None: access tokens live until expired or revoked
        self.session_seconds: float | None = None
        #: a man in the middle: the answer's identity URL names another org after signing
        self.tamper_identity = False
        #: answers signed with this key instead of the consumer secret (a forged answer)
        self.signing_secret: str | None = None
        self.calls: Counter[str] = Counter()
        self.codes: dict[str, _Code] = {}
        self.access: dict[str, _Access] = {}
        self.refresh: dict[str, bool] = {}  # refresh token -> still good
        self.scopes_of: dict[str, str] = {}  # refresh token -> the scopes it was granted
        self.lock = threading.Lock()
        self.server: LoopbackServer | None = None

    # ------------------------------------------------------------------ test side

    def start(self) -> str:
        self.server = serve(self._handle)
        return self.url

    def stop(self) -> None:
        if self.server:
            self.server.stop()

    def __enter__(self) -> FakeSalesforceLogin:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def identity_url(self) -> str:
        return f"{self.url}/id/{self.org_id}/{self.user_id}"

    @property
    def token_calls(self) -> int:
        return sum(n for name, n in self.calls.items() if name.startswith("token:"))

    def live(self, access_token: str) -> bool:
        """Whether the org accepts `access_token` now (FakeOrg's `sessions`)."""
        with self.lock:
            entry = self.access.get(access_token)
            if entry is None or not entry.live:
                return False
            if self.session_seconds is None:
                return True
            return self.clock() - entry.issued < self.session_seconds

    def expire_access_tokens(self) -> None:
        """The org's session timeout passes for every access token issued so far."""
        with self.lock:
            for entry in self.access.values():
                entry.live = False

    def revoke_refresh_tokens(self) -> None:
        """An admin revokes the app's access in Setup (Connected Apps OAuth Usage)."""
        with self.lock:
            for token in self.refresh:
                self.refresh[token] = False
            for entry in self.access.values():
                entry.live = False

    def approve(self, authorize_url: str) -> tuple[int, dict[str, list[str]], str]:
        """What a browser gets back from `authorize_url` once the user logged in and chose
        (deny or allow): (status, query of the redirect or {}, the Location or the page)."""
        import requests

        response = requests.get(authorize_url, allow_redirects=False, timeout=5)
        location = response.headers.get("Location", "")
        if response.status_code != 302:
            return response.status_code, {}, response.text
        return 302, parse_qs(urlsplit(location).query), location

    # ------------------------------------------------------------------ wire

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        url = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length).decode() if length else ""
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        form = {k: v[0] for k, v in parse_qs(body).items()}
        with self.lock:
            if handler.command == "GET" and url.path == "/services/oauth2/authorize":
                self.calls["authorize"] += 1
                status, headers, text = self._authorize(query)
            elif handler.command == "POST" and url.path == "/services/oauth2/token":
                self.calls[f"token:{form.get('grant_type')}"] += 1
                status, headers, text = self._token(form)
            elif handler.command == "POST" and url.path == "/services/oauth2/revoke":
                self.calls["revoke"] += 1
                status, headers, text = self._revoke(form)
            elif handler.command == "GET" and url.path.startswith("/id/"):
                self.calls["identity"] += 1
                status, headers, text = self._identity(url.path, handler.headers)
            else:
                status, headers, text = 404, {}, "Not Found"
        data = text.encode()
        handler.send_response(status)
        for name, value in {"Content-Length": str(len(data)), **headers}.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)

    def _authorize(self, q: dict[str, str]) -> tuple[int, dict, str]:
        if q.get("client_id") != self.client_id:
            return _page("invalid_client_id", "client identifier invalid")
        if q.get("redirect_uri") not in self.callbacks:
            return _page("redirect_uri_mismatch", "redirect_uri must match configuration")
        back = q["redirect_uri"]
        state = {"state": q["state"]} if "state" in q else {}
        if q.get("response_type") != "code":
            return _redirect(back, error="unsupported_response_type", **state)
        if not q.get("code_challenge") or q.get("code_challenge_method") != "S256":
            return _redirect(
                back, error="invalid_request", error_description="PKCE required (S256)", **state
            )
        if self.deny:
            return _redirect(
                back, error="access_denied", error_description="end-user denied authorization"
            )
        code = "aPrx" + secrets.token_urlsafe(24)
        scope = q.get("scope") or "api"
        self.codes[code] = _Code(self.client_id, back, q["code_challenge"], self.clock(), scope)
        return _redirect(back, code=code, **state)

    def _token(self, f: dict[str, str]) -> tuple[int, dict, str]:
        if f.get("client_id") != self.client_id:
            return _refuse("invalid_client_id", "client identifier invalid")
        if f.get("client_secret") != self.client_secret:
            return _refuse("invalid_client", "invalid client credentials")
        if f.get("grant_type") == "authorization_code":
            return self._code_grant(f)
        if f.get("grant_type") == "refresh_token":
            token = f.get("refresh_token", "")
            if not self.refresh.get(token):
                return _refuse("invalid_grant", EXPIRED)
            fresh = None
            if self.rotate:  # the old one is invalidated, a new one answered
                self.refresh[token] = False
                fresh = token = self._new_refresh_token()
            return self._answer(token, refresh_token=fresh, scope=self.scopes_of.get(token, "api"))
        return _refuse("unsupported_grant_type", "grant type not supported")

    def _code_grant(self, f: dict[str, str]) -> tuple[int, dict, str]:
        code = self.codes.get(f.get("code", ""))
        if code is None or code.used:
            return _refuse("invalid_grant", "invalid authorization code")
        code.used = True  # single use, whatever follows
        if self.clock() - code.issued > CODE_SECONDS:
            return _refuse("invalid_grant", "expired authorization code")
        if f.get("redirect_uri") != code.redirect_uri:
            return _refuse("redirect_uri_mismatch", "redirect_uri must match configuration")
        verifier = f.get("code_verifier")
        if not verifier:
            return _refuse("invalid_grant", "invalid code verifier")
        digest = hashlib.sha256(verifier.encode()).digest()
        if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != code.challenge:
            return _refuse("invalid_request", "invalid code verifier")
        # a refresh token only for the refresh_token (offline_access) scope
        scopes = set(code.scope.split())
        refresh = (
            self._new_refresh_token() if {"refresh_token", "offline_access"} & scopes else None
        )
        return self._answer(refresh, refresh_token=refresh, scope=code.scope)

    def _new_refresh_token(self) -> str:
        token = "5Aep" + secrets.token_urlsafe(32)
        self.refresh[token] = True
        return token

    def _answer(
        self, refresh: str | None, refresh_token: str | None, scope: str
    ) -> tuple[int, dict, str]:
        if refresh:
            self.scopes_of[refresh] = scope
        access = f"{self.org_id[:15]}!AQ" + secrets.token_urlsafe(36)
        self.access[access] = _Access(refresh, self.clock())
        identity, issued = self.identity_url, str(int(self.clock() * 1000))
        key = (self.signing_secret or self.client_secret).encode()
        mac = hmac.new(key, (identity + issued).encode(), hashlib.sha256)
        answer = {
            "access_token": access,
            "signature": base64.b64encode(mac.digest()).decode(),
            "scope": scope,
            "instance_url": self.instance_url,
            "id": identity,
            "token_type": "Bearer",
            "issued_at": issued,
        }
        if refresh_token:
            answer["refresh_token"] = refresh_token
        if self.tamper_identity:
            answer["id"] = f"{self.url}/id/00DFK0000000999AAA/{self.user_id}"
        return 200, {"Content-Type": "application/json"}, json.dumps(answer)

    def _identity(self, path: str, headers) -> tuple[int, dict, str]:
        auth = headers.get("Authorization") or ""
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else ""
        entry = self.access.get(token)
        alive = entry is not None and entry.live
        if self.session_seconds is not None and entry is not None:
            alive = alive and self.clock() - entry.issued < self.session_seconds
        if not alive or path.rstrip("/") != f"/id/{self.org_id}/{self.user_id}":
            return 403, {"Content-Type": "text/plain"}, "Bad_OAuth_Token"
        about = {
            "id": self.identity_url,
            "asserted_user": True,
            "user_id": self.user_id,
            "organization_id": self.org_id,
            "username": "admin@acme.example",
            "display_name": "Acme Admin",
            "active": True,
            "user_type": "STANDARD",
            "urls": {"rest": f"{self.instance_url}/services/data/v{{version}}/"},
        }
        return 200, {"Content-Type": "application/json"}, json.dumps(about)

    def _revoke(self, f: dict[str, str]) -> tuple[int, dict, str]:
        token = f.get("token", "")
        if self.refresh.get(token):
            self.refresh[token] = False
            for entry in self.access.values():
                if entry.refresh_token == token:
                    entry.live = False
            return 200, {}, ""
        entry = self.access.get(token)
        if entry is not None and entry.live:
            entry.live = False
            return 200, {}, ""
        return _refuse("invalid_token", "Token was invalid")


def _refuse(error: str, description: str) -> tuple[int, dict, str]:
    body = json.dumps({"error": error, "error_description": description})
    return 400, {"Content-Type": "application/json"}, body


def _page(error: str, description: str) -> tuple[int, dict, str]:
    return 400, {"Content-Type": "text/html"}, f"<html><p>error={error}: {description}</p></html>"


def _redirect(uri: str, **query: str) -> tuple[int, dict, str]:
    return 302, {"Location": f"{uri}?{urlencode(query)}"}, ""
