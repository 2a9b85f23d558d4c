"""The one place that calls simple-salesforce: login (`connect`, or `connect_oauth` for a
connection authorised by OAuth), the REST calls of the adapter
through the library's public API (`restful`, `query` / `query_more`, `query_all_iter`), the
daily API budget guard (the library's `api_usage`, parsed from Sforce-Limit-Info; with
workers.redis_url also the reading any process saw, connector.adapters.shared_limits), the retry
policy (connector.retry, honouring Retry-After) and the translation of the library's errors
into ours by status and errorCode."""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceAuthenticationFailed, SalesforceError
from simple_salesforce.util import Usage

from crm_renewals.connector.adapters.salesforce.request_kinds import request_kind
from crm_renewals.connector.config_sections import SalesforceSettings
from crm_renewals.connector.errors import (
    ApiLimitReached,
    ConfigError,
    CrmError,
    FatalCrmError,
    Problem,
    RetriableCrmError,
)
from crm_renewals.connector.retry import retrying

if TYPE_CHECKING:
    from crm_renewals.connector.adapters.shared_limits import OrgUsage

T = TypeVar("T")

#: Which environment variables each `salesforce.auth` variant reads.
AUTH_ENV = {
    "password": ("SALESFORCE_USERNAME", "SALESFORCE_PASSWORD", "SALESFORCE_SECURITY_TOKEN"),
    "jwt": ("SALESFORCE_USERNAME", "SALESFORCE_CONSUMER_KEY", "SALESFORCE_PRIVATE_KEY_FILE"),
    "session": ("SALESFORCE_SESSION_ID", "SALESFORCE_INSTANCE_URL"),
}
#: Per-record or per-call codes worth another try (Salesforce's own advice: retry later).
RETRIABLE_CODES = {"UNABLE_TO_LOCK_ROW", "SERVER_UNAVAILABLE"}
#: What a call's error means, by Salesforce's errorCode (checked first: it is more precise
#: than the status, e.g. REQUEST_LIMIT_EXCEEDED arrives as 403, UNABLE_TO_LOCK_ROW as 400).
ERRORS_BY_CODE: dict[str | None, type[CrmError]] = {
    "REQUEST_LIMIT_EXCEEDED": ApiLimitReached,
    **{code: RetriableCrmError for code in RETRIABLE_CODES},
}
#: ... else by HTTP status; any other 5xx is retriable, anything else fatal.
ERRORS_BY_STATUS: dict[int, type[CrmError]] = {
    401: FatalCrmError,
    403: FatalCrmError,
    429: RetriableCrmError,
}


def connect(
    settings: SalesforceSettings,
    env: Mapping[str, str] = os.environ,
    session: requests.Session | None = None,
) -> Salesforce:
    """Log in as `salesforce.auth` says, with credentials from the environment only."""
    names = AUTH_ENV[settings.auth]
    missing = [n for n in names if not env.get(n)]
    if missing:
        raise ConfigError(
            [
                Problem(
                    "salesforce.auth",
                    f"auth: {settings.auth} needs the environment variable"
                    f"{'s' if len(missing) > 1 else ''} {', '.join(missing)}",
                    "app.yaml",
                )
            ]
        )
    # plain dicts, as the JSON of a requests answer (the library defaults to OrderedDict)
    common: dict[str, Any] = {
        "version": settings.api_version,
        "session": session,
        "object_pairs_hook": dict,
    }
    try:
        if settings.auth == "password":
            return Salesforce(
                username=env["SALESFORCE_USERNAME"],
                password=env["SALESFORCE_PASSWORD"],
                security_token=env["SALESFORCE_SECURITY_TOKEN"],
                domain=settings.domain,
                **common,
            )
        if settings.auth == "jwt":
            return Salesforce(
                username=env["SALESFORCE_USERNAME"],
                consumer_key=env["SALESFORCE_CONSUMER_KEY"],
                privatekey_file=env["SALESFORCE_PRIVATE_KEY_FILE"],
                domain=settings.domain,
                **common,
            )
        return Salesforce(
            session_id=env["SALESFORCE_SESSION_ID"],
            instance_url=env["SALESFORCE_INSTANCE_URL"],
            **common,
        )
    except SalesforceAuthenticationFailed as exc:
        raise FatalCrmError(
            f"Salesforce refused the login ({exc.code}: {exc.message}). Check "
            f"{', '.join(names)} and salesforce.domain ({settings.domain!r}: 'test' for sandbox "
            "orgs, 'yourdomain.my' for My Domain logins)",
            system="salesforce",
            status=401,
            code=str(exc.code),
        ) from None
    except requests.RequestException as exc:  # before OSError: ConnectionError is one
        raise RetriableCrmError(
            f"cannot reach Salesforce at {_login_host(settings, env)}: "
            f"{type(exc).__name__}; check the network (and HTTPS_PROXY) and salesforce.domain",
            system="salesforce",
        ) from None
    except (OSError, ValueError) as exc:  # unreadable key file, bad key
        if settings.auth != "jwt":
            raise
        raise ConfigError(
            [Problem("salesforce.auth", f"cannot use the JWT private key: {exc}", "app.yaml")]
        ) from None


