"""Request handlers of FakeHubSpot: handler(fake, query, body, **path params) -> (status, body).
Called with the fake's lock held."""

from __future__ import annotations

import json
import time
from functools import lru_cache
from typing import Any

from tests.fakes.hubspot_schema import LABELS, TYPE_PAIRS
from tests.fakes.hubspot_server import SEARCH_CAP, FakeHubSpot, _prop, _text, error

OBJ = r"/crm/v3/objects/(?P<obj>[\w-]+)"
ASSOC = r"/crm/v4/associations/(?P<src>[\w-]+)/(?P<dst>[\w-]+)/batch"
TYPE_IDS = {"deals": "0-3", "companies": "0-2", "contacts": "0-1", "line_items": "0-8"}
TYPE_IDS["tasks"] = "0-27"
#: links of one object per page of a v4 batch association read
ASSOC_PAGE = 500
#: What a batch write's result echoes besides the properties its input sent (crm objects batch
#: spec: `properties` of a result are not the record; the upsert's idProperty is not among them
#: unless it was sent as a property).
ECHOED = ("hs_object_id", "createdate", "hs_lastmodifieddate")


def _stamps() -> dict[str, str]:
    return {"startedAt": "2026-11-02T09:20:11.480Z", "completedAt": "2026-11-02T09:20:11.601Z"}


def _out(obj: dict, props: list[str] | None) -> dict[str, Any]:
    always = ("hs_object_id", "createdate", "hs_lastmodifieddate", "lastmodifieddate")
    p = obj["properties"]
    keep = p if props is None else {k: p.get(k) for k in [*always, *props] if k in p or k in props}
    out = {
        "id": obj["id"],
        "properties": keep,
        "createdAt": obj["createdAt"],
        "updatedAt": obj["updatedAt"],
        "archived": obj["archived"],
    }
    if obj.get("archivedAt"):
        out["archivedAt"] = obj["archivedAt"]
    return out


def _batch(results: list, errors: list, ok_status: int = 200, rng: Any = None) -> tuple[int, dict]:
    """A batch answer; with `rng` (writes) results and errors come back shuffled: the spec
    promises no order, answers are matched to inputs by their objectWriteTraceId."""
    if rng is not None:
        rng.shuffle(results)
        rng.shuffle(errors)
    body = {"status": "COMPLETE", "results": results, **_stamps()}
    if errors:
        body.update(numErrors=len(errors), errors=errors)
        return 207, body
    return ok_status, body


def _echo(obj: dict, sent: dict, trace: str | None) -> dict[str, Any]:
    """A write's result: the properties sent and HubSpot's defaults, the input's trace id."""
    out = _out(obj, [])
    out["properties"] = {k: obj["properties"].get(k) for k in dict.fromkeys([*ECHOED, *sent])}
    if trace is not None:
        out["objectWriteTraceId"] = trace
    return out


def _strings_only(body: dict) -> None:
    """Property values are strings in the spec (`properties: dict[str, str]`): a number, a
    boolean or null fails the request's schema validation, the whole batch refused (HTTP 400)."""
    for i, inp in enumerate(body.get("inputs") or []):
        for name, value in (inp.get("properties") or {}).items():
            if not isinstance(value, str):
                raise error(
                    400,
                    "VALIDATION_ERROR",
                    f"Invalid input JSON: inputs[{i}].properties.{name} must be a string, "
                    f"got {json.dumps(value)}",
                )


def _injected(fake: FakeHubSpot, route: str, trace: str | None) -> dict | None:
    """An error queued by fake.fail_inputs for the next input of `route`. HubSpot does not
    document the per-input shape of a transient refusal: StandardError's `status` is text, so
    it holds the HTTP code here, and a rate limit's category is RATE_LIMITS (changelog
    "Upcoming: changes to error responses"); the adapter must read either."""
    for i, (fragment, status) in enumerate(fake.input_faults):
        if fragment in route:
            del fake.input_faults[i]
            category = "RATE_LIMITS" if status == 429 else "INTERNAL_ERROR"
            err = _input_error(category, f"HTTP {status} for this input, try again", trace)
            err["status"] = str(status)
            return err
    return None


def _input_error(category: str, message: str, trace: str | None, **ctx) -> dict:
    context = {"objectWriteTraceId": [trace]} if trace else {}
    context.update({k: v for k, v in ctx.items()})
    return {
        "status": "error",
        "category": category,
        "message": message,
        "context": context,
        "errors": [],
        "links": {},
    }


