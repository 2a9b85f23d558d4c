"""The sandbox CRM: an embedded CRM over its own SQLite file, with the semantics real CRMs have.

Records are stored in Salesforce-like shapes (the sandbox mapping file translates them): upsert
by external key, a batch limit (200 a call by default), per-record validation errors inside a
batch, last-modified stamps shared by records written in the same call, soft deletes visible to
change reads (like queryAll), and one counted API call per page read or batch written.

Parts: `transport` (the database file, call counting, faults, retries), `reads`, `writes`,
`diagnosis`, and `schema` (its objects and fields, as a describe would give them);
`SandboxCrm` delegates to them and adds the admin methods a CRM's users have
(insert, edit, remove), used by `seed` (the demo book, from `book`) and tests.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from crm_renewals.connector.adapters.facade import AdapterFacade
from crm_renewals.connector.adapters.sandbox.diagnosis import SandboxDiagnosis
from crm_renewals.connector.adapters.sandbox.reads import SandboxReads
from crm_renewals.connector.adapters.sandbox.schema import task_completed_at
from crm_renewals.connector.adapters.sandbox.transport import SandboxTransport, Tx
from crm_renewals.connector.adapters.sandbox.writes import SandboxWrites
from crm_renewals.connector.domain.mapping import Mapping
from crm_renewals.connector.domain.policy import RenewalPolicy


class SandboxCrm(AdapterFacade):
    system = "sandbox"

    def __init__(
        self,
        path: str | Path,
        mapping: Mapping,
        *,
        batch_size: int = 200,
        page_size: int = 2000,
        clock: Callable[[], datetime] | None = None,
        retry_attempts: int = 5,
        retry_max_wait: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        policy: RenewalPolicy | None = None,
    ):
        self.transport = SandboxTransport(
            path,
            clock=clock,
            retry_attempts=retry_attempts,
            retry_max_wait=retry_max_wait,
            sleep=sleep,
        )
        self.mapping = mapping
        self.max_batch = batch_size
        self.page_size = page_size
        self.reads = SandboxReads(self.transport, mapping, page_size)
        self.writes = SandboxWrites(self.transport, mapping, batch_size)
        #: app.yaml's stages and opportunity type, checked against the schema by `doctor`
        self.diagnosis = SandboxDiagnosis(self.transport, mapping, policy)

    # ------------------------------------------------------------------ transport state

    @property
    def path(self) -> Path:
        return self.transport.path

    @property
    def db(self):
        return self.transport.db

    @property
    def faults(self) -> list[Exception | None]:
        """Fault injection: one entry per coming call, oldest first; None lets a call through."""
        return self.transport.faults

    @faults.setter
    def faults(self, value: list[Exception | None]) -> None:
        self.transport.faults = value

    # ------------------------------------------------------------------ admin (seed, tests)

    def insert(self, obj: str, fields: dict[str, Any], ext_key: str | None = None) -> str:
        """Create a record directly, as a user of the CRM would."""
        record_id = self.transport.new_id(obj)
        now = self.transport.now()
        self.transport.db.execute(
            "INSERT INTO records (object, id, ext_key, modstamp, fields) VALUES (?, ?, ?, ?, ?)",
            (obj, record_id, ext_key, now, json.dumps({**fields, "Id": record_id})),
        )
        self.transport.roll_up(obj, {fields.get("OpportunityId")}, now)
        return record_id

    def edit(self, obj: str, record_id: str, changes: dict[str, Any]) -> None:
        """Change fields of a record as a rep would (bumps its modified stamp); an amount
        rolled up from line items is not editable."""
        fields = self.get(obj, record_id)
        if obj == "Opportunity" and self.transport.has_lines(record_id):
            changes = {k: v for k, v in changes.items() if k != "Amount"}
        fields.update(changes)
        now = self.transport.now()
        if obj == "Task":
            fields["CompletedDateTime"] = task_completed_at(fields, now)
        self.transport.db.execute(
            "UPDATE records SET fields = ?, modstamp = ? WHERE object = ? AND id = ?",
            (json.dumps(fields), now, obj, record_id),
        )
        self.transport.roll_up(obj, {fields.get("OpportunityId")}, now)

    def remove(self, obj: str, record_id: str) -> None:
        now = self.transport.now()
        self.transport.db.execute(
            "UPDATE records SET deleted = 1, modstamp = ? WHERE object = ? AND id = ?",
            (now, obj, record_id),
        )
        self.transport.roll_up(obj, {self.get(obj, record_id).get("OpportunityId")}, now)

    def get(self, obj: str, record_id: str) -> dict[str, Any]:
        row = self.transport.db.execute(
            "SELECT fields FROM records WHERE object = ? AND id = ?", (obj, record_id)
        ).fetchone()
        if row is None:
            raise KeyError(f"{obj} {record_id} does not exist")
        return json.loads(row[0])

    def all(self, obj: str, include_deleted: bool = False) -> list[dict[str, Any]]:
        rows = self.transport.db.execute(
            "SELECT fields FROM records WHERE object = ? AND deleted <= ? ORDER BY id",
            (obj, int(include_deleted)),
        ).fetchall()
        return [json.loads(r[0]) for r in rows]

    def api_log(self, after: int = 0) -> list[tuple[int, str, str, int]]:
        """Write calls the sandbox committed, in order: (seq, method, kind, records)."""
        return self.transport.db.execute(
            "SELECT seq, method, kind, records FROM api_log WHERE seq > ? ORDER BY seq", (after,)
        ).fetchall()

    def transaction(self) -> Tx:
        return self.transport.transaction()
