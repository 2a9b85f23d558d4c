"""The HubSpot queries behind the reads: search windows past the 10,000-result cap, v4
association batches, archived listings, batch reads by id or unique property, owners. Functions
over the transport (which counts, rate-limits and retries each request) and the kinds."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from crm_renewals.connector.adapters.hubspot.kinds import LABEL_FIELD, Kinds, parse_time
from crm_renewals.connector.adapters.hubspot.transport import HubSpotTransport
from crm_renewals.connector.errors import CrmError
from crm_renewals.connector.ports import Cursor

SEARCH_PAGE = 200
#: ids per v4 association batch read (at most 1000, HubSpot changelog of Feb 2025)
ASSOC_CHUNK = 1000
SEARCH_CAP = 10_000


def search_pages(
    t: HubSpotTransport, k: Kinds, kind: str, since: Cursor | None, page_size: int
) -> Iterator[list[dict]]:
    """Changed records oldest first. The search API stops at 10,000 results a query: at the cap
    the window restarts at the last stamp seen, skipping the records at that stamp already
    served, so a large read goes on to the end instead of stopping at the cap."""
    om = k.mapping.models[kind]
    stamp_field = om.modified_field or "hs_lastmodifieddate"
    low = _ms(since.modified_at) if since else None
    skip: set[str] = set()
    while True:
        tail_ms, tail_ids, state = low, set(skip), {"capped": False}
        for page in _window(t, k, kind, stamp_field, low, state, page_size):
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
    t: HubSpotTransport,
    k: Kinds,
    kind: str,
    stamp_field: str,
    low: int | None,
    state: dict,
    page_size: int,
) -> Iterator[list]:
    """One search query, paged with `after` up to the cap (then state["capped"] is set)."""
    from hubspot.crm.objects import PublicObjectSearchRequest

    obj = k.object_type(kind)
    window = k.filters(kind)
    if low is not None:
        window = window + [{"propertyName": stamp_field, "operator": "GTE", "value": str(low)}]
    after, served = None, 0
    while True:
        body = PublicObjectSearchRequest(
            # HubSpot refuses a filter group without filters (400): a full read sends none
            filter_groups=[{"filters": window}] if window else None,
            sorts=[stamp_field],
            properties=k.properties(kind),
            limit=page_size,
            after=after,
        )
        data = t.call(
            f"search {obj}", t.api("objects.search_api").do_search, obj, body, search=True
        )
        results = data.get("results") or []
        served += len(results)
        yield results
        after = ((data.get("paging") or {}).get("next") or {}).get("after")
        if not after:
            return
        if served + page_size > SEARCH_CAP:
            state["capped"] = True
            return


def _ms(moment) -> int:
    return int(moment.timestamp() * 1000)


def _ms_text(value: Any) -> int | None:
    return None if value is None else _ms(parse_time(value))


def associations(
    t: HubSpotTransport, k: Kinds, kind: str, ids: list[str]
) -> dict[str, dict[str, Any]]:
    """Per record id: each mapped `associated_<x>_id` (the primary or first association) and,
    for contacts, whether the company association carries the renewal contact label."""
    out: dict[str, dict[str, Any]] = {str(i): {} for i in ids}
    source = k.object_type(kind)
    label = k.settings.renewal_contact_label
    for field, target in k.linked_types(kind).items():
        for from_id, links in linked(t, source, target, ids).items():
            rec = out.setdefault(from_id, {})
            rec[field] = str(_primary(links)["toObjectId"])
            if kind == "contact" and label:
                rec[LABEL_FIELD] = any(
                    t.get("label") == label for ln in links for t in ln["associationTypes"]
                )
    return out


def linked(t: HubSpotTransport, source: str, target: str, ids: list[str]) -> dict[str, list[dict]]:
    """Every link of these records to `target` records: v4 batch reads of ASSOC_CHUNK ids,
    then the next page of each record that has more (`after` next to its id; HubSpot pages
    one object's links, 500 at a time)."""
    from hubspot.crm.associations.v4 import BatchInputPublicFetchAssociationsBatchRequest

    out: dict[str, list[dict]] = {}
    todo: list[dict[str, str]] = [{"id": str(x)} for x in ids]
    while todo:
        chunk, todo = todo[:ASSOC_CHUNK], todo[ASSOC_CHUNK:]
        data = t.call(
            f"read associations {source}->{target}",
            t.api("associations.v4.batch_api").get_page,
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


def list_archived(t: HubSpotTransport, k: Kinds, kind: str) -> Iterator[dict]:
    obj = k.object_type(kind)
    after = None
    while True:
        data = t.call(
            f"list archived {obj}",
            t.api("objects.basic_api").get_page,
            obj,
            limit=100,
            after=after,
            properties=k.properties(kind),
            archived=True,
        )
        yield from data.get("results") or []
        after = ((data.get("paging") or {}).get("next") or {}).get("after")
        if not after:
            return


def batch_read(
    t: HubSpotTransport,
    k: Kinds,
    kind: str,
    ids: list[str],
    *,
    archived: bool,
    id_property: str | None = None,
) -> list[dict]:
    from hubspot.crm.objects import BatchReadInputSimplePublicObjectId

    if not ids:
        return []
    obj = k.object_type(kind)
    body = BatchReadInputSimplePublicObjectId(
        inputs=[{"id": x} for x in ids],
        properties=k.properties(kind) + ([id_property] if id_property else []),
        properties_with_history=[],
        id_property=id_property,
    )
    data = t.call(
        f"batch read {obj}", t.api("objects.batch_api").read, obj, body, archived=archived
    )
    return data.get("results") or []


def owners(t: HubSpotTransport, archived: bool) -> Iterator[dict]:
    after = None
    while True:
        data = t.call(
            "list owners",
            t.api("owners.owners_api").get_page,
            limit=500,
            after=after,
            archived=archived,
        )
        yield from data.get("results") or []
        after = ((data.get("paging") or {}).get("next") or {}).get("after")
        if not after:
            return