def _bad_props(fake: FakeHubSpot, obj: str, props: dict) -> str | None:
    owner = props.get("hubspot_owner_id")
    if owner not in (None, "") and (fake.owners.get(str(owner)) or {"archived": True})["archived"]:
        return (
            f'Property values were not valid: [{{"isValid":false,"message":"{owner} is not a '
            f'valid owner id","error":"INVALID_OWNER_ID","name":"hubspot_owner_id"}}]'
        )
    for name in props:
        if name not in fake.properties[obj]:
            detail = (
                f'[{{"isValid":false,"message":"Property \\"{name}\\" does not exist",'
                f'"error":"PROPERTY_DOESNT_EXIST","name":"{name}"}}]'
            )
            return f"Property values were not valid: {detail}"
    return None


def _by_prop(fake: FakeHubSpot, obj: str, prop: str, value: str) -> dict | None:
    if (fake.properties[obj].get(prop) or {}).get("hasUniqueValue"):
        return fake.lookup(obj, prop, value)
    for o in fake.objects[obj].values():
        if not o["archived"] and o["properties"].get(prop) == value:
            return o
    return None


def _write(fake: FakeHubSpot, obj: str, o: dict | None, props: dict) -> dict:
    text = {k: _text(v) for k, v in props.items()}
    if o is None:
        o = fake.objects[obj][fake.create(obj, text)]
    else:
        fake.edit(obj, o["id"], text)
    fake.writes.append((time.time(), obj, o["id"]))
    return o


def _unique_clash(fake: FakeHubSpot, obj: str, props: dict, own_id: str | None) -> str | None:
    for name, value in props.items():
        spec = fake.properties[obj].get(name) or {}
        if spec.get("hasUniqueValue") and value not in (None, ""):
            other = _by_prop(fake, obj, name, _text(value))
            if other is not None and other["id"] != own_id:
                return f"{name} {value} already exists on {obj} {other['id']}"
    return None


# ---------------------------------------------------------------- objects


def upsert(fake: FakeHubSpot, query, body, obj):
    _strings_only(body)
    results, errors = [], []
    for inp in body.get("inputs") or []:
        trace, id_prop, key = inp.get("objectWriteTraceId"), inp.get("idProperty"), inp.get("id")
        spec = fake.properties[obj].get(id_prop) or {}
        if not spec.get("hasUniqueValue"):
            raise error(400, "VALIDATION_ERROR", f"{id_prop} is not a unique-value property")
        props = dict(inp.get("properties") or {})
        problem = _injected(fake, f"{obj}/batch/upsert", trace)
        if problem is None and (bad := _bad_props(fake, obj, props)):
            problem = _input_error("VALIDATION_ERROR", bad, trace)
        if problem:
            errors.append(problem)
            continue
        found = _by_prop(fake, obj, id_prop, key)
        o = _write(fake, obj, found, {**props, id_prop: key})
        results.append({**_echo(o, props, trace), "new": found is None})
    return _batch(results, errors, rng=fake.rng)


def create(fake: FakeHubSpot, query, body, obj):
    _strings_only(body)
    results, errors = [], []
    for inp in body.get("inputs") or []:
        trace, props = inp.get("objectWriteTraceId"), dict(inp.get("properties") or {})
        links = inp.get("associations") or []
        problem = _injected(fake, f"{obj}/batch/create", trace)
        bad = (
            _bad_props(fake, obj, props)
            or _unique_clash(fake, obj, props, None)
            or _bad_links(fake, obj, links)
        )
        if problem is None and bad:
            problem = _input_error("VALIDATION_ERROR", bad, trace)
        if problem:
            errors.append(problem)
            continue
        o = _write(fake, obj, None, props)
        for assoc in links:
            for t in assoc["types"]:
                dst = TYPE_PAIRS[t["associationTypeId"]][1]
                fake.associate(obj, o["id"], dst, assoc["to"]["id"], t["associationTypeId"])
        results.append(_echo(o, props, trace))
    return _batch(results, errors, 201, rng=fake.rng)