class OAuthSalesforce(Salesforce):
    """A session whose access token comes from an OAuth grant (a connection's stored tokens).

    Renewed through `renew(stale) -> fresh` (the grant's refresh token, under the connection's
    lock) when the org answers 401 INVALID_SESSION_ID, by the transport, once per call. Not
    through the library's own re-login: that needs the private `_salesforce_login_partial`, and
    it retries up to three times where one renewal then a clear stop is wanted. A plain direct
    session (`session_id` + `instance_url`) keeps the library's request path; only its public
    `session_id` and `headers` change on renewal."""

    def __init__(self, *, renew: Callable[[str], str], **kwargs: Any):
        super().__init__(**kwargs)
        self._renew = renew

    def __repr__(self) -> str:  # the token never reaches a log through a repr
        return f"OAuthSalesforce(instance={self.sf_instance!r})"

    def renew_session(self) -> None:
        """Replace the refused access token by a fresh one of the grant."""
        fresh = self._renew(self.session_id)
        self.session_id = fresh
        # in place: helpers built earlier (the metadata API's) share this dict
        self.headers["Authorization"] = f"Bearer {fresh}"


def connect_oauth(
    settings: SalesforceSettings,
    instance_url: str,
    access_token: str,
    renew: Callable[[str], str],
    session: requests.Session | None = None,
) -> Salesforce:
    """The org of an OAuth connection: no login, the access token of its grant, renewed through
    `renew` when Salesforce refuses it (see OAuthSalesforce)."""
    return OAuthSalesforce(
        renew=renew,
        session_id=access_token,
        instance_url=instance_url,
        version=settings.api_version,
        session=session,
        object_pairs_hook=dict,
    )


def _login_host(settings: SalesforceSettings, env: Mapping[str, str]) -> str:
    """The host the login goes to: the instance of a session, else <domain>.salesforce.com."""
    if settings.auth == "session":
        return urlsplit(env["SALESFORCE_INSTANCE_URL"]).hostname or env["SALESFORCE_INSTANCE_URL"]
    return f"{settings.domain}.salesforce.com"


