"""HubSpot writes: batch upsert by a unique property, update by id, create-once with inline
associations, v4 associations, archive. 207 multi-status errors become failed WriteResults
carrying HubSpot's category and message."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from crm_renewals.connector.adapters.hubspot import queries
from crm_renewals.connector.adapters.hubspot.kinds import Kinds, check_batch
from crm_renewals.connector.adapters.hubspot.transport import RETRIABLE, HubSpotTransport
from crm_renewals.connector.errors import CrmError, RecordRejectedError
from crm_renewals.connector.ports import OutboundRecord, WriteResult

TYPE_IDS = {
    ("deals", "companies"): 5,  # primary company
    ("deals", "contacts"): 3,
    ("deals", "line_items"): 19,
    ("line_items", "deals"): 20,
    ("tasks", "deals"): 216,
    ("tasks", "companies"): 192,
    ("tasks", "contacts"): 204,
    ("contacts", "companies"): 1,
}
#: Kinds written under a parent renewal deal (OutboundRecord.parent_key is its key).
PARENT_KIND = {"renewal_line": "renewal_opportunity", "task": "renewal_opportunity"}


def text(value: Any) -> str:
    """A property value as HubSpot takes it: the spec types every value as a string, so numbers
    go as plain decimals (never an exponent HubSpot may not parse), booleans as true/false and
    a blank as "" (HubSpot clears the property)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        value = Decimal(repr(value))  # the float's shortest text, not its binary expansion
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def _props(w: HubSpotWrites, kind: str, rec: OutboundRecord) -> tuple[dict, dict[str, str]]:
    props, links = w.k.split(rec)
    props = {k: text(v) for k, v in props.items()}
    if kind == "renewal_opportunity" and "dealstage" in props:
        props.setdefault("pipeline", w.k.settings.renewal_pipeline)
    spec = w.k.mapping.models[kind].fields.get("renewal_key")
    if kind in PARENT_KIND and rec.parent_key and spec and spec.field and spec.direction != "in":
        props.setdefault(spec.field, rec.parent_key)  # the parent's key, kept on the child
    return props, links


def _traced(inputs: list[dict]) -> list[dict]:
    """Each input with an objectWriteTraceId unique within the call (its index): HubSpot
    promises neither the order of a batch answer nor that `properties` echo the key (only what
    was sent), but each result and each error's context carries its input's trace id back."""
    return [{**inp, "objectWriteTraceId": str(i)} for i, inp in enumerate(inputs)]


def _outcome(data: dict, by_id: dict[str, str] | None = None) -> tuple[dict, dict]:
    """(trace id -> result, trace id -> error) of a batch answer (200, 201 or 207). `by_id`
    (object id -> trace id) places answers that carry no trace id (a batch update by id)."""
    by_id = by_id or {}
    done = {}
    for r in data.get("results") or []:
        trace = r.get("objectWriteTraceId") or by_id.get(str(r.get("id")))
        if trace is not None:
            done[str(trace)] = r
    failed = {}
    for err in data.get("errors") or []:
        ctx = err.get("context") or {}
        traces = _values(ctx.get("objectWriteTraceId"))
        traces = traces or [by_id[i] for i in _values(ctx.get("ids")) if i in by_id]
        failed.update({t: err for t in traces})
    return done, failed


def _values(value: Any) -> list[str]:
    """A context entry: a list of strings in the spec; a lone value is taken too."""
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


#: Error categories of a 207's per-input errors that pass with time (HubSpot changelog
#: "Upcoming: changes to error responses": RATE_LIMITS for any rate-limit error).
TRANSIENT_CATEGORIES = {"RATE_LIMITS"}


def _failed(key: str, err: dict | CrmError) -> WriteResult:
    if isinstance(err, CrmError):
        return WriteResult(key, False, error_code=err.code or str(err.status), message=str(err))
    return WriteResult(
        key,
        False,
        error_code=err.get("category") or "ERROR",
        message=err.get("message"),
        retriable=_transient(err),
    )


def _transient(err: dict) -> bool:
    """A per-input error worth sending again: a rate limit, a lock or a server error, by its
    category or its status (StandardError.status is text: an HTTP code where it is one)."""
    status = str(err.get("status") or "")
    code = int(status) if status.isdigit() else 0
    return err.get("category") in TRANSIENT_CATEGORIES or code in RETRIABLE or code >= 500


def _results(records, done, failed, kind: str, w: HubSpotWrites) -> list[WriteResult]:
    """WriteResults in the order of `records`, whose trace ids are their indexes."""
    out = []
    for i, rec in enumerate(records):
        trace = str(i)
        if trace in failed:
            out.append(_failed(rec.key, failed[trace]))
        elif trace in done:
            obj = done[trace]
            w.ids[(kind, rec.key)] = str(obj["id"])
            out.append(WriteResult(rec.key, True, str(obj["id"]), created=bool(obj.get("new"))))
        else:
            out.append(WriteResult(rec.key, False, error_code="NO_RESULT", message="not answered"))
    return out