def _bad_links(fake: FakeHubSpot, obj: str, links: list[dict]) -> str | None:
    """Inline associations HubSpot cannot make: a HUBSPOT_DEFINED type between other objects
    (the fake knows no labels for inline USER_DEFINED ones), a record that does not exist.
    Modelled as a per-input VALIDATION_ERROR (the exact answer is unconfirmed)."""
    for assoc in links:
        to = str(assoc["to"]["id"])
        for t in assoc.get("types") or []:
            pair = TYPE_PAIRS.get(t.get("associationTypeId"))
            if t.get("associationCategory") != "HUBSPOT_DEFINED" or not pair or pair[0] != obj:
                return f"association type {t.get('associationTypeId')} is not valid from {obj}"
            target = fake.objects[pair[1]].get(to)
            if target is None or target["archived"]:
                return f"cannot associate {obj} with {pair[1]} {to}: it does not exist"
    return None


def update(fake: FakeHubSpot, query, body, obj):
    _strings_only(body)
    results, errors = [], []
    for inp in body.get("inputs") or []:
        trace, props = inp.get("objectWriteTraceId"), dict(inp.get("properties") or {})
        o = fake.objects[obj].get(str(inp.get("id")))
        problem = _injected(fake, f"{obj}/batch/update", trace)
        if problem is None and (o is None or o["archived"]):
            problem = _input_error("OBJECT_NOT_FOUND", f"{obj} {inp.get('id')} not found", trace)
        if problem is None and (bad := _bad_props(fake, obj, props)):
            problem = _input_error("VALIDATION_ERROR", bad, trace)
        if problem:
            errors.append(problem)
            continue
        results.append(_echo(_write(fake, obj, o, props), props, trace))
    return _batch(results, errors, rng=fake.rng)


def archive(fake: FakeHubSpot, query, body, obj):
    for inp in body.get("inputs") or []:
        if str(inp["id"]) in fake.objects[obj]:
            fake.archive(obj, str(inp["id"]))
    return 204, None


def batch_read(fake: FakeHubSpot, query, body, obj):
    archived = (query.get("archived") or ["false"])[0].lower() == "true"
    id_prop = body.get("idProperty")
    results, errors = [], []
    for inp in body.get("inputs") or []:
        want = str(inp["id"])
        if id_prop and not archived:
            o = _by_prop(fake, obj, id_prop, want)
        elif id_prop:
            o = next(
                (
                    x
                    for x in fake.objects[obj].values()
                    if x["properties"].get(id_prop) == want and x["archived"] == archived
                ),
                None,
            )
        else:
            o = fake.objects[obj].get(want)
            o = o if o is not None and o["archived"] == archived else None
        if o is None:
            errors.append(
                _input_error(
                    "OBJECT_NOT_FOUND", f"Could not get some {obj} objects", None, ids=[want]
                )
            )
        else:
            results.append(_out(o, body.get("properties") or []))
    return _batch(results, errors)


def list_page(fake: FakeHubSpot, query, body, obj):
    archived = (query.get("archived") or ["false"])[0].lower() == "true"
    limit = min(int((query.get("limit") or ["10"])[0]), 100)
    after = int((query.get("after") or ["0"])[0])
    props = [p for v in query.get("properties") or [] for p in v.split(",") if p]
    rows = sorted(
        (o for o in fake.objects[obj].values() if o["archived"] == archived),
        key=lambda o: int(o["id"]),
    )
    page = rows[after : after + limit]
    out = {"results": [_out(o, props) for o in page]}
    if after + limit < len(rows):
        nxt = str(after + limit)
        out["paging"] = {"next": {"after": nxt, "link": f"?after={nxt}"}}
    return 200, out