class SalesforceTransport:
    """Every REST call of the adapter: budget-checked, counted, translated, retried."""

    system = "salesforce"

    def __init__(
        self,
        sf: Salesforce,
        settings: SalesforceSettings,
        *,
        retry_attempts: int = 5,
        retry_max_wait: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        shared: OrgUsage | None = None,
    ):
        self.sf = sf
        self.settings = settings
        self.api_calls = 0
        self.calls_by_kind: Counter[str] = Counter()  # request_kind -> calls
        #: the org's usage as every process saw it, our calls counted (workers.redis_url)
        self.shared = shared
        #: stop before the daily API use passes salesforce.api_usage_stop_share
        self.guard_usage = True
        self.sleep = sleep
        self.retry = (retry_attempts, retry_max_wait)
        self._retry_after: float | None = None
        sf.session.hooks["response"].append(self._on_response)

    @property
    def api_usage(self) -> tuple[int, int] | None:
        """(used, daily allowance) from the last answer's Sforce-Limit-Info."""
        usage = self.sf.api_usage.get("api-usage")
        return (usage.used, usage.total) if usage else None

    @api_usage.setter
    def api_usage(self, value: tuple[int, int] | None) -> None:
        self.sf.api_usage = {} if value is None else {"api-usage": Usage(*value)}

    def rest(self, method: str, path: str, **kwargs: Any) -> Any:
        """A REST call under the API version's base URL; its JSON answer (None when empty)."""
        return self.retried(self.sf.restful, path, method=method, **self._timeout(kwargs))

    def pages(
        self, soql: str, *, include_deleted: bool, page_size: int, first: dict | None = None
    ) -> Iterator[dict]:
        """Query answers page by page (nextRecordsUrl), each page's call retried on its own;
        from `first` when the first page was read already (a Composite call's)."""
        kw = self._timeout({"headers": {"Sforce-Query-Options": f"batchSize={page_size}"}})
        body = first or self.retried(self.sf.query, soql, include_deleted=include_deleted, **kw)
        while True:
            yield body
            if body.get("done", True) or not body.get("nextRecordsUrl"):
                return
            body = self.retried(
                self.sf.query_more, body["nextRecordsUrl"], identifier_is_url=True, **kw
            )

    def records(self, soql: str) -> list[dict[str, Any]]:
        """Every record of a (small) query through /query, all pages."""
        return self.retried(lambda: list(self.sf.query_all_iter(soql, **self._timeout({}))))

    def versions(self) -> list[dict[str, Any]]:
        """The API versions the org offers (GET /services/data/): not under the versioned base
        URL that `restful` prefixes."""
        url = f"https://{self.sf.sf_instance}/services/data/"
        return self.retried(lambda: self._raw("GET", url).json())

    def response(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """A call under the versioned base URL whose answer is not JSON (Bulk API 2.0 results
        are CSV, their paging in headers): the response itself, retried."""
        return self.retried(self._raw, method, self.sf.base_url + path, **kwargs)

    def _raw(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """The library has no public call for these: its own request helper keeps its session
        renewal and error mapping."""
        return self.sf._call_salesforce(method, url, **self._timeout(kwargs))

    def retried(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        attempts, max_wait = self.retry
        return retrying(attempts, max_wait, sleep=self.sleep)(self._once, fn, *args, **kwargs)

    def close(self) -> None:
        self.sf.session.close()

    def _timeout(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        return {**kwargs, "timeout": self.settings.timeout_seconds}

    def _once(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        self._check_budget()
        self._retry_after = None
        try:
            # simple-salesforce renews an expired session of a login (INVALID_SESSION_ID) and
            # retries; an OAuth session is renewed here, once
            return self._call(fn, *args, **kwargs)
        except FatalCrmError as exc:
            expired = exc.status == 401 and exc.code == "INVALID_SESSION_ID"
            if not (expired and isinstance(self.sf, OAuthSalesforce)):
                raise
        self.sf.renew_session()
        try:
            return self._call(fn, *args, **kwargs)
        except FatalCrmError as exc:
            if exc.code != "INVALID_SESSION_ID":
                raise
            raise FatalCrmError(
                "Salesforce refused the renewed access token too (INVALID_SESSION_ID): the "
                "integration user may have lost API access, or the org's session settings "
                "(IP restrictions, sessions locked to an IP) refuse this server; check them, "
                "then connect the org again (console: Connections > Reconnect)",
                system=self.system,
                status=401,
                code="INVALID_SESSION_ID",
            ) from None

    def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """One call through the library, its errors made ours."""
        try:
            return fn(*args, **kwargs)
        except SalesforceError as exc:
            raise self.translate(exc) from None
        except RuntimeError as exc:  # a given session id cannot be renewed
            raise FatalCrmError(
                f"the Salesforce session expired and cannot be renewed ({exc}); set a fresh "
                "SALESFORCE_SESSION_ID or use salesforce.auth: password or jwt",
                system=self.system,
                status=401,
                code="INVALID_SESSION_ID",
            ) from None
        except (requests.Timeout, requests.ConnectionError) as exc:
            raise RetriableCrmError(
                f"Salesforce did not answer: {type(exc).__name__}", system=self.system
            ) from None

    def _on_response(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        """Counts API calls; keeps Retry-After, which the library's errors do not carry."""
        if "/services/data/" not in response.url:
            return  # logins do not count against the API allowance
        self.api_calls += 1
        self.calls_by_kind[request_kind(response.url)] += 1
        if self.shared is not None:  # every process's reading, our calls counted
            self.shared.count_call()
            info = response.headers.get("Sforce-Limit-Info")
            usage = Salesforce.parse_api_usage(info).get("api-usage") if info else None
            if usage is not None:
                self.shared.set(usage.used, usage.total)
        after = response.headers.get("Retry-After")
        if after:
            try:
                self._retry_after = float(after)
            except ValueError:
                self._retry_after = None

    def _check_budget(self) -> None:
        """Stop past the share, by this transport's last reading or any process's (shared)."""
        if not self.guard_usage:
            return
        seen = [self.api_usage, self.shared.get() if self.shared else None]
        seen = [r for r in seen if r is not None and r[1]]
        if not seen:
            return
        used, total = max(seen, key=lambda r: r[0] / r[1])
        share = self.settings.api_usage_stop_share
        if total and used / total >= share:
            raise ApiLimitReached(
                f"the org has used {used:,} of its {total:,} daily API requests "
                f"({used / total:.0%}), past salesforce.api_usage_stop_share ({share:.0%}); "
                "stopping cleanly: the next run resumes from its cursor",
                system=self.system,
                code="API_USAGE_SHARE_REACHED",
            )

    def translate(self, exc: SalesforceError) -> CrmError:
        """The library's error -> ours: by errorCode where Salesforce names one (ERRORS_BY_CODE),
        else by HTTP status (ERRORS_BY_STATUS; other 5xx retriable, the rest fatal)."""
        content = exc.content
        first = content[0] if isinstance(content, list) and content else {}
        first = first if isinstance(first, dict) else {}
        code = first.get("errorCode") or first.get("statusCode")
        message = first.get("message") or (content if isinstance(content, str) else "")
        where = f"{exc.status} from {exc.url.split('?')[0]}"
        kw = {"system": self.system, "status": exc.status, "code": code, "body": str(content)}
        default = RetriableCrmError if exc.status >= 500 else FatalCrmError
        cls = ERRORS_BY_CODE.get(code) or ERRORS_BY_STATUS.get(exc.status, default)
        if cls is ApiLimitReached:
            return ApiLimitReached(
                f"Salesforce refused the call: the org's API request limit is exceeded "
                f"({message}); stopping: the next run resumes from its cursor",
                **kw,
            )
        if cls is RetriableCrmError:
            return RetriableCrmError(
                f"Salesforce is busy ({code or exc.status}: {message}) [{where}]",
                retry_after=self._retry_after,
                **kw,
            )
        if exc.status == 401 and isinstance(self.sf, OAuthSalesforce):
            return FatalCrmError(
                f"Salesforce rejected the session ({code}: {message}); connect the org again "
                "(console: Connections > Reconnect)",
                **kw,
            )
        if exc.status == 401:
            return FatalCrmError(
                f"Salesforce rejected the session ({code}: {message}); check the "
                f"{' / '.join(AUTH_ENV[self.settings.auth])} environment variables",
                **kw,
            )
        if exc.status == 403:
            return FatalCrmError(
                f"Salesforce refused access ({code}: {message}) [{where}]; the integration "
                "user needs API Enabled and access to the mapped objects (renewals doctor)",
                **kw,
            )
        return FatalCrmError(
            f"Salesforce refused the request ({code or exc.status}: {message}) [{where}]; "
            "check the mapping against the org with `renewals mappings validate --online`",
            **kw,
        )
