"""Composite requests: several sObject Collections requests of 200 records in ONE API call, or
the first pages of several queries (reads.py: `prefetch`).

What Salesforce documents, and what this module relies on:
- "The entire series of requests counts as a single call toward your API limits."
  https://developer.salesforce.com/docs/platform/api-rest/guide/resources-composite-composite-post.html
- sObject Collections (/services/data/vXX.X/composite/sobjects) are supported as subrequests
  from API 43.0; a call holds up to 25 subrequests, of which up to 5 may be sObject Collections
  or query operations (the same page, in its v57 edition):
  https://developer.salesforce.com/docs/atlas.ja-jp.242.0.api_rest.meta/api/resources_composite_composite_post.htm
  Each Collections subrequest holds up to 200 records
  (https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections_upsert.htm),
  so one Composite call carries up to 5 x 200 = 1,000 records.
- Composite `allOrNone: false`: "the remaining subrequests that don't depend on the failed
  subrequest are executed"; each Collections subrequest then "behaves according to its value of
  allOrNone" (https://developer.salesforce.com/docs/platform/api-rest/guide/resources-composite-allornone.md),
  which we keep false: a refused record never rolls back another.
- `collateSubrequests: false`: "the subrequests are executed in the order in which they are
  received" (https://developer.salesforce.com/docs/platform/api-rest/guide/requests-composite.html).
- Each answer is `{body, httpHeaders, httpStatusCode, referenceId}`; a failed subrequest's body
  is the usual error array `[{message, errorCode, fields}]`
  (https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_subrequest_result.htm);
  reference ids hold only letters, digits and underscores (same page).

- Query subrequests: "Query", "QueryAll" and "Query More" count among the 5 (v42 edition of the
  same page: https://developer.salesforce.com/docs/atlas.ja-jp.210.0.api_rest.meta/api_rest/resources_composite_composite.htm);
  a subrequest's httpHeaders may carry any header its resource takes but Accept, Authorization
  and Content-Type (https://developer.salesforce.com/docs/atlas.ja-jp.206.0.api_rest.meta/api_rest/requests_composite.htm),
  so Sforce-Query-Options sets the page size as on a plain query.

Why not Composite Graph: nodes are single records (500 a payload, 75 graphs), and a graph is all
or none, so a refused line would roll back its renewal
(https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api/resources_composite_graph_limits.htm).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

from crm_renewals.connector.adapters.salesforce.transport import (
    RETRIABLE_CODES,
    SalesforceTransport,
)

#: records in one sObject Collections request
COLLECTION_SIZE = 200
#: sObject Collections (or query) subrequests in one Composite request
COLLECTIONS_PER_COMPOSITE = 5
#: subrequests of any kind in one Composite request
SUBREQUESTS_PER_COMPOSITE = 25
#: records one Composite call writes through its Collections subrequests
RECORDS_PER_COMPOSITE = COLLECTION_SIZE * COLLECTIONS_PER_COMPOSITE


def chunks(items: list, size: int = COLLECTION_SIZE) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def collections_call(
    t: SalesforceTransport, method: str, path: str, records: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Per-record answers, in order, of sObject Collections requests for `records` (at most
    RECORDS_PER_COMPOSITE), sent as one Composite call. Up to 200 records go as one plain
    Collections call: the same one call, a simpler request."""
    parts = chunks(records)
    if len(parts) == 1:
        return t.rest(method, path, json={"allOrNone": False, "records": records})
    return _composite(t, [(method, path, {"allOrNone": False, "records": p}) for p in parts], parts)


def delete_call(t: SalesforceTransport, ids: list[str]) -> list[dict[str, Any]]:
    """Per-id answers of sObject Collections deletes (at most RECORDS_PER_COMPOSITE ids)."""
    parts = chunks(ids)
    if len(parts) == 1:
        params = {"ids": ",".join(ids), "allOrNone": "false"}
        return t.rest("DELETE", "composite/sobjects", params=params)
    path = "composite/sobjects?allOrNone=false&ids="
    subs = [("DELETE", path + ",".join(p), None) for p in parts]
    return _composite(t, subs, parts)