def search(fake: FakeHubSpot, query, body, obj):
    limit, after = int(body.get("limit") or 10), int(body.get("after") or 0)
    if limit > 200:
        raise error(400, "VALIDATION_ERROR", "limit must be at most 200")
    if after >= SEARCH_CAP:
        raise error(400, "VALIDATION_ERROR", "paging past 10,000 results is not supported")
    groups = body.get("filterGroups") or []
    if any(not g.get("filters") for g in groups):  # HubSpot: a filter group needs a filter
        raise error(400, "VALIDATION_ERROR", "a filter group must contain at least one filter")
    cache = getattr(fake, "search_cache", None)  # a fleet portal's: emptied by any write
    key = (obj, json.dumps([groups, body.get("sorts")], sort_keys=True))
    rows = None if cache is None else cache.get(key)
    if rows is None:
        rows = [
            o
            for o in fake.objects[obj].values()
            if not o["archived"]
            and (not groups or any(all(_match(o, f) for f in g["filters"]) for g in groups))
        ]
        for sort in reversed(body.get("sorts") or []):
            name = sort if isinstance(sort, str) else sort["propertyName"]
            desc = not isinstance(sort, str) and sort.get("direction") == "DESCENDING"
            rows.sort(key=lambda o, n=name: _sortable(o["properties"].get(n)), reverse=desc)
        if cache is not None:
            cache[key] = rows
    page = rows[after : after + limit]
    out = {"total": len(rows), "results": [_out(o, body.get("properties") or []) for o in page]}
    if after + limit < len(rows):
        nxt = str(after + limit)
        out["paging"] = {"next": {"after": nxt, "link": f"?after={nxt}"}}
    return 200, out


@lru_cache(maxsize=1 << 17)  # a search sorts and filters every record: parse each value once
def _sortable(value: Any) -> tuple:
    if value is None:
        return (0, "")
    try:
        return (1, float(_ms(value)))
    except ValueError:
        return (2, value)


@lru_cache(maxsize=1 << 17)
def _ms(value: str) -> float:
    from crm_renewals.connector.adapters.hubspot import parse_time

    if value.replace(".", "", 1).isdigit():
        return float(value) if len(value) > 11 else float(value) * 1000
    return parse_time(value).timestamp() * 1000


def _match(o: dict, f: dict) -> bool:
    have = o["properties"].get(f["propertyName"])
    op = f["operator"]
    if op == "HAS_PROPERTY":
        return have not in (None, "")
    if op == "NOT_HAS_PROPERTY":
        return have in (None, "")
    if op in ("IN", "NOT_IN"):
        inside = have in [str(v) for v in f.get("values") or []]
        return inside if op == "IN" else not inside
    if have in (None, ""):
        return False
    if op == "EQ":
        return have == str(f["value"])
    if op == "NEQ":
        return have != str(f["value"])
    a, b = _ms(have), _ms(str(f["value"]))
    return {"GT": a > b, "GTE": a >= b, "LT": a < b, "LTE": a <= b}[op]


# ---------------------------------------------------------------- associations


def assoc_read(fake: FakeHubSpot, query, body, src, dst):
    if len(body.get("inputs") or []) > 1000:
        raise error(400, "VALIDATION_ERROR", "at most 1000 inputs")
    results, errors = [], []
    for inp in body.get("inputs") or []:
        links = fake.associated(src, inp["id"], dst)
        if not links:
            errors.append(
                _input_error(
                    "NO_ASSOCIATIONS_FOUND",
                    f"No {dst} is associated",
                    None,
                    fromObjectId=[str(inp["id"])],
                )
            )
            continue
        # the links of one object come a page at a time; `after` (next to the id) asks for the
        # next page, `paging` is there only while there are more (HubSpot's v4 batch read:
        # "The 'after' field in a returned paging object can be added alongside the 'id' to
        # retrieve the next page of associations from that objectId")
        start = int(inp.get("after") or 0)
        page = sorted(links.items(), key=lambda kv: int(kv[0]))[start : start + ASSOC_PAGE]
        to = [
            {
                "toObjectId": int(to_id),
                "associationTypes": [
                    {"category": c, "typeId": t, "label": LABELS.get(t)} for c, t in sorted(specs)
                ],
            }
            for to_id, specs in page
        ]
        result = {"from": {"id": str(inp["id"])}, "to": to}
        if start + ASSOC_PAGE < len(links):
            result["paging"] = {"next": {"after": str(start + ASSOC_PAGE), "link": None}}
        results.append(result)
    return _batch(results, errors)


