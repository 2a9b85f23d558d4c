"""Salesforce writes: sObject Collections requests of 200 records with allOrNone false,
upserting by the mapping's External ID field, so every record gets its own result and a re-run
never duplicates. With `salesforce.write_api: composite` (the default) up to five of them go in
one Composite call, 1,000 records (composite.py: the documented limits); `collections` sends
each as its own call. A write group of more than `salesforce.bulk_write_threshold` records goes
as a Bulk API 2.0 ingest job instead (bulk_ingest.py), with the same per-record answers. Also
the lookups writes need: parents' ids by key, CPQ's renewal opportunities, the price book and
its entries by product code."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from simple_salesforce import format_soql

from crm_renewals.connector.adapters.salesforce import composite
from crm_renewals.connector.adapters.salesforce.bulk_ingest import JOB_RECORDS, BulkIngest
from crm_renewals.connector.adapters.salesforce.soql import MAX_IDS_PER_QUERY, plain
from crm_renewals.connector.adapters.salesforce.transport import (
    RETRIABLE_CODES,
    SalesforceTransport,
)
from crm_renewals.connector.config_sections import SalesforceSettings
from crm_renewals.connector.domain.mapping import Mapping as FieldMapping
from crm_renewals.connector.domain.policy import RenewalPolicy
from crm_renewals.connector.errors import CrmError, FatalCrmError
from crm_renewals.connector.ports import OutboundRecord, WriteResult

#: Fields sent only when a record is created: Salesforce refuses them on update (a line's
#: opportunity and price book entry), or an update would undo a rep's change (a renewal's price
#: book, which the connector sets on insert: a rep may switch it later).
CREATE_ONLY = {
    "OpportunityLineItem": ("OpportunityId", "PricebookEntryId"),
    "Opportunity": ("Pricebook2Id",),
}
#: Where a child record points at its renewal opportunity.
PARENT_FIELD = {"renewal_line": "OpportunityId", "task": "WhatId"}
DUPLICATE_ID = re.compile(r"id:\s*([A-Za-z0-9]{15,18})")


class SalesforceWrites:
    system = "salesforce"

    def __init__(
        self,
        transport: SalesforceTransport,
        mapping: FieldMapping,
        settings: SalesforceSettings,
        ids: dict[tuple[str, str], str],
        policy: RenewalPolicy,
    ):
        self.t, self.mapping, self.settings = transport, mapping, settings
        #: records a call: one Collections request, or five in a Composite request
        self.call_size = (
            composite.RECORDS_PER_COMPOSITE
            if settings.write_api == "composite"
            else composite.COLLECTION_SIZE
        )
        self.bulk = BulkIngest(transport)
        #: records a batch the Applier hands over: a bulk job's, or a call's without bulk writes
        self.max_batch = JOB_RECORDS if settings.bulk_write_threshold else self.call_size
        #: (object, external key) -> record Id, learnt from reads and writes (shared).
        self.ids = ids
        self.policy = policy
        self._entries: dict[str, str] | None = None
        self._pricebook: str | None = settings.pricebook_id

    def upsert(self, kind: str, records: Sequence[OutboundRecord]) -> list[WriteResult]:
        om = self.mapping.models[kind]
        if om.key_field in (None, "Id"):
            return self._update_by_id(om.object, records)
        ready, results = self._prepare(kind, records)
        create_only = CREATE_ONLY.get(om.object, ())
        full = dict(ready)
        known = {i for i in full if create_only and self._exists(om.object, records[i])}
        ready = [(i, _without(body, create_only) if i in known else body) for i, body in ready]
        answers = self._write("upsert", om.object, om.key_field, [body for _, body in ready])
        for (i, _), answer in zip(ready, answers, strict=True):
            results[i] = self._result(om.object, records[i].key, answer)
        # guessed wrong whether a record exists (one more call, only then): one thought new
        # that exists refuses the insert-only fields, so it goes again without them; one
        # thought to exist that is gone (purged unseen) misses them, so it goes again with them
        again = []
        for i, body in ready:
            code = results[i].error_code
            if create_only and i not in known and code == "INVALID_FIELD_FOR_INSERT_UPDATE":
                again.append((i, _without(body, create_only)))
            elif i in known and code == "REQUIRED_FIELD_MISSING":
                again.append((i, full[i]))
        if again:
            answers = self._write("upsert", om.object, om.key_field, [b for _, b in again])
            for (i, _), answer in zip(again, answers, strict=True):
                results[i] = self._result(om.object, records[i].key, answer)
        return results  # type: ignore[return-value]

    def create_missing(self, kind: str, records: Sequence[OutboundRecord]) -> list[WriteResult]:
        """Insert; a record whose external key exists already (DUPLICATE_VALUE) is left alone."""
        om = self.mapping.models[kind]
        ready, results = self._prepare(kind, records)
        answers = self._write("insert", om.object, om.key_field, [body for _, body in ready])
        for (i, _), answer in zip(ready, answers, strict=True):
            result = self._result(om.object, records[i].key, answer)
            if result.ok:
                result = WriteResult(result.key, True, result.crm_id, created=True)
            elif result.error_code == "DUPLICATE_VALUE":
                found = DUPLICATE_ID.search(result.message or "")
                result = WriteResult(records[i].key, True, found.group(1) if found else None)
            results[i] = result
        return results  # type: ignore[return-value]

    def delete(self, kind: str, keys: Sequence[str]) -> list[WriteResult]:
        om = self.mapping.models[kind]
        ids = self._ids_of(om.object, om.key_field, keys)
        present = [(k, ids[k]) for k in keys if k in ids]
        results = {k: WriteResult(k, True) for k in keys if k not in ids}
        if present:
            self._check_size(len(present))
            answers = []
            for part in composite.chunks([i for _, i in present], self.call_size):
                answers += composite.delete_call(self.t, part)
            for (key, record_id), answer in zip(present, answers, strict=True):
                result = self._result(om.object, key, answer)
                if not result.ok and result.error_code == "ENTITY_IS_DELETED":
                    result = WriteResult(key, True, record_id)
                if result.ok:
                    self.ids.pop((om.object, key), None)
                results[key] = result
        return [results[k] for k in keys]

    def _prepare(
        self, kind: str, records: Sequence[OutboundRecord]
    ) -> tuple[list[tuple[int, dict[str, Any]]], list[WriteResult | None]]:
        """Request bodies for the records that can be sent, and failed results for the rest
        (unknown parent, product not in the price book)."""
        om = self.mapping.models[kind]
        results: list[WriteResult | None] = [None] * len(records)
        parents: dict[str, str] = {}
        if kind in PARENT_FIELD:
            parent = self.mapping.models["renewal_opportunity"]
            wanted = [r.parent_key for r in records if r.parent_key and not r.parent_id]
            parents = self._ids_of(parent.object, parent.key_field, wanted)
            if self.policy.renewal_mode == "cpq":
                parents.update(self._cpq_renewals([k for k in wanted if k not in parents]))
        ready, refreshed = [], False
        for i, rec in enumerate(records):
            body: dict[str, Any] = {"attributes": {"type": om.object}, **rec.fields}
            if om.key_field:
                body[om.key_field] = rec.key
            if kind == "renewal_opportunity" and "Pricebook2Id" not in body:
                body["Pricebook2Id"] = self._pricebook_id()
            if rec.parent_id:
                body[PARENT_FIELD[kind]] = rec.parent_id
            elif rec.parent_key:
                if rec.parent_key not in parents:
                    results[i] = _refused(
                        rec.key,
                        "INVALID_CROSS_REFERENCE_KEY",
                        f"renewal {rec.parent_key} does not exist in Salesforce",
                    )
                    continue
                body[PARENT_FIELD[kind]] = parents[rec.parent_key]
            if om.object == "OpportunityLineItem" and "ProductCode" in body:
                code = body.pop("ProductCode")
                entries = self._entries_by_code()
                if code not in entries and not refreshed:  # activated since it was read
                    entries, refreshed = self._entries_by_code(refresh=True), True
                entry = entries.get(code)
                if entry is None:
                    results[i] = _refused(
                        rec.key,
                        "PRICEBOOK_ENTRY_MISSING",
                        f"product {code} has no active entry in price book {self._pricebook_id()}",
                    )
                    continue
                body["PricebookEntryId"] = entry
            ready.append((i, body))
        return ready, results

    def _exists(self, obj: str, rec: OutboundRecord) -> bool:
        """Known to be in the org: the connector says so, or this adapter read or wrote it."""
        return rec.exists or (obj, rec.key) in self.ids

    def _update_by_id(self, obj: str, records: Sequence[OutboundRecord]) -> list[WriteResult]:
        body = [{"attributes": {"type": obj}, "id": r.key, **r.fields} for r in records]
        answers = self._write("update", obj, "Id", body)
        return [self._result(obj, r.key, a) for r, a in zip(records, answers, strict=True)]

    def _write(
        self, operation: str, obj: str, key_field: str | None, records: list[dict]
    ) -> list[dict[str, Any]]:
        """Per-record answers of upsert (by `key_field`), insert or update (by id): one Bulk
        API 2.0 ingest job above salesforce.bulk_write_threshold, else sObject Collections
        requests, `call_size` records a call."""
        if not records:
            return []
        self._check_size(len(records))
        threshold = self.settings.bulk_write_threshold
        if threshold is not None and len(records) > threshold and key_field:
            return self.bulk.write(obj, operation, key_field, records)
        method, path = {
            "upsert": ("PATCH", f"composite/sobjects/{obj}/{key_field}"),
            "insert": ("POST", "composite/sobjects"),
            "update": ("PATCH", "composite/sobjects"),
        }[operation]
        answers = []
        for part in composite.chunks(records, self.call_size):
            answers += composite.collections_call(self.t, method, path, part)
        return answers

    def _check_size(self, size: int) -> None:
        if size > self.max_batch:
            raise CrmError(
                f"batch of {size} exceeds the {self.max_batch} records a call of "
                f"salesforce.write_api: {self.settings.write_api}",
                system=self.system,
                code="EXCEEDED_MAX_BATCH",
            )

    def _result(self, obj: str, key: str, answer: dict[str, Any]) -> WriteResult:
        if answer.get("success"):
            record_id = answer.get("id")
            if record_id:
                self.ids[(obj, key)] = record_id
            return WriteResult(key, True, record_id, created=bool(answer.get("created")))
        errors = answer.get("errors") or [{}]
        first = errors[0]
        code = first.get("statusCode") or first.get("errorCode") or "UNKNOWN_ERROR"
        fields = first.get("fields") or []
        message = first.get("message", "") + (f" (fields: {', '.join(fields)})" if fields else "")
        return WriteResult(
            key, False, error_code=code, message=message, retriable=code in RETRIABLE_CODES
        )

    def _ids_of(self, obj: str, key_field: str | None, keys: Sequence[str]) -> dict[str, str]:
        """Record ids for external keys: from what this adapter has seen, else one query."""
        found = {k: self.ids[(obj, k)] for k in keys if (obj, k) in self.ids}
        missing = sorted({k for k in keys if k not in found})
        for i in range(0, len(missing), MAX_IDS_PER_QUERY):
            chunk = missing[i : i + MAX_IDS_PER_QUERY]
            soql = format_soql(
                "SELECT Id, {:literal} FROM {:literal} WHERE {:literal} IN {}",
                key_field,
                obj,
                key_field,
                chunk,
            )
            for rec in self._records(soql):
                found[rec[key_field]] = self.ids[(obj, rec[key_field])] = rec["Id"]
        return found

    def _cpq_renewals(self, keys: list[str]) -> dict[str, str]:
        """CPQ mode: renewal key (<contract>:<end>) -> the renewal opportunity CPQ made for the
        contract (SBQQ__RenewalOpportunity__c), when the contract's term still ends there."""
        fields = self.mapping.models["contract"].fields
        end, link = fields["end_date"].field, fields["cpq_renewal_id"].field
        contracts = sorted({k.rsplit(":", 1)[0] for k in keys})
        found: dict[str, str] = {}
        for i in range(0, len(contracts), MAX_IDS_PER_QUERY):
            soql = format_soql(
                "SELECT Id, {:literal}, {:literal} FROM Contract WHERE Id IN {}",
                end,
                link,
                contracts[i : i + MAX_IDS_PER_QUERY],
            )
            for rec in self._records(soql):
                if rec.get(link):
                    found[f"{rec['Id']}:{rec[end]}"] = rec[link]
        return {k: found[k] for k in keys if k in found}

    def _pricebook_id(self) -> str:
        if self._pricebook is None:
            rows = self._records("SELECT Id FROM Pricebook2 WHERE IsStandard = true LIMIT 1")
            if not rows:
                raise FatalCrmError(
                    "the org has no standard price book; set salesforce.pricebook_id",
                    system=self.system,
                )
            self._pricebook = rows[0]["Id"]
        return self._pricebook

    def _entries_by_code(self, refresh: bool = False) -> dict[str, str]:
        """Active price book entries of the renewal price book, by product code (one query,
        again on `refresh`: an admin may activate an entry while the process runs)."""
        if self._entries is None or refresh:
            soql = format_soql(
                "SELECT Id, Product2.ProductCode FROM PricebookEntry "
                "WHERE Pricebook2Id = {} AND IsActive = true",
                self._pricebook_id(),
            )
            self._entries = {
                r["Product2"]["ProductCode"]: r["Id"]
                for r in self._records(soql)
                if r.get("Product2") and r["Product2"].get("ProductCode")
            }
        return self._entries

    def _records(self, soql: str) -> list[dict[str, Any]]:
        return [plain(r) for r in self.t.records(soql)]


def _without(body: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in names}


def _refused(key: str, code: str, message: str) -> WriteResult:
    return WriteResult(key, False, error_code=code, message=message)
