"""The Composite resource on the fake org (POST /services/data/vXX.X/composite): subrequests
run one after the other against the org's own REST answers, as ONE API call of the daily
allocation (FakeOrg.answer counts the request once before it gets here).

Rules, each from Salesforce's REST API Developer Guide:
- "The entire series of requests counts as a single call toward your API limits."
  https://developer.salesforce.com/docs/platform/api-rest/guide/resources-composite-composite-post.html
- Up to 25 subrequests a call; up to 5 of them sObject Collections or query operations (Query,
  QueryAll, and the "Query More" of a next page); Collections from API 43.0.
  https://developer.salesforce.com/docs/atlas.ja-jp.242.0.api_rest.meta/api/resources_composite_composite_post.htm
  (https://developer.salesforce.com/docs/atlas.ja-jp.210.0.api_rest.meta/api_rest/resources_composite_composite.htm
  names Query More among the 5)
- A request body Salesforce cannot take (a subrequest without referenceId, ...) is refused whole
  with 400 "Bad Request" before any subrequest runs.
  https://developer.salesforce.com/blogs/tech-pubs/2017/02/handle-errors-with-composite-resources.html
  The error body's errorCode for a limit passed is not documented there: the fake answers the
  REST error shape [{message, errorCode}] with errorCode LIMIT_EXCEEDED (unconfirmed).
- Subrequest httpHeaders must not set Accept, Authorization or Content-Type: "the top-level
  request fails and returns an HTTP 400 response".
  https://developer.salesforce.com/docs/atlas.ja-jp.206.0.api_rest.meta/api_rest/requests_composite.htm
- Reference ids hold only letters, digits and underscores; a later subrequest's url or body
  refers to an earlier answer as @{ref.field} or @{ref[0].field} (the `.` and `[]` operators).
  https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_subrequest_result.htm
  https://developer.salesforce.com/docs/atlas.ja-jp.216.0.api_rest.meta/api_rest/requests_composite.htm
- allOrNone false: "the remaining subrequests that don't depend on the failed subrequest are
  executed. Dependent subrequests aren't executed." allOrNone true: the whole request is rolled
  back. "In either case, the top-level request returns HTTP 200 and includes responses for each
  subrequest." https://developer.salesforce.com/docs/platform/api-rest/guide/requests-composite.html
  With allOrNone true, "all other subrequests return the 400 HTTP status code" (subrequest result
  page above). A dependent subrequest not run answers 400 PROCESSING_HALTED (code unconfirmed).
- Each answer: {body, httpHeaders, httpStatusCode, referenceId}; a failed subrequest's body is
  the error array [{message, errorCode, fields}] (subrequest result page above).

Tests make the next call's n-th subrequest fail as a whole (`fail_subrequest`) or the next whole
Composite call fail (`fail_call`: a 503 before any subrequest runs), and see every Composite
request that reached the subrequests (`requests`).
"""

from __future__ import annotations

import copy
import json
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlparse

if TYPE_CHECKING:
    from tests.fakes.salesforce_org import FakeOrg

MAX_SUBREQUESTS = 25
MAX_COLLECTIONS_OR_QUERIES = 5
REFERENCE_ID = re.compile(r"^[A-Za-z0-9_]+$")
REFERENCE = re.compile(r"@\{([A-Za-z0-9_]+)((?:\.[A-Za-z0-9_]+|\[\d+\])+)\}")
FORBIDDEN_HEADERS = {"accept", "authorization", "content-type"}
HALTED = "The transaction was rolled back since another operation in the same transaction failed."


def _bad(message: str, code: str = "INVALID_REQUEST") -> tuple[int, Any]:
    return 400, [{"message": message, "errorCode": code}]


