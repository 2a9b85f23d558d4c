"""What kind of Salesforce request a URL is, for the run's API calls by kind (`renewals sync
--json` api_calls_by_kind, the run history): every one counts as one call of the org's daily
allowance, a Composite request of five Collections subrequests as much as one query page."""

from __future__ import annotations

import re

VERSIONED = re.compile(r"/services/data/(v\d+\.\d+/)?")


def request_kind(url: str) -> str:
    """composite, collections, query, bulk (query jobs), bulk_ingest, describe, limits,
    tooling, sobject, versions or other, from a REST URL under /services/data/."""
    path = url.split("?", 1)[0]
    found = VERSIONED.search(path)
    rest = path[found.end() :] if found else path
    if not rest:
        return "versions"
    if rest.startswith("composite/sobjects"):
        return "collections"
    if rest.rstrip("/") == "composite":
        return "composite"
    if rest.startswith(("query", "queryAll")):
        return "query"
    if rest.startswith("jobs/ingest"):
        return "bulk_ingest"
    if rest.startswith("jobs/"):
        return "bulk"
    if rest.startswith("sobjects/") and rest.rstrip("/").endswith("/describe"):
        return "describe"
    for kind in ("limits", "tooling", "sobjects"):
        if rest.startswith(kind):
            return kind.removesuffix("s") if kind == "sobjects" else kind
    return "other"
