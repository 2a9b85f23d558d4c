"""The one place that calls hubspot-api-client: the client and its token, the portal's rate-limit
buckets (connector.adapters.hubspot.limits), the retry policy (connector.retry) and the
status-to-error table that turns the library's ApiExceptions into our error tree.

The token is a private app's (a string) or an OAuth connection's (a callable answering the
current access token, connector.oauth.tokens.TokenSource.access_token): it is asked before
each request, so a token refreshed ahead of its expiry reaches every cached API client. A 401
is never taken as a reason to refresh (HubSpot's usage guidelines, API_NOTES E)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import urllib3
from urllib3.util.retry import Retry

from crm_renewals.connector.adapters.hubspot.limits import limits_for, portal_key
from crm_renewals.connector.config_sections import HubspotSettings
from crm_renewals.connector.errors import (
    ApiLimitReached,
    CrmError,
    FatalCrmError,
    RecordRejectedError,
    RetriableCrmError,
)
from crm_renewals.connector.retry import retrying

if TYPE_CHECKING:
    from crm_renewals.connector.adapters.shared_limits import SharedLimits

LIMIT_HEADER = "x-hubspot-ratelimit-"
#: What the private app needs (tasks: HubSpot's tasks API asks for the contacts scopes).
SCOPES = (
    "crm.objects.owners.read, crm.objects.companies.read/.write, crm.objects.contacts.read/"
    ".write, crm.objects.deals.read/.write, crm.objects.line_items.read/.write, "
    "crm.schemas.deals.read/.write, crm.schemas.companies.read/.write, crm.schemas.contacts.read, "
    "crm.schemas.line_items.read (and crm.objects.custom.read for contracts in a custom object)"
)
#: Statuses worth another try, with the wait HubSpot asks for when it names none (423: 2 s).
RETRIABLE = {423: 2.0, 429: None, 477: None}
#: What an HTTP status means (see `error_class` for the rest).
ERRORS_BY_STATUS: dict[int, type[CrmError]] = {
    401: FatalCrmError,
    403: FatalCrmError,
    404: CrmError,
    **{status: RetriableCrmError for status in RETRIABLE},
}


class HubSpotTransport:
    """Every HTTP request of the adapter: a token from the bucket, counted, translated, retried."""

    def __init__(
        self,
        settings: HubspotSettings,
        token: str | Callable[[], str],
        *,
        retry_attempts: int = 5,
        retry_max_wait: float = 30.0,
        interval: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
        portal: str | None = None,
        shared: SharedLimits | None = None,
    ):
        """`shared`: the Redis every process shares the portal's buckets through (None: this
        process's own buckets)."""
        from hubspot import HubSpot

        self.settings = settings
        self.base_url = settings.base_url.rstrip("/")
        #: an OAuth connection's token source (None: a private app's fixed token)
        self.token_source = None if isinstance(token, str) else token
        self.oauth = self.token_source is not None
        # the portal's buckets: an OAuth token changes every half hour, its portal id does not
        key = f"portal:{portal}" if portal else (token if isinstance(token, str) else "oauth")
        # no hidden urllib3 retries: every attempt is ours, counted and rate limited
        self.client = HubSpot(
            access_token=token if isinstance(token, str) else None,
            host=self.base_url,
            retry=Retry(total=0, raise_on_status=False),
        )
        lim = settings.limits
        self.limits = limits_for(
            portal_key(self.base_url, key),
            lim.burst,
            lim.search_per_second,
            interval=interval,
            sleep=sleep,
            shared=shared,
            lease=settings.timeout_seconds,
        )
        self.api_calls = 0
        #: waits between attempts (the buckets keep the sleep they were made with)
        self.sleep = sleep
        self.retry = (retry_attempts, retry_max_wait)
        self._apis: dict[str, Any] = {}
        self.last_limits: dict[str, str] = {}  # X-HubSpot-RateLimit-* of the last answer

    def authorize(self) -> None:
        """OAuth: the current access token (refreshed first when due) on the client and on
        every cached API's configuration, when it changed since the last request."""
        if self.token_source is None:
            return
        token = self.token_source()
        if token == self.client.access_token:
            return
        self.client.access_token = token
        for api in self._apis.values():
            api.api_client.configuration.access_token = token

    def api(self, path: str) -> Any:
        """A cached API object, e.g. api("objects.batch_api"); the client builds one per access."""
        found = self._apis.get(path)
        if found is None:
            found = self.client.crm
            for part in path.split("."):
                found = getattr(found, part)
            self._apis[path] = found
        return found

    def call(self, what: str, fn: Callable, *args, search: bool = False, **kw) -> dict:
        """One HTTP request, retried on 429, 5xx and timeouts; its JSON answer."""
        bucket = self.limits.search if search else self.limits.general

        def once() -> dict:
            self.authorize()  # a refresh that fails for the network is retried here too
            held = bucket.acquire()
            self.api_calls += 1
            try:
                resp = fn(
                    *args,
                    _preload_content=False,
                    _request_timeout=self.settings.timeout_seconds,
                    **kw,
                )
                data = resp.data
                resp.release_conn()  # unpreloaded: hand the connection back to the pool
                if not search:  # search answers carry no rate-limit headers
                    self.last_limits = {
                        k: v for k, v in resp.headers.items() if k.lower().startswith(LIMIT_HEADER)
                    }
                return json.loads(data) if data else {}
            except urllib3.exceptions.HTTPError as exc:
                raise timeout_error(what, exc) from exc
            except Exception as exc:
                if not hasattr(exc, "status"):
                    raise
                err = translate(what, exc, bucket.interval, oauth=self.oauth)
                if isinstance(err, RetriableCrmError) and err.status == 429:
                    bucket.pause(err.retry_after or bucket.interval)
                raise err from exc
            finally:
                bucket.release(held)

        attempts, max_wait = self.retry
        try:
            return retrying(attempts, max_wait, sleep=self.sleep)(once)
        except RetriableCrmError as err:
            # retried here, per request, already: the run stops, the next one resumes
            raise FatalCrmError(
                f"{err} (still failing after {attempts} attempts; the next run resumes)",
                system=err.system,
                status=err.status,
                code=err.code,
                body=err.body,
            ) from err

    def close(self) -> None:
        closing = getattr(self.token_source, "close", None)  # a TokenSource's registry store
        if closing is not None:
            closing()
        for api in self._apis.values():
            pool = getattr(getattr(api.api_client, "rest_client", None), "pool_manager", None)
            if pool is not None:
                pool.clear()
        self._apis.clear()


