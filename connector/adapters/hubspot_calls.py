"""The HubSpot reads behind HubSpotCrm: error translation, which records a kind is, search
windows, associations, archived listings, owners. Functions over the adapter (`crm.call`
counts, rate-limits and retries each request)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from connector.errors import (
    ApiLimitReached,
    CrmError,
    FatalCrmError,
    RecordRejectedError,
    RetriableCrmError,
)
from connector.ports import Cursor, OutboundRecord

if TYPE_CHECKING:
    from connector.adapters.hubspot import HubSpotCrm

#: What the private app needs (tasks: HubSpot's tasks API asks for the contacts scopes).
SCOPES = (
    "crm.objects.owners.read, crm.objects.companies.read/.write, crm.objects.contacts.read/"
    ".write, crm.objects.deals.read/.write, crm.objects.line_items.read/.write, "
    "crm.schemas.deals.read/.write, crm.schemas.companies.read/.write, crm.schemas.contacts.read, "
    "crm.schemas.line_items.read (and crm.objects.custom.read for contracts in a custom object)"
)
ASSOC_FIELD = re.compile(r"^associated_(?P<name>.+)_id$")
LABEL_FIELD = "renewal_contact_label"
RETRIABLE = {423: 2.0, 429: None, 477: None}
SEARCH_PAGE = 200
#: ids per v4 association batch read (at most 1000, HubSpot changelog of Feb 2025)
ASSOC_CHUNK = 1000
MERGED = "hs_merged_object_ids"
#: The association that makes a record the connector wrote its parent's (see `unlinked`).
PARENT_LINKS = {
    "renewal_line": "associated_deal_id",
    "renewal_opportunity": "associated_company_id",
}
SEARCH_CAP = 10_000


# ---------------------------------------------------------------- errors


def translate(what: str, exc: Any, window: float = 10.0) -> CrmError:
    """A vendor ApiException (one class per sub-package) -> our error tree, by status."""
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
    if status == 429 and body.get("policyName") == "DAILY":
        return ApiLimitReached(f"{text}: the portal's daily API limit is used up", **kw)
    if status in RETRIABLE or status >= 500 or status == 0:
        return RetriableCrmError(text, retry_after=_retry_after(status, headers, window), **kw)
    if 400 <= status < 500 and status != 404:
        return RecordRejectedError(text, **kw)
    return CrmError(text, **kw)


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


# ---------------------------------------------------------------- what a kind reads


def filters(crm: HubSpotCrm, kind: str) -> list[dict]:
    """Search filters selecting the records of `kind` (kinds share objects: deals hold both
    contracts and renewals, line items both contract and renewal lines)."""
    s = crm.settings
    renewal_key = crm.mapping.models["renewal_opportunity"].key_field
    line_key = crm.mapping.models["renewal_line"].key_field
    if kind == "contract" and s.contract_source == "deals":
        out = [{"propertyName": "dealstage", "operator": "IN", "values": list(s.contract_stages)}]
        if s.contract_pipeline:
            out.append({"propertyName": "pipeline", "operator": "EQ", "value": s.contract_pipeline})
        return out + [{"propertyName": renewal_key, "operator": "NOT_HAS_PROPERTY"}]
    if kind == "renewal_opportunity":
        return [{"propertyName": renewal_key, "operator": "HAS_PROPERTY"}]
    if kind == "contract_line":
        return [{"propertyName": line_key, "operator": "NOT_HAS_PROPERTY"}]
    if kind == "renewal_line":
        return [{"propertyName": line_key, "operator": "HAS_PROPERTY"}]
    return []


def predicate(crm: HubSpotCrm, kind: str) -> Callable[[dict], bool]:
    """The same filters, applied to records the search did not select (archived, batch reads)."""
    tests = []
    for f in filters(crm, kind):
        name, op = f["propertyName"], f["operator"]
        if op == "IN":
            tests.append(lambda p, n=name, v=set(f["values"]): p.get(n) in v)
        elif op == "EQ":
            tests.append(lambda p, n=name, v=f["value"]: p.get(n) == v)
        elif op == "HAS_PROPERTY":
            tests.append(lambda p, n=name: p.get(n) not in (None, ""))
        else:
            tests.append(lambda p, n=name: p.get(n) in (None, ""))
    return lambda props: all(t(props) for t in tests)


def properties(crm: HubSpotCrm, kind: str) -> list[str]:
    om = crm.mapping.models[kind]
    wanted = [f for f in crm.mapping.source_fields(kind) if not synthetic(f)]
    extra = [om.modified_field, MERGED] + [f["propertyName"] for f in filters(crm, kind)]
    return list(dict.fromkeys(w for w in wanted + extra if w and w != "hs_object_id"))


def synthetic(field: str) -> bool:
    """Fields the adapter fills from associations, not properties."""
    return bool(ASSOC_FIELD.match(field)) or field == LABEL_FIELD


def linked_types(crm: HubSpotCrm, kind: str) -> dict[str, str]:
    """Mapped association fields of a kind: field name -> object type it points at."""
    out = {}
    for spec in crm.mapping.models[kind].fields.values():
        m = ASSOC_FIELD.match(spec.field or "")
        if m:
            out[spec.field] = crm.resolve_type(m["name"])
    if kind == "contact" and crm.settings.renewal_contact_label:
        out.setdefault("associated_company_id", "companies")
    if kind in PARENT_LINKS:
        out.setdefault(
            PARENT_LINKS[kind], crm.resolve_type(ASSOC_FIELD.match(PARENT_LINKS[kind])["name"])
        )
    return out


def unlinked(kind: str, fields: dict[str, Any]) -> bool:
    """A record the connector writes under a parent (a renewal line under its deal, a renewal
    deal under its company) that is not linked to it: written, but a crash came before the
    association (a separate call). Such a record is not read as the connector's, so the next
    run plans it again and sends it with its association; upserts by key never duplicate it."""
    return kind in PARENT_LINKS and not fields.get(PARENT_LINKS[kind])


# ---------------------------------------------------------------- reading


def search_pages(crm: HubSpotCrm, kind: str, since: Cursor | None) -> Iterator[list[dict]]:
    """Changed records oldest first. The search API stops at 10,000 results a query: at the cap
    the window restarts at the last stamp seen, skipping the records at that stamp already
    served, so a large read goes on to the end instead of stopping at the cap."""
    om = crm.mapping.models[kind]
    stamp_field = om.modified_field or "hs_lastmodifieddate"
    low = _ms(since.modified_at) if since else None
    skip: set[str] = set()
    while True:
        tail_ms, tail_ids, state = low, set(skip), {"capped": False}
        for page in _window(crm, kind, stamp_field, low, state):
            page = [o for o in page if str(o["id"]) not in skip]
            for obj in page:
                ms = _ms_text(obj["properties"].get(stamp_field) or obj.get("updatedAt"))
                tail_ids = tail_ids | {str(obj["id"])} if ms == tail_ms else {str(obj["id"])}
                tail_ms = ms
            if page:
                yield page
        if not state["capped"]:
            return
        if tail_ms == low and tail_ids == skip:
            raise CrmError(
                f"more than 10,000 {om.object} share the stamp {tail_ms}: the search API "
                "cannot page past them",
                system="hubspot",
                code="SEARCH_CAP",
            )
        low, skip = tail_ms, tail_ids


def _window(
    crm: HubSpotCrm, kind: str, stamp_field: str, low: int | None, state: dict
) -> Iterator[list]:
    """One search query, paged with `after` up to the cap (then state["capped"] is set)."""
    from hubspot.crm.objects import PublicObjectSearchRequest

    obj = crm.object_type(kind)
    window = filters(crm, kind)
    if low is not None:
        window = window + [{"propertyName": stamp_field, "operator": "GTE", "value": str(low)}]
    after, served = None, 0
    while True:
        body = PublicObjectSearchRequest(
            # HubSpot refuses a filter group without filters (400): a full read sends none
            filter_groups=[{"filters": window}] if window else None,
            sorts=[stamp_field],
            properties=properties(crm, kind),
            limit=crm.page_size,
            after=after,
        )
        data = crm.call(
            f"search {obj}", crm.api("objects.search_api").do_search, obj, body, search=True
        )
        results = data.get("results") or []
        served += len(results)
        yield results
        after = ((data.get("paging") or {}).get("next") or {}).get("after")
        if not after:
            return
        if served + crm.page_size > SEARCH_CAP:
            state["capped"] = True
            return


def _ms(moment) -> int:
    return int(moment.timestamp() * 1000)


def _ms_text(value: Any) -> int | None:
    from connector.adapters.hubspot import parse_time

    return None if value is None else _ms(parse_time(value))


def associations(crm: HubSpotCrm, kind: str, ids: list[str]) -> dict[str, dict[str, Any]]:
    """Per record id: each mapped `associated_<x>_id` (the primary or first association) and,
    for contacts, whether the company association carries the renewal contact label."""
    out: dict[str, dict[str, Any]] = {str(i): {} for i in ids}
    source = crm.object_type(kind)
    label = crm.settings.renewal_contact_label
    for field, target in linked_types(crm, kind).items():
        for from_id, links in linked(crm, source, target, ids).items():
            rec = out.setdefault(from_id, {})
            rec[field] = str(_primary(links)["toObjectId"])
            if kind == "contact" and label:
                rec[LABEL_FIELD] = any(
                    t.get("label") == label for ln in links for t in ln["associationTypes"]
                )
    return out


def linked(crm: HubSpotCrm, source: str, target: str, ids: list[str]) -> dict[str, list[dict]]:
    """Every link of these records to `target` records: v4 batch reads of ASSOC_CHUNK ids,
    then the next page of each record that has more (`after` next to its id; HubSpot pages
    one object's links, 500 at a time)."""
    from hubspot.crm.associations.v4 import BatchInputPublicFetchAssociationsBatchRequest

    out: dict[str, list[dict]] = {}
    todo: list[dict[str, str]] = [{"id": str(x)} for x in ids]
    while todo:
        chunk, todo = todo[:ASSOC_CHUNK], todo[ASSOC_CHUNK:]
        data = crm.call(
            f"read associations {source}->{target}",
            crm.api("associations.v4.batch_api").get_page,
            source,
            target,
            BatchInputPublicFetchAssociationsBatchRequest(inputs=chunk),
        )
        for row in data.get("results") or []:
            from_id = str(row["from"]["id"])
            out.setdefault(from_id, []).extend(row.get("to") or [])
            after = ((row.get("paging") or {}).get("next") or {}).get("after")
            if after:
                todo.append({"id": from_id, "after": str(after)})
    return {k: v for k, v in out.items() if v}


def _primary(links: list[dict]) -> dict:
    for link in links:
        if any((t.get("label") or "").lower() == "primary" for t in link["associationTypes"]):
            return link
    return links[0]


def list_archived(crm: HubSpotCrm, kind: str) -> Iterator[dict]:
    obj = crm.object_type(kind)
    after = None
    while True:
        data = crm.call(
            f"list archived {obj}",
            crm.api("objects.basic_api").get_page,
            obj,
            limit=100,
            after=after,
            properties=properties(crm, kind),
            archived=True,
        )
        yield from data.get("results") or []
        after = ((data.get("paging") or {}).get("next") or {}).get("after")
        if not after:
            return


def batch_read(
    crm: HubSpotCrm, kind: str, ids: list[str], *, archived: bool, id_property: str | None = None
) -> list[dict]:
    from hubspot.crm.objects import BatchReadInputSimplePublicObjectId

    if not ids:
        return []
    obj = crm.object_type(kind)
    body = BatchReadInputSimplePublicObjectId(
        inputs=[{"id": x} for x in ids],
        properties=properties(crm, kind) + ([id_property] if id_property else []),
        properties_with_history=[],
        id_property=id_property,
    )
    data = crm.call(
        f"batch read {obj}", crm.api("objects.batch_api").read, obj, body, archived=archived
    )
    return data.get("results") or []


def owners(crm: HubSpotCrm, archived: bool) -> Iterator[dict]:
    after = None
    while True:
        data = crm.call(
            "list owners",
            crm.api("owners.owners_api").get_page,
            limit=500,
            after=after,
            archived=archived,
        )
        yield from data.get("results") or []
        after = ((data.get("paging") or {}).get("next") or {}).get("after")
        if not after:
            return


# ---------------------------------------------------------------- writing helpers


def check_batch(crm: HubSpotCrm, size: int) -> None:
    if size > crm.max_batch:
        raise CrmError(
            f"batch of {size} exceeds HubSpot's {crm.max_batch} inputs a call",
            system="hubspot",
            status=400,
            code="EXCEEDED_MAX_BATCH",
        )


def by_id(crm: HubSpotCrm, kind: str) -> bool:
    om = crm.mapping.models[kind]
    return om.key_field in ("Id", "hs_object_id", om.id_field)


def split(crm: HubSpotCrm, kind: str, rec: OutboundRecord) -> tuple[dict, dict[str, str]]:
    """Outbound fields -> (properties, {object type: id to associate with})."""
    props, links = {}, {}
    for name, value in rec.fields.items():
        m = ASSOC_FIELD.match(name)
        if m:
            if value not in (None, ""):
                links[crm.resolve_type(m["name"])] = str(value)
        elif name != LABEL_FIELD:
            props[name] = value
    return props, links
