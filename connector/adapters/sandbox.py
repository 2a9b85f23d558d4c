"""The sandbox CRM: an embedded CRM over its own SQLite file, with the semantics real CRMs have.

Records are stored in Salesforce-like shapes (the sandbox mapping file translates them): upsert
by external key, a batch limit (200 a call by default), per-record validation errors inside a
batch, last-modified stamps shared by records written in the same call, soft deletes visible to
change reads (like queryAll), and one counted API call per page read or batch written.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connector.domain.mapping import Mapping
from connector.errors import CrmError, UnusableDatabaseError
from connector.ports import Check, Cursor, OutboundRecord, SourceRecord, WriteResult

SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    object TEXT NOT NULL, id TEXT NOT NULL, ext_key TEXT, modstamp TEXT NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0, fields TEXT NOT NULL, PRIMARY KEY (object, id));
CREATE UNIQUE INDEX IF NOT EXISTS records_ext ON records (object, ext_key)
    WHERE ext_key IS NOT NULL AND deleted = 0;
CREATE INDEX IF NOT EXISTS records_stamp ON records (object, modstamp, id);
CREATE INDEX IF NOT EXISTS records_id ON records (id);
CREATE INDEX IF NOT EXISTS records_opportunity ON records (json_extract(fields, '$.OpportunityId'))
    WHERE object = 'OpportunityLineItem' AND deleted = 0;
CREATE TABLE IF NOT EXISTS counters (object TEXT PRIMARY KEY, next INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS api_log (seq INTEGER PRIMARY KEY AUTOINCREMENT, method TEXT NOT NULL,
    kind TEXT NOT NULL, records INTEGER NOT NULL);
"""
#: Id prefixes, as Salesforce key prefixes do it: an id tells its object.
PREFIXES = {
    "User": "005",
    "Account": "001",
    "Contact": "003",
    "Contract": "800",
    "Product2": "01t",
    "ContractLine": "811",
    "Opportunity": "006",
    "OpportunityLineItem": "00k",
    "Task": "00T",
}
#: Where a child record points at its parent (kind -> field holding the parent's id).
PARENT_FIELD = {"renewal_line": "OpportunityId", "task": "WhatId"}
#: Fields the CRM derives on save (Task.AccountId from WhatId / WhoId): not writable.
DERIVED = {"Task": {"AccountId"}}


def stamp(moment: datetime) -> str:
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )


def _open(path: Path) -> sqlite3.Connection:
    """The sandbox's database file, created if missing; one that is not a sandbox database
    (damaged, not SQLite, read-only) is refused with what to do."""
    db = sqlite3.connect(str(path), isolation_level=None, timeout=30)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(SCHEMA)
        db.execute("SELECT 1 FROM records LIMIT 1").fetchone()
    except sqlite3.DatabaseError as exc:
        db.close()
        raise UnusableDatabaseError(
            f"sandbox database {path} cannot be used ({exc}): start it afresh with `renewals "
            "sandbox seed --reset`, or point sandbox.database at another file"
        ) from None
    return db