def _bisect(w, kind, records, err, send) -> list[WriteResult]:
    """A whole batch refused (HTTP 400): halve it until the refused records are isolated."""
    if len(records) == 1:
        return [_failed(records[0].key, err)]
    mid = len(records) // 2
    return send(w, kind, records[:mid]) + send(w, kind, records[mid:])


def upsert_by_key(w: HubSpotWrites, kind: str, records: list[OutboundRecord]) -> list[WriteResult]:
    from hubspot.crm.objects import BatchInputSimplePublicObjectBatchInputUpsert

    om = w.k.mapping.models[kind]
    # inputs as wire dicts: a model per input copies the client's configuration each time
    inputs = _traced(
        [
            {"idProperty": om.key_field, "id": rec.key, "properties": _props(w, kind, rec)[0]}
            for rec in records
        ]
    )
    try:
        data = w.t.call(
            f"batch upsert {om.object}",
            w.t.api("objects.batch_api").upsert,
            om.object,
            BatchInputSimplePublicObjectBatchInputUpsert(inputs=inputs),
        )
    except RecordRejectedError as err:
        return _bisect(w, kind, records, err, upsert_by_key)
    done, failed = _outcome(data)
    return _results(records, done, failed, kind, w)


def update_by_id(w: HubSpotWrites, kind: str, records: list[OutboundRecord]) -> list[WriteResult]:
    from hubspot.crm.objects import BatchInputSimplePublicObjectBatchInput

    obj = w.k.object_type(kind)
    inputs = _traced([{"id": rec.key, "properties": _props(w, kind, rec)[0]} for rec in records])
    try:
        data = w.t.call(
            f"batch update {obj}",
            w.t.api("objects.batch_api").update,
            obj,
            BatchInputSimplePublicObjectBatchInput(inputs=inputs),
        )
    except RecordRejectedError as err:
        return _bisect(w, kind, records, err, update_by_id)
    # the key is the object id here: an answer without a trace id is placed by its id
    done, failed = _outcome(data, {rec.key: str(i) for i, rec in enumerate(records)})
    return _results(records, done, failed, kind, w)


def ids_by_key(w: HubSpotWrites, kind: str, keys: list[str]) -> dict[str, str]:
    """Object ids of records by their unique key property (cached from our own writes)."""
    found = {k: w.ids[(kind, k)] for k in keys if (kind, k) in w.ids}
    missing = [k for k in dict.fromkeys(keys) if k not in found]
    key_field = w.k.mapping.models[kind].key_field
    for i in range(0, len(missing), w.max_batch):
        for obj in queries.batch_read(
            w.t, w.k, kind, missing[i : i + w.max_batch], archived=False, id_property=key_field
        ):
            key = str((obj.get("properties") or {}).get(key_field))
            found[key] = w.ids[(kind, key)] = str(obj["id"])
    return found


def parents(w: HubSpotWrites, kind: str, records: list[OutboundRecord]) -> dict[str, str]:
    parent_kind = PARENT_KIND.get(kind)
    keys = [r.parent_key for r in records if r.parent_key]
    return ids_by_key(w, parent_kind, keys) if parent_kind and keys else {}


def _links(w, kind, rec, parent_ids) -> dict[str, str]:
    links = _props(w, kind, rec)[1]
    if rec.parent_key and rec.parent_key in parent_ids:
        links["deals"] = parent_ids[rec.parent_key]
    return links


def _orphans(records, parent_ids) -> dict[str, WriteResult]:
    return {
        r.key: WriteResult(
            r.key,
            False,
            error_code="INVALID_CROSS_REFERENCE_KEY",
            message=f"parent renewal {r.parent_key} does not exist",
        )
        for r in records
        if r.parent_key and r.parent_key not in parent_ids
    }


def upsert(w: HubSpotWrites, kind: str, records: list[OutboundRecord]) -> list[WriteResult]:
    """Upsert by key, then associate each written record (v4 create is idempotent). A record
    known to exist is associated with its parent already, and its parent never changes (its
    key holds the parent's): no lookup of the parent, no association again."""
    new = [r for r in records if not r.exists]
    parent_ids = parents(w, kind, new)
    orphans = _orphans(new, parent_ids)
    sendable = [r for r in records if r.key not in orphans]
    written = {r.key: r for r in upsert_by_key(w, kind, sendable)} if sendable else {}
    pairs: dict[str, list[tuple[str, str, str]]] = {}
    for rec in sendable:
        res = written[rec.key]
        if res.ok:
            for target, to_id in _links(w, kind, rec, parent_ids).items():
                pairs.setdefault(target, []).append((rec.key, res.crm_id, to_id))
    for target, rows in pairs.items():
        for key, err in associate(w, w.k.object_type(kind), target, rows).items():
            written[key] = _failed(key, err)
    return [orphans.get(r.key) or written[r.key] for r in records]