def translate(what: str, exc: Any, window: float = 10.0, *, oauth: bool = False) -> CrmError:
    """A vendor ApiException (one class per sub-package) -> our error tree, by status (`oauth`:
    the token is an OAuth connection's, and 401/403 say how to fix that instead)."""
    status = int(getattr(exc, "status", 0) or 0)
    raw = exc.body.decode("utf-8", "replace") if isinstance(exc.body, bytes) else exc.body
    try:
        body = json.loads(raw or "{}")
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}  # every field of an error is optional
    headers = getattr(exc, "headers", None) or {}
    message = body.get("message") or getattr(exc, "reason", "") or "no message"
    kw = dict(
        system="hubspot",
        status=status,
        code=body.get("category") or body.get("errorType"),
        request_id=body.get("correlationId") or body.get("requestId"),
        body=raw,
    )
    text = f"HubSpot {what}: HTTP {status} {message}"
    cls = error_class(status, body)
    if status in (401, 403) and oauth:
        return FatalCrmError(
            f"{text}. HubSpot refused the connection's OAuth access token (app uninstalled, or "
            "a scope not granted): reconnect it (Connections > Reconnect in the console)",
            **kw,
        )
    if status == 401:
        return FatalCrmError(
            f"HubSpot refused the access token in HUBSPOT_ACCESS_TOKEN ({message}). Set it to "
            f"a private app token with the scopes: {SCOPES}",
            **kw,
        )
    if status == 403:
        return FatalCrmError(
            f"{text}. The app behind HUBSPOT_ACCESS_TOKEN lacks a scope; it needs: {SCOPES}", **kw
        )
    if cls is ApiLimitReached:
        return ApiLimitReached(f"{text}: the portal's daily API limit is used up", **kw)
    if cls is RetriableCrmError:
        return RetriableCrmError(text, retry_after=_retry_after(status, headers, window), **kw)
    return cls(text, **kw)


def error_class(status: int, body: dict) -> type[CrmError]:
    """ERRORS_BY_STATUS, a 429's policyName refining it (DAILY: the day's allowance is spent);
    other 5xx and no answer (status 0) are retriable, other 4xx one record's refusal."""
    if status == 429 and body.get("policyName") == "DAILY":
        return ApiLimitReached
    found = ERRORS_BY_STATUS.get(status)
    if found is not None:
        return found
    if status >= 500 or status == 0:
        return RetriableCrmError
    return RecordRejectedError if 400 <= status < 500 else CrmError


def _retry_after(status: int, headers: Any, window: float) -> float | None:
    """Retry-After if given, else the rate-limit interval header, else the budget's window
    (search 429s carry no rate-limit headers)."""
    for name in ("Retry-After", "retry-after"):
        value = headers.get(name)
        if value:
            try:
                return float(value)
            except ValueError:
                pass
    if status == 429:
        interval = headers.get("X-HubSpot-RateLimit-Interval-Milliseconds")
        return float(interval) / 1000 if interval else window
    return RETRIABLE.get(status)


def timeout_error(what: str, exc: Exception) -> RetriableCrmError:
    return RetriableCrmError(f"HubSpot {what}: {type(exc).__name__}: {exc}", system="hubspot")
