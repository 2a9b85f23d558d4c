"""The sandbox's transport: its SQLite file (schema, ids, transactions, the log of committed
write calls), the count of API calls, fault injection for tests, and the retry policy every
call goes through, as a real CRM's transport would have. Also the record store's own semantics
shared by writes and admin edits (Amount rolled up from line items)."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from crm_renewals.connector.errors import CrmError, UnusableDatabaseError
from crm_renewals.connector.retry import retrying

T = TypeVar("T")

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


def stamp(moment: datetime) -> str:
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )


def open_db(path: Path) -> sqlite3.Connection:
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


class SandboxTransport:
    system = "sandbox"

    def __init__(
        self,
        path: str | Path,
        *,
        clock: Callable[[], datetime] | None = None,
        retry_attempts: int = 5,
        retry_max_wait: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = open_db(self.path)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.api_calls = 0
        #: Fault injection: one entry per coming call, oldest first; None lets a call through.
        self.faults: list[Exception | None] = []
        self.sleep = sleep
        self.retry = (retry_attempts, retry_max_wait)

    def retried(self, fn: Callable[..., T], *args: Any) -> T:
        """One API call (`fn` starts with `call()`), retried on transient errors."""
        attempts, max_wait = self.retry
        return retrying(attempts, max_wait, sleep=self.sleep)(fn, *args)

    def call(self) -> None:
        """Count an API call; an injected fault fails it."""
        self.api_calls += 1
        fault = self.faults.pop(0) if self.faults else None
        if fault is not None:
            raise fault

    def now(self) -> str:
        return stamp(self.clock())

    def log(self, method: str, kind: str, records: int) -> None:
        # inside the write's transaction: the log holds exactly the calls the CRM committed
        self.db.execute(
            "INSERT INTO api_log (method, kind, records) VALUES (?, ?, ?)", (method, kind, records)
        )

    def check_batch(self, size: int, max_batch: int) -> None:
        if size > max_batch:
            raise CrmError(
                f"batch of {size} exceeds the limit of {max_batch} records a call",
                system=self.system,
                status=400,
                code="EXCEEDED_MAX_BATCH",
            )

    def new_id(self, obj: str) -> str:
        row = self.db.execute(
            "INSERT INTO counters (object, next) VALUES (?, 2) ON CONFLICT "
            "(object) DO UPDATE SET next = next + 1 RETURNING next - 1",
            (obj,),
        ).fetchone()
        return f"{PREFIXES.get(obj, 'a00')}SB{row[0]:010d}"

    def transaction(self) -> Tx:
        return Tx(self.db)

    def close(self) -> None:
        self.db.close()

    # ------------------------------------------------------------------ the record store

    def find_any(self, record_id: str | None) -> dict[str, Any] | None:
        if not record_id:
            return None
        row = self.db.execute(
            "SELECT fields FROM records WHERE id = ? AND deleted = 0", (record_id,)
        ).fetchone()
        return json.loads(row[0]) if row else None

    def find(self, obj: str, record_id: str | None) -> dict[str, Any] | None:
        if not record_id:
            return None
        row = self.db.execute(
            "SELECT fields FROM records WHERE object = ? AND id = ? AND deleted = 0",
            (obj, record_id),
        ).fetchone()
        return json.loads(row[0]) if row else None

    def has_lines(self, opportunity_id: str) -> bool:
        return (
            self.db.execute(
                "SELECT 1 FROM records WHERE object = 'OpportunityLineItem' AND deleted = 0 "
                "AND json_extract(fields, '$.OpportunityId') = ? LIMIT 1",
                (opportunity_id,),
            ).fetchone()
            is not None
        )

    def roll_up(self, obj: str, opportunity_ids: set[str | None], now: str) -> None:
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


class Tx:
    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self):
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, *_):
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")


def chunks(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