def associate(w: HubSpotWrites, source: str, target: str, rows: list) -> dict[str, Any]:
    """Create associations (key, from id, to id); returns key -> error for refused ones."""
    from hubspot.crm.associations.v4 import (
        BatchInputPublicAssociationMultiPost,
        BatchInputPublicDefaultAssociationMultiPost,
    )

    type_id = TYPE_IDS.get((source, target))
    failed: dict[str, Any] = {}
    batch_api = w.t.api("associations.v4.batch_api")
    for i in range(0, len(rows), w.max_batch):
        chunk = rows[i : i + w.max_batch]
        what = f"associate {source}->{target}"
        try:
            if type_id is None:
                body = BatchInputPublicDefaultAssociationMultiPost(
                    inputs=[{"from": {"id": f}, "to": {"id": t}} for _, f, t in chunk]
                )
                data = w.t.call(what, batch_api.create_default, source, target, body)
            else:
                spec = [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}]
                body = BatchInputPublicAssociationMultiPost(
                    inputs=[
                        {"from": {"id": f}, "to": {"id": t}, "types": spec} for _, f, t in chunk
                    ]
                )
                data = w.t.call(what, batch_api.create, source, target, body)
        except RecordRejectedError as err:
            failed.update({key: err for key, _, _ in chunk})
            continue
        if data.get("numErrors"):
            by_id = {f: key for key, f, _ in chunk}
            for err in data.get("errors") or []:
                ids = [str(v) for vals in (err.get("context") or {}).values() for v in vals]
                hit = [by_id[x] for x in ids if x in by_id] or list(by_id.values())
                failed.update({key: err for key in hit})
    return failed


def create_missing(w: HubSpotWrites, kind: str, records: list[OutboundRecord]) -> list[WriteResult]:
    """Create records whose key is not in HubSpot yet, with their associations inline."""
    from hubspot.crm.objects import BatchInputSimplePublicObjectBatchInputForCreate

    om = w.k.mapping.models[kind]
    existing = ids_by_key(w, kind, [r.key for r in records])
    parent_ids = parents(w, kind, [r for r in records if r.key not in existing])
    out = {k: WriteResult(k, True, i, created=False) for k, i in existing.items()}
    out.update(_orphans([r for r in records if r.key not in out], parent_ids))
    todo = [r for r in records if r.key not in out]
    inputs = []
    for rec in todo:
        props = {**_props(w, kind, rec)[0], om.key_field: rec.key}
        assoc = [
            {
                "to": {"id": to_id},
                "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}],
            }
            for target, to_id in _links(w, kind, rec, parent_ids).items()
            if (type_id := TYPE_IDS.get((om.object, target)))
        ]
        inputs.append({"properties": props, "associations": assoc})
    if inputs:
        try:
            data = w.t.call(
                f"batch create {om.object}",
                w.t.api("objects.batch_api").create,
                om.object,
                BatchInputSimplePublicObjectBatchInputForCreate(inputs=_traced(inputs)),
            )
            done, failed = _outcome(data)
            for obj in done.values():
                obj["new"] = True
            out.update({r.key: r for r in _results(todo, done, failed, kind, w)})
        except RecordRejectedError as err:
            out.update({r.key: _failed(r.key, err) for r in todo})
    return [out[r.key] for r in records]


def archive(w: HubSpotWrites, kind: str, ids: list[str]) -> None:
    from hubspot.crm.objects import BatchInputSimplePublicObjectId

    obj = w.k.object_type(kind)
    w.t.call(
        f"batch archive {obj}",
        w.t.api("objects.batch_api").archive,
        obj,
        BatchInputSimplePublicObjectId(inputs=[{"id": i} for i in ids]),
    )


class HubSpotWrites:
    """The port's writes; `ids` caches (kind, key) -> object id learnt from our writes."""

    def __init__(self, transport: HubSpotTransport, kinds: Kinds, max_batch: int):
        self.t, self.k = transport, kinds
        self.max_batch = max_batch
        self.ids: dict[tuple[str, str], str] = {}

    def upsert(self, kind: str, records: Sequence[OutboundRecord]) -> list[WriteResult]:
        check_batch(len(records), self.max_batch)
        if not records:
            return []
        if self.k.by_id(kind):
            return update_by_id(self, kind, list(records))
        return upsert(self, kind, list(records))

    def create_missing(self, kind: str, records: Sequence[OutboundRecord]) -> list[WriteResult]:
        check_batch(len(records), self.max_batch)
        if not records:
            return []
        return create_missing(self, kind, list(records))

    def delete(self, kind: str, keys: Sequence[str]) -> list[WriteResult]:
        check_batch(len(keys), self.max_batch)
        if not keys:
            return []
        ids = ids_by_key(self, kind, list(keys))
        found = [ids[k] for k in keys if k in ids]
        if found:
            archive(self, kind, found)
        for key in keys:
            self.ids.pop((kind, key), None)
        return [WriteResult(key, True, ids.get(key)) for key in keys]