class FakeComposite:
    def __init__(self, org: FakeOrg, version: str):
        self.org = org
        self.prefix = f"/services/data/v{version}/"
        self.requests: list[dict[str, Any]] = []
        #: index of a subrequest of the next Composite call -> (status, body) it answers
        self.faults: dict[int, tuple[int, Any]] = {}
        #: answers of the next Composite calls as a whole (nothing runs)
        self.call_faults: list[tuple[int, Any]] = []

    def fail_subrequest(self, index: int, status: int, body: Any) -> None:
        self.faults[index] = (status, body)

    def fail_call(self, status: int, body: Any) -> None:
        self.call_faults.append((status, body))

    def answer(self, body: Any, headers) -> tuple[int, Any]:
        if self.call_faults:
            return self.call_faults.pop(0)
        self.requests.append(body)
        problem = self._check(body)
        if problem:
            return problem
        subs = body["compositeRequest"]
        all_or_none = bool(body.get("allOrNone", False))
        saved = self._snapshot() if all_or_none else None
        faults, self.faults = self.faults, {}
        done: dict[str, tuple[int, Any]] = {}
        out = []
        for i, sub in enumerate(subs):
            ref = sub["referenceId"]
            status, answer = self._run(sub, done, headers, faults.get(i))
            done[ref] = (status, answer)
            out.append(
                {"body": answer, "httpHeaders": {}, "httpStatusCode": status, "referenceId": ref}
            )
        if all_or_none and any(r["httpStatusCode"] >= 400 for r in out):
            self._restore(saved)
            for r in out:
                if r["httpStatusCode"] < 400:
                    r["httpStatusCode"] = 400
                    r["body"] = [{"errorCode": "PROCESSING_HALTED", "message": HALTED}]
        return 200, {"compositeResponse": out}

    def _check(self, body: Any) -> tuple[int, Any] | None:
        """The whole request refused before any subrequest runs (see the module's rules)."""
        subs = body.get("compositeRequest") if isinstance(body, dict) else None
        if not isinstance(subs, list) or not subs:
            return _bad("compositeRequest: a list of subrequests is required", "JSON_PARSER_ERROR")
        if len(subs) > MAX_SUBREQUESTS:
            return _bad(
                f"{len(subs)} subrequests: a composite request holds at most {MAX_SUBREQUESTS}",
                "LIMIT_EXCEEDED",
            )
        heavy = sum(self._collection_or_query(s) for s in subs if isinstance(s, dict))
        if heavy > MAX_COLLECTIONS_OR_QUERIES:
            return _bad(
                f"{heavy} sObject Collections or query subrequests: at most "
                f"{MAX_COLLECTIONS_OR_QUERIES} in a composite request",
                "LIMIT_EXCEEDED",
            )
        seen = set()
        for s in subs:
            if not isinstance(s, dict) or not all(k in s for k in ("method", "url", "referenceId")):
                return _bad("each subrequest needs method, url and referenceId")
            ref = s["referenceId"]
            if not isinstance(ref, str) or not REFERENCE_ID.match(ref) or ref in seen:
                return _bad(f"invalid or repeated referenceId: {ref!r}")
            seen.add(ref)
            if FORBIDDEN_HEADERS & {h.lower() for h in (s.get("httpHeaders") or {})}:
                return _bad("a subrequest cannot set Accept, Authorization or Content-Type")
        return None

    def _collection_or_query(self, sub: dict) -> bool:
        url = str(sub.get("url", ""))
        path = urlparse(url).path.removeprefix(self.prefix)
        return path.startswith(("composite/sobjects", "query", "queryAll")) or "/query/" in url

    def _run(
        self, sub: dict, done: dict, headers, fault: tuple[int, Any] | None
    ) -> tuple[int, Any]:
        try:
            url = self._resolve(sub["url"], done)
            body = json.loads(self._resolve(json.dumps(sub.get("body")), done))
        except LookupError as exc:  # refers to a failed subrequest, or to nothing
            return 400, [{"errorCode": "PROCESSING_HALTED", "message": f"{HALTED} ({exc})"}]
        if fault is not None:
            return fault
        parts = urlparse(url)
        if not parts.path.startswith(self.prefix):
            return 404, [{"message": f"not under {self.prefix}: {url}", "errorCode": "NOT_FOUND"}]
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        sub_headers = _Headers({**dict(headers.items()), **(sub.get("httpHeaders") or {})})
        path = parts.path.removeprefix(self.prefix)
        return self.org.dispatch(sub["method"], path, query, body, sub_headers)

    def _resolve(self, text: str, done: dict) -> str:
        def value(match: re.Match) -> str:
            ref, path = match.group(1), match.group(2)
            if ref not in done:
                raise LookupError(f"no subrequest {ref} before this one")
            status, answer = done[ref]
            if status >= 400:
                raise LookupError(f"subrequest {ref} failed")
            for step in re.findall(r"\.([A-Za-z0-9_]+)|\[(\d+)\]", path):
                try:
                    answer = answer[step[0]] if step[0] else answer[int(step[1])]
                except (KeyError, IndexError, TypeError):
                    raise LookupError(f"no value for {ref}{path}") from None
            if answer is None:
                raise LookupError(f"no value for {ref}{path}")
            return str(answer)

        return REFERENCE.sub(value, text)

    def _snapshot(self) -> tuple:
        o = self.org
        return copy.deepcopy((o.records, o.deleted, o.lines_of))

    def _restore(self, saved: tuple) -> None:
        self.org.records, self.org.deleted, self.org.lines_of = saved


class _Headers(dict):
    """Headers with a case-insensitive `get`, as the org's dispatch reads them."""

    def get(self, name: str, default: Any = None) -> Any:
        for k, v in self.items():
            if k.lower() == name.lower():
                return v
        return default