class SandboxCrm:
    system = "sandbox"

    def __init__(
        self,
        path: str | Path,
        mapping: Mapping,
        *,
        batch_size: int = 200,
        page_size: int = 2000,
        clock: Callable[[], datetime] | None = None,
        kill_after_writes: int | None = None,
    ):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = _open(self.path)
        self.mapping = mapping
        self.max_batch = batch_size
        self.page_size = page_size
        self.clock = clock or (lambda: datetime.now(UTC))
        self.api_calls = 0
        self.writes_left = kill_after_writes
        #: Fault injection: one entry per coming call, oldest first; None lets a call through.
        self.faults: list[Exception | None] = []

    # ------------------------------------------------------------------ the port

    def read_changes(self, kind: str, since: Cursor | None) -> Iterator[list[SourceRecord]]:
        om = self.mapping.models[kind]
        related = [f for f in self.mapping.source_fields(kind) if "." in f]
        after = (stamp(since.modified_at), since.record_id) if since else ("", "")
        while True:
            self._call()
            rows = self.db.execute(
                "SELECT id, modstamp, deleted, fields FROM records WHERE object = ? AND "
                "(modstamp > ? OR (modstamp = ? AND id > ?)) ORDER BY modstamp, id LIMIT ?",
                (om.object, after[0], after[0], after[1], self.page_size + 1),
            ).fetchall()
            more, rows = len(rows) > self.page_size, rows[: self.page_size]
            page = [self._source(om.object, row, om.modified_field) for row in rows]
            if related:
                self._resolve(page, related)
            if page:
                yield page
            if not more:  # like Salesforce's `done`: no empty page after a full one
                return
            after = (rows[-1][1], rows[-1][0])

    def read_ids(self, kind: str, ids: Sequence[str]) -> list[SourceRecord]:
        om = self.mapping.models[kind]
        related = [f for f in self.mapping.source_fields(kind) if "." in f]
        out: list[SourceRecord] = []
        for chunk in _chunks(list(dict.fromkeys(ids)), self.page_size):
            self._call()
            marks = ",".join("?" * len(chunk))
            rows = self.db.execute(
                f"SELECT id, modstamp, deleted, fields FROM records WHERE object = ? "
                f"AND id IN ({marks}) ORDER BY modstamp, id",
                (om.object, *chunk),
            ).fetchall()
            page = [self._source(om.object, row, om.modified_field) for row in rows]
            if related:
                self._resolve(page, related)
            out += page
        return out

    def upsert(self, kind: str, records: Sequence[OutboundRecord]) -> list[WriteResult]:
        return self._write(kind, records, update_existing=True)

    def create_missing(self, kind: str, records: Sequence[OutboundRecord]) -> list[WriteResult]:
        return self._write(kind, records, update_existing=False)

    def delete(self, kind: str, keys: Sequence[str]) -> list[WriteResult]:
        self._check_batch(len(keys))
        self._call()
        obj = self.mapping.models[kind].object
        now = stamp(self.clock())
        with self._transaction():
            self._log("delete", kind, len(keys))
            parents = set()
            for key in keys:
                row = self.db.execute(
                    "UPDATE records SET deleted = 1, modstamp = ? WHERE object = ? AND ext_key = ? "
                    "AND deleted = 0 RETURNING json_extract(fields, '$.OpportunityId')",
                    (now, obj, key),
                ).fetchone()
                parents.add(row and row[0])
            self._roll_up(obj, parents, now)
        self._after_write()
        return [WriteResult(key, True) for key in keys]

    def close(self) -> None:
        self.db.close()

    # ------------------------------------------------------------------ diagnosis

    def doctor(self) -> list[Check]:
        checks = [Check("sandbox database", True, str(self.path))]
        for kind, om in self.mapping.models.items():
            (count,) = self.db.execute(
                "SELECT count(*) FROM records WHERE object = ? AND deleted = 0", (om.object,)
            ).fetchone()
            needed = kind in ("owner", "account", "contract")
            checks.append(
                Check(
                    f"object {om.object} ({kind})",
                    count > 0 or not needed,
                    f"{count} records",
                    "seed the sandbox: renewals sandbox seed" if needed and not count else None,
                )
            )
        return checks

    def check_mapping_online(self) -> list[Check]:
        """The sandbox has no schema: a mapped field must appear on its object's records."""
        checks = []
        for kind, om in self.mapping.models.items():
            seen: set[str] = set()
            for (fields,) in self.db.execute(
                "SELECT fields FROM records WHERE object = ? LIMIT 200", (om.object,)
            ):
                seen.update(json.loads(fields))
            if not seen:
                checks.append(Check(f"{om.object}", True, "no records yet; nothing to compare"))
                continue
            for name in sorted({f.split(".", 1)[0] for f in self.mapping.source_fields(kind)}):
                rel = name.endswith("__r") or f"{name}Id" in seen
                ok = name in seen or rel or name in (om.key_field, om.modified_field)
                checks.append(
                    Check(
                        f"field {om.object}.{name}",
                        ok,
                        "present" if ok else "not on any record",
                        None
                        if ok
                        else f"fix the field name in {self.mapping.crm} mapping ({kind})",
                    )
                )
        return checks

    def setup(self, apply: bool) -> list[Check]:
        return [Check("sandbox", True, "the sandbox needs no custom fields")]

    # ------------------------------------------------------------------ admin (seed, tests)

    def insert(self, obj: str, fields: dict[str, Any], ext_key: str | None = None) -> str:
        """Create a record directly, as a user of the CRM would."""
        record_id = self._new_id(obj)
        now = stamp(self.clock())
        self.db.execute(
            "INSERT INTO records (object, id, ext_key, modstamp, fields) VALUES (?, ?, ?, ?, ?)",
            (obj, record_id, ext_key, now, json.dumps({**fields, "Id": record_id})),
        )
        self._roll_up(obj, {fields.get("OpportunityId")}, now)
        return record_id

    def edit(self, obj: str, record_id: str, changes: dict[str, Any]) -> None:
        """Change fields of a record as a rep would (bumps its modified stamp); an amount
        rolled up from line items is not editable."""
        fields = self.get(obj, record_id)
        if obj == "Opportunity" and self._has_lines(record_id):
            changes = {k: v for k, v in changes.items() if k != "Amount"}
        fields.update(changes)
        now = stamp(self.clock())
        self.db.execute(
            "UPDATE records SET fields = ?, modstamp = ? WHERE object = ? AND id = ?",
            (json.dumps(fields), now, obj, record_id),
        )
        self._roll_up(obj, {fields.get("OpportunityId")}, now)

    def remove(self, obj: str, record_id: str) -> None:
        now = stamp(self.clock())
        self.db.execute(
            "UPDATE records SET deleted = 1, modstamp = ? WHERE object = ? AND id = ?",
            (now, obj, record_id),
        )
        self._roll_up(obj, {self.get(obj, record_id).get("OpportunityId")}, now)

    def get(self, obj: str, record_id: str) -> dict[str, Any]:
        row = self.db.execute(
            "SELECT fields FROM records WHERE object = ? AND id = ?", (obj, record_id)
        ).fetchone()
        if row is None:
            raise KeyError(f"{obj} {record_id} does not exist")
        return json.loads(row[0])

    def all(self, obj: str, include_deleted: bool = False) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT fields FROM records WHERE object = ? AND deleted <= ? ORDER BY id",
            (obj, int(include_deleted)),
        ).fetchall()
        return [json.loads(r[0]) for r in rows]

    def api_log(self, after: int = 0) -> list[tuple[int, str, str, int]]:
        """Write calls the sandbox committed, in order: (seq, method, kind, records)."""
        return self.db.execute(
            "SELECT seq, method, kind, records FROM api_log WHERE seq > ? ORDER BY seq", (after,)
        ).fetchall()

    def transaction(self):
        return self._transaction()

    # ------------------------------------------------------------------ internals

    def _call(self) -> None:
        self.api_calls += 1
        fault = self.faults.pop(0) if self.faults else None
        if fault is not None:
            raise fault

    def _log(self, method: str, kind: str, records: int) -> None:
        # inside the write's transaction: the log holds exactly the calls the CRM committed
        self.db.execute(
            "INSERT INTO api_log (method, kind, records) VALUES (?, ?, ?)", (method, kind, records)
        )

    def _check_batch(self, size: int) -> None:
        if size > self.max_batch:
            raise CrmError(
                f"batch of {size} exceeds the limit of {self.max_batch} records a call",
                system=self.system,
                status=400,
                code="EXCEEDED_MAX_BATCH",
            )

    def _write(
        self, kind: str, records: Sequence[OutboundRecord], update_existing: bool
    ) -> list[WriteResult]:
        self._check_batch(len(records))
        self._call()
        om = self.mapping.models[kind]
        now = stamp(self.clock())
        results = []
        with self._transaction():
            self._log("upsert" if update_existing else "create_missing", kind, len(records))
            parents = set()
            for rec in records:
                result, parent = self._write_one(
                    kind, om.object, om.key_field, rec, now, update_existing
                )
                results.append(result)
                parents.add(parent)
            self._roll_up(om.object, parents, now)
        self._after_write()
        return results

    def _write_one(
        self, kind, obj, key_field, rec: OutboundRecord, now: str, update_existing: bool
    ) -> tuple[WriteResult, str | None]:
        """The record's result, and the opportunity whose amount it changes (a line's)."""
        by_id = key_field == "Id"
        column = "id" if by_id else "ext_key"
        row = self.db.execute(
            f"SELECT id, fields FROM records WHERE object = ? AND {column} = ? AND deleted = 0",
            (obj, rec.key),
        ).fetchone()
        if by_id and row is None:
            return _refused(rec.key, "ENTITY_IS_DELETED", f"{obj} {rec.key} not found"), None
        if row is not None and not update_existing:
            return WriteResult(rec.key, True, row[0], created=False), None
        if obj in DERIVED and DERIVED[obj] & rec.fields.keys():
            fields_ = ", ".join(sorted(DERIVED[obj] & rec.fields.keys()))
            return _refused(
                rec.key,
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                f"Unable to create/update fields: {fields_}. Please check the security settings "
                "of this field and verify that it is read/write for your profile or permission "
                "set.",
            ), None
        fields = json.loads(row[1]) if row else {}
        fields.update(rec.fields)
        if not by_id:
            fields[key_field] = rec.key
        if kind in PARENT_FIELD and rec.parent_key is not None:
            parent = self.db.execute(
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
        if obj == "Opportunity" and row is not None and self._has_lines(row[0]):
            fields["Amount"] = json.loads(row[1]).get("Amount")  # rolled up: see _roll_up
        if obj == "Task":
            fields["AccountId"] = self._task_account(fields)
        if row is None:
            record_id = self._new_id(obj)
            fields["Id"] = record_id
            self.db.execute(
                "INSERT INTO records (object, id, ext_key, modstamp, fields) "
                "VALUES (?, ?, ?, ?, ?)",
                (obj, record_id, rec.key, now, json.dumps(fields)),
            )
            return WriteResult(rec.key, True, record_id, created=True), fields.get("OpportunityId")
        self.db.execute(
            "UPDATE records SET fields = ?, modstamp = ? WHERE object = ? AND id = ?",
            (json.dumps(fields), now, obj, row[0]),
        )
        return WriteResult(rec.key, True, row[0], created=False), fields.get("OpportunityId")

    def _has_lines(self, opportunity_id: str) -> bool:
        return (
            self.db.execute(
                "SELECT 1 FROM records WHERE object = 'OpportunityLineItem' AND deleted = 0 "
                "AND json_extract(fields, '$.OpportunityId') = ? LIMIT 1",
                (opportunity_id,),
            ).fetchone()
            is not None
        )

    def _roll_up(self, obj: str, opportunity_ids: set[str | None], now: str) -> None:
        """As Salesforce does: an opportunity with line items has Amount = the sum of their
        Quantity x UnitPrice, set by the CRM (a write of Amount is ignored while lines exist),
        and the opportunity counts as changed."""
        if obj != "OpportunityLineItem":
            return
        for opp in sorted(i for i in opportunity_ids if i):
            (total, count) = self.db.execute(
                "SELECT sum(json_extract(fields, '$.Quantity') * json_extract(fields, "
                "'$.UnitPrice')), count(*) FROM records WHERE object = 'OpportunityLineItem' "
                "AND deleted = 0 AND json_extract(fields, '$.OpportunityId') = ?",
                (opp,),
            ).fetchone()
            if count:
                self.db.execute(
                    "UPDATE records SET fields = json_set(fields, '$.Amount', ?), modstamp = ? "
                    "WHERE object = 'Opportunity' AND id = ?",
                    (round(total, 2), now, opp),
                )

    def _task_account(self, fields: dict[str, Any]) -> str | None:
        """Task.AccountId, derived (as Salesforce derives it) from WhatId, else WhoId."""
        what = self._find_any(fields.get("WhatId"))
        if what is not None:
            return (
                what["Id"] if what["Id"].startswith(PREFIXES["Account"]) else what.get("AccountId")
            )
        who = self._find("Contact", fields.get("WhoId"))
        return who.get("AccountId") if who else None

    def _validate(self, obj: str, f: dict[str, Any]) -> tuple[str, str] | None:
        """The sandbox org's validation rules, with Salesforce's status codes."""
        required = {
            "Opportunity": ("Name", "StageName", "CloseDate", "OwnerId"),
            "OpportunityLineItem": ("ProductCode", "Quantity", "UnitPrice"),
            "Task": ("Subject", "OwnerId", "ActivityDate"),
        }.get(obj, ())
        for name in required:
            if f.get(name) in (None, ""):
                return "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{name}]"
        if obj == "Opportunity" and len(f["Name"]) > 120:
            return "STRING_TOO_LONG", "Name: data value too large (max length=120)"
        if "OwnerId" in required:
            owner = self._find("User", f["OwnerId"])
            if owner is None or not owner.get("IsActive"):
                return "INACTIVE_OWNER_OR_USER", f"owner {f['OwnerId']} is inactive or unknown"
        if obj == "Opportunity" and self._find("Account", f.get("AccountId")) is None:
            return "INVALID_CROSS_REFERENCE_KEY", f"account {f.get('AccountId')} does not exist"
        if obj == "OpportunityLineItem":
            if not self.db.execute(
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

    def _find_any(self, record_id: str | None) -> dict[str, Any] | None:
        if not record_id:
            return None
        row = self.db.execute(
            "SELECT fields FROM records WHERE id = ? AND deleted = 0", (record_id,)
        ).fetchone()
        return json.loads(row[0]) if row else None

    def _find(self, obj: str, record_id: str | None) -> dict[str, Any] | None:
        if not record_id:
            return None
        row = self.db.execute(
            "SELECT fields FROM records WHERE object = ? AND id = ? AND deleted = 0",
            (obj, record_id),
        ).fetchone()
        return json.loads(row[0]) if row else None

    def _after_write(self) -> None:
        # crash testing: die like `kill -9` right after the CRM committed a write
        if self.writes_left is not None:
            self.writes_left -= 1
            if self.writes_left <= 0:
                os.kill(os.getpid(), signal.SIGKILL)

    def _source(self, obj: str, row, modified_field: str | None) -> SourceRecord:
        record_id, modstamp, deleted, fields = row
        data = json.loads(fields)
        data[modified_field or "SystemModstamp"] = modstamp
        data["IsDeleted"] = bool(deleted)
        moment = datetime.fromisoformat(modstamp.replace("Z", "+00:00"))
        return SourceRecord(record_id, moment, data, bool(deleted))

    def _resolve(self, page: list[SourceRecord], paths: list[str]) -> None:
        """Fill `Rel.Field` paths from the record `RelId` points at, as SOQL does."""
        rels = {p.split(".", 1)[0] for p in paths}
        ids = {r.fields.get(f"{rel}Id") for r in page for rel in rels} - {None}
        found: dict[str, dict] = {}
        for chunk in _chunks(sorted(ids), 500):
            marks = ",".join("?" * len(chunk))
            for rid, fields in self.db.execute(
                f"SELECT id, fields FROM records WHERE id IN ({marks}) AND deleted = 0", chunk
            ):
                found[rid] = json.loads(fields)
        for rec in page:
            for rel in rels:
                rec.fields[rel] = found.get(rec.fields.get(f"{rel}Id"))

    def _new_id(self, obj: str) -> str:
        row = self.db.execute(
            "INSERT INTO counters (object, next) VALUES (?, 2) ON CONFLICT "
            "(object) DO UPDATE SET next = next + 1 RETURNING next - 1",
            (obj,),
        ).fetchone()
        return f"{PREFIXES.get(obj, 'a00')}SB{row[0]:010d}"

    def _transaction(self):
        return _Tx(self.db)


class _Tx:
    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self):
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, *_):
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")


def _refused(key: str, code: str, message: str) -> WriteResult:
    return WriteResult(key, False, error_code=code, message=message)


def _chunks(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