def queries(
    t: SalesforceTransport, soqls: list[tuple[str, bool]], page_size: int
) -> list[dict[str, Any] | None]:
    """The first page of each (SOQL, include deleted) query, as /query or /queryAll answers it,
    from one Composite call of up to five query subrequests; None for a query whose subrequest
    failed (its reader asks again on its own, and gets the error there)."""
    headers = {"Sforce-Query-Options": f"batchSize={page_size}"}
    subs = [
        ("GET", f"{'queryAll' if deleted else 'query'}/?q={quote(soql)}", None, headers)
        for soql, deleted in soqls
    ]
    by_ref = _post(t, subs)
    out: list[dict[str, Any] | None] = []
    for i in range(len(subs)):
        result = by_ref.get(f"part{i}") or {}
        body = result.get("body")
        ok = result.get("httpStatusCode", 0) < 300 and isinstance(body, dict)
        out.append(body if ok else None)
    return out


def _post(
    t: SalesforceTransport, subs: list[tuple[str, str, Any, dict[str, str] | None]]
) -> dict[str, dict[str, Any]]:
    """One Composite call of `subs` (method, path under the versioned base, body, headers):
    the subrequests' results by referenceId (part0, part1, ...)."""
    if len(subs) > COLLECTIONS_PER_COMPOSITE:
        raise ValueError(f"{len(subs)} heavy subrequests exceed {COLLECTIONS_PER_COMPOSITE}")
    base = urlsplit(t.sf.base_url).path  # /services/data/vXX.X/
    request = []
    for i, (method, path, body, headers) in enumerate(subs):
        sub: dict[str, Any] = {"method": method, "url": base + path, "referenceId": f"part{i}"}
        if body is not None:
            sub["body"] = body
        if headers:
            sub["httpHeaders"] = headers
        request.append(sub)
    answer = t.rest(
        "POST",
        "composite",
        json={"allOrNone": False, "collateSubrequests": False, "compositeRequest": request},
    )
    return {r.get("referenceId"): r for r in (answer or {}).get("compositeResponse", [])}


def _composite(
    t: SalesforceTransport, subs: list[tuple[str, str, Any]], parts: list[list]
) -> list[dict[str, Any]]:
    by_ref = _post(t, [(method, path, body, None) for method, path, body in subs])
    out: list[dict[str, Any]] = []
    for i, part in enumerate(parts):
        result = by_ref.get(f"part{i}")
        body = result.get("body") if result else None
        ok = result is not None and result.get("httpStatusCode", 0) < 300
        if ok and isinstance(body, list) and len(body) == len(part):
            out += body
            continue
        out += [_failed(result)] * len(part)
    return out


def _failed(result: dict[str, Any] | None) -> dict[str, Any]:
    """The answer of each record of a subrequest that failed as a whole: its error, retriable
    when the subrequest's status or code says so (the Applier sends such records again)."""
    if result is None:
        error = {"statusCode": "SERVER_UNAVAILABLE", "message": "no answer for this subrequest"}
        return {"success": False, "errors": [error]}
    body = result.get("body")
    first = body[0] if isinstance(body, list) and body and isinstance(body[0], dict) else {}
    status = result.get("httpStatusCode", 0)
    code = first.get("errorCode") or first.get("statusCode") or f"HTTP_{status}"
    if status >= 500 or status == 429 or code == "PROCESSING_HALTED":
        # transient, or not run because another subrequest failed: worth sending again
        code = code if code in RETRIABLE_CODES else "SERVER_UNAVAILABLE"
    message = f"subrequest failed ({status}): {first.get('message', '')}".strip()
    return {"success": False, "errors": [{"statusCode": code, "message": message}]}
