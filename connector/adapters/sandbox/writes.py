"""Sandbox writes with a real CRM's semantics: upsert by external key, create-once, soft
delete; per-record validation errors inside a batch (Salesforce's status codes), a batch limit,
fields checked against the org's schema (unknown, read-only such as Task.AccountId, restricted
picklists), Amount rolled up from line items. Each batch is one API
call, committed in one transaction and logged, retried by the transport."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from crm_renewals.connector.adapters.sandbox.schema import task_completed_at, write_error
from crm_renewals.connector.adapters.sandbox.transport import PREFIXES, SandboxTransport
from crm_renewals.connector.domain.mapping import Mapping
from crm_renewals.connector.ports import OutboundRecord, WriteResult

#: Where a child record points at its parent (kind -> field holding the parent's id).
PARENT_FIELD = {"renewal_line": "OpportunityId", "task": "WhatId"}
#: The sandbox org's required fields, by object.
REQUIRED = {
    "Opportunity": ("Name", "StageName", "CloseDate", "OwnerId"),
    "OpportunityLineItem": ("ProductCode", "Quantity", "UnitPrice"),
    "Task": ("Subject", "OwnerId", "ActivityDate"),
}


class SandboxWrites:
    def __init__(self, transport: SandboxTransport, mapping: Mapping, max_batch: int):
        self.t, self.mapping, self.max_batch = transport, mapping, max_batch

    def upsert(self, kind: str, records: Sequence[OutboundRecord]) -> list[WriteResult]:
        return self.t.retried(self._write, kind, records, True)

    def create_missing(self, kind: str, records: Sequence[OutboundRecord]) -> list[WriteResult]:
        return self.t.retried(self._write, kind, records, False)

    def delete(self, kind: str, keys: Sequence[str]) -> list[WriteResult]:
        return self.t.retried(self._delete, kind, keys)

    def _delete(self, kind: str, keys: Sequence[str]) -> list[WriteResult]:
        self.t.check_batch(len(keys), self.max_batch)
        self.t.call()
        obj = self.mapping.models[kind].object
        now = self.t.now()
        with self.t.transaction():
            self.t.log("delete", kind, len(keys))
            parents = set()
            for key in keys:
                row = self.t.db.execute(
                    "UPDATE records SET deleted = 1, modstamp = ? WHERE object = ? AND ext_key = ? "
                    "AND deleted = 0 RETURNING json_extract(fields, '$.OpportunityId')",
                    (now, obj, key),
                ).fetchone()
                parents.add(row and row[0])
            self.t.roll_up(obj, parents, now)
        return [WriteResult(key, True) for key in keys]

    def _write(
        self, kind: str, records: Sequence[OutboundRecord], update_existing: bool
    ) -> list[WriteResult]:
        self.t.check_batch(len(records), self.max_batch)
        self.t.call()
        om = self.mapping.models[kind]
        now = self.t.now()
        results = []
        with self.t.transaction():
            self.t.log("upsert" if update_existing else "create_missing", kind, len(records))
            parents = set()
            for rec in records:
                result, parent = self._write_one(
                    kind, om.object, om.key_field, rec, now, update_existing
                )
                results.append(result)
                parents.add(parent)
            self.t.roll_up(om.object, parents, now)
        return results

    def _write_one(
        self, kind, obj, key_field, rec: OutboundRecord, now: str, update_existing: bool
    ) -> tuple[WriteResult, str | None]:
        """The record's result, and the opportunity whose amount it changes (a line's)."""
        by_id = key_field == "Id"
        column = "id" if by_id else "ext_key"
        row = self.t.db.execute(
            f"SELECT id, fields FROM records WHERE object = ? AND {column} = ? AND deleted = 0",
            (obj, rec.key),
        ).fetchone()
        if by_id and row is None:
            return _refused(rec.key, "ENTITY_IS_DELETED", f"{obj} {rec.key} not found"), None
        if row is not None and not update_existing:
            return WriteResult(rec.key, True, row[0], created=False), None
        refused = write_error(obj, rec.fields)  # the schema: unknown, read-only, picklists
        if refused:
            return _refused(rec.key, *refused), None
        fields = json.loads(row[1]) if row else {}
        fields.update(rec.fields)
        if not by_id:
            fields[key_field] = rec.key
        if kind in PARENT_FIELD and rec.parent_key is not None:
            parent = self.t.db.execute(
                "SELECT id FROM records WHERE object = ? AND ext_key = ? AND deleted = 0",
                (self.mapping.models["renewal_opportunity"].object, rec.parent_key),
            ).fetchone()
            if parent is None:
                missing = f"parent {rec.parent_key} does not exist"
                return _refused(rec.key, "INVALID_CROSS_REFERENCE_KEY", missing), None
            fields[PARENT_FIELD[kind]] = parent[0]
        error = self._validate(obj, fields)
        if error:
            return _refused(rec.key, *error), None
        if obj == "Opportunity" and row is not None and self.t.has_lines(row[0]):
            fields["Amount"] = json.loads(row[1]).get("Amount")  # rolled up: see _roll_up
        if obj == "Task":
            fields["AccountId"] = self._task_account(fields)
            fields["CompletedDateTime"] = task_completed_at(fields, now)
        if row is None:
            record_id = self.t.new_id(obj)
            fields["Id"] = record_id
            self.t.db.execute(
                "INSERT INTO records (object, id, ext_key, modstamp, fields) "
                "VALUES (?, ?, ?, ?, ?)",
                (obj, record_id, rec.key, now, json.dumps(fields)),
            )
            return WriteResult(rec.key, True, record_id, created=True), fields.get("OpportunityId")
        self.t.db.execute(
            "UPDATE records SET fields = ?, modstamp = ? WHERE object = ? AND id = ?",
            (json.dumps(fields), now, obj, row[0]),
        )
        return WriteResult(rec.key, True, row[0], created=False), fields.get("OpportunityId")

    def _task_account(self, fields: dict[str, Any]) -> str | None:
        """Task.AccountId, derived (as Salesforce derives it) from WhatId, else WhoId."""
        what = self.t.find_any(fields.get("WhatId"))
        if what is not None:
            return (
                what["Id"] if what["Id"].startswith(PREFIXES["Account"]) else what.get("AccountId")
            )
        who = self.t.find("Contact", fields.get("WhoId"))
        return who.get("AccountId") if who else None

    def _validate(self, obj: str, f: dict[str, Any]) -> tuple[str, str] | None:
        """The sandbox org's validation rules, with Salesforce's status codes."""
        required = REQUIRED.get(obj, ())
        for name in required:
            if f.get(name) in (None, ""):
                return "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{name}]"
        if obj == "Opportunity" and len(f["Name"]) > 120:
            return "STRING_TOO_LONG", "Name: data value too large (max length=120)"
        if "OwnerId" in required:
            owner = self.t.find("User", f["OwnerId"])
            if owner is None or not owner.get("IsActive"):
                return "INACTIVE_OWNER_OR_USER", f"owner {f['OwnerId']} is inactive or unknown"
        if obj == "Opportunity" and self.t.find("Account", f.get("AccountId")) is None:
            return "INVALID_CROSS_REFERENCE_KEY", f"account {f.get('AccountId')} does not exist"
        if obj == "OpportunityLineItem":
            if not self.t.db.execute(
                "SELECT 1 FROM records WHERE object = 'Product2' AND deleted = 0 "
                "AND json_extract(fields, '$.ProductCode') = ?",
                (f["ProductCode"],),
            ).fetchone():
                return (
                    "FIELD_INTEGRITY_EXCEPTION",
                    f"product {f['ProductCode']} is not in the price book",
                )
            if float(f["Quantity"]) <= 0:
                return "FIELD_INTEGRITY_EXCEPTION", "Quantity must be greater than zero"
        return None


def _refused(key: str, code: str, message: str) -> WriteResult:
    return WriteResult(key, False, error_code=code, message=message)