def assoc_create(fake: FakeHubSpot, query, body, src, dst, default=False):
    results, errors = [], []
    for inp in body.get("inputs") or []:
        f, t = str(inp["from"]["id"]), str(inp["to"]["id"])
        missing = [i for o, i in ((src, f), (dst, t)) if i not in fake.objects[o]]
        if missing:
            errors.append(
                _input_error(
                    "VALIDATION_ERROR", f"ids {missing} do not exist", None, fromObjectId=[f]
                )
            )
            continue
        types = inp.get("types") or [
            {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 0}
        ]
        wrong = [
            s["associationTypeId"]
            for s in types
            if s["associationCategory"] == "HUBSPOT_DEFINED"
            and not default
            and TYPE_PAIRS.get(s["associationTypeId"]) != (src, dst)
        ]
        if wrong:
            errors.append(
                _input_error(
                    "VALIDATION_ERROR",
                    f"association type {wrong[0]} is not valid from {src} to {dst}",
                    None,
                    fromObjectId=[f],
                )
            )
            continue
        for spec in types:
            fake.new_links += fake.associate(
                src, f, dst, t, spec["associationTypeId"], spec["associationCategory"]
            )
        results.append(
            {
                "fromObjectTypeId": TYPE_IDS.get(src, src),
                "fromObjectId": f,
                "toObjectTypeId": TYPE_IDS.get(dst, dst),
                "toObjectId": t,
                "labels": [],
            }
        )
    return _batch(results, errors, 201)


def assoc_default(fake, query, body, src, dst):
    return assoc_create(fake, query, body, src, dst, default=True)


# ---------------------------------------------------------------- owners, schema


def owners(fake: FakeHubSpot, query, body):
    archived = (query.get("archived") or ["false"])[0].lower() == "true"
    limit = min(int((query.get("limit") or ["100"])[0]), 500)
    after = int((query.get("after") or ["0"])[0])
    rows = [o for _, o in sorted(fake.owners.items()) if o["archived"] == archived]
    page = rows[after : after + limit]
    out: dict[str, Any] = {"results": page}
    if after + limit < len(rows):
        out["paging"] = {"next": {"after": str(after + limit), "link": f"?after={after + limit}"}}
    return 200, out


def properties(fake: FakeHubSpot, query, body, obj):
    if obj not in fake.properties:
        # what the portal answers for a type it does not know (HubSpot/hubspot-api-php#128,
        # #233: `{"status": "error", "message": "Unable to infer object type from: ..."}`)
        raise error(400, "VALIDATION_ERROR", f"Unable to infer object type from: {obj}")
    return 200, {"results": list(fake.properties[obj].values())}


def create_property(fake: FakeHubSpot, query, body, obj):
    name = body["name"]
    if name in fake.properties[obj]:
        raise error(409, "OBJECT_ALREADY_EXISTS", f"A property named '{name}' already exists.")
    prop = _prop(
        name,
        body["label"],
        body["type"],
        body["fieldType"],
        bool(body.get("hasUniqueValue")),
        body["groupName"],
    )
    fake.properties[obj][name] = prop
    fake.reindex(obj)
    return 201, prop


def create_group(fake: FakeHubSpot, query, body, obj):
    if body["name"] in fake.groups[obj]:
        raise error(409, "OBJECT_ALREADY_EXISTS", f"group {body['name']} already exists")
    fake.groups[obj].add(body["name"])
    return 201, {
        "name": body["name"],
        "label": body["label"],
        "displayOrder": -1,
        "archived": False,
    }


def pipeline(fake: FakeHubSpot, query, body, obj, pid):
    found = fake.pipelines.get(obj, {}).get(pid)
    if found is None:
        raise error(404, "OBJECT_NOT_FOUND", f"pipeline {pid} not found")
    return 200, found


ROUTES = [
    ("POST", OBJ + "/batch/upsert", upsert),
    ("POST", OBJ + "/batch/create", create),
    ("POST", OBJ + "/batch/update", update),
    ("POST", OBJ + "/batch/archive", archive),
    ("POST", OBJ + "/batch/read", batch_read),
    ("POST", OBJ + "/search", search),
    ("GET", OBJ, list_page),
    ("POST", ASSOC + "/read", assoc_read),
    ("POST", ASSOC + "/create", assoc_create),
    ("POST", ASSOC + "/associate/default", assoc_default),
    ("GET", r"/crm/v3/owners/?", owners),
    ("GET", r"/crm/v3/properties/(?P<obj>[\w-]+)", properties),
    ("POST", r"/crm/v3/properties/(?P<obj>[\w-]+)", create_property),
    ("POST", r"/crm/v3/properties/(?P<obj>[\w-]+)/groups", create_group),
    ("GET", r"/crm/v3/pipelines/(?P<obj>[\w-]+)/(?P<pid>[\w-]+)", pipeline),
]
