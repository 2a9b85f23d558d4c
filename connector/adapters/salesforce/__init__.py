"""The Salesforce adapter: the CRM port over simple-salesforce and the REST API.

Reads are SOQL built with `format_soql`, through queryAll so deleted and merged records come
back flagged, ordered by (SystemModstamp, Id) and paged with nextRecordsUrl. Writes go through
sObject Collections, 200 records a call with allOrNone false, upserting by the mapping's External
ID field, so every record gets its own result and a re-run never duplicates. Every REST call is
counted, retried when transient, and the run stops before the org's daily API use passes the
configured share.

Parts: `transport` (login, calls, budget guard, retries, errors), `soql` (queries and answers),
`reads`, `writes` (with the lookups writes need), `diagnosis`; `SalesforceCrm` only delegates.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence

from simple_salesforce import Salesforce

from connector.adapters.salesforce.diagnosis import SalesforceDiagnosis
from connector.adapters.salesforce.reads import SalesforceReads
from connector.adapters.salesforce.soql import check_names, parse_datetime
from connector.adapters.salesforce.transport import SalesforceTransport, connect
from connector.adapters.salesforce.writes import SalesforceWrites
from connector.config_sections import SalesforceSettings
from connector.domain.mapping import Mapping as FieldMapping
from connector.domain.policy import RenewalPolicy
from connector.ports import Check, Cursor, OutboundRecord, SourceRecord, WriteResult

__all__ = ["SalesforceCrm", "connect", "parse_datetime"]


class SalesforceCrm:
    system = "salesforce"
    max_batch = SalesforceWrites.max_batch

    def __init__(
        self,
        sf: Salesforce,
        mapping: FieldMapping,
        settings: SalesforceSettings,
        *,
        page_size: int = 2000,
        policy: RenewalPolicy | None = None,
        retry_attempts: int = 5,
        retry_max_wait: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ):
        check_names(mapping)
        self.mapping, self.settings = mapping, settings
        self.page_size = page_size
        self.policy = policy or RenewalPolicy()
        self.transport = SalesforceTransport(
            sf, settings, retry_attempts=retry_attempts, retry_max_wait=retry_max_wait, sleep=sleep
        )
        #: (object, external key) -> record Id, learnt from reads and writes.
        self.ids: dict[tuple[str, str], str] = {}
        self.reads = SalesforceReads(self.transport, mapping, self.ids, page_size)
        self.writes = SalesforceWrites(self.transport, mapping, settings, self.ids, self.policy)
        self.diagnosis = SalesforceDiagnosis(self.transport, mapping, settings, self.policy)

    @property
    def api_calls(self) -> int:
        return self.transport.api_calls

    @property
    def api_usage(self) -> tuple[int, int] | None:
        """(used, daily allowance) from the last Sforce-Limit-Info."""
        return self.transport.api_usage

    @api_usage.setter
    def api_usage(self, value: tuple[int, int] | None) -> None:
        self.transport.api_usage = value

    @property
    def sleep(self) -> Callable[[float], None]:
        """Waits between retries (Context.sleep: tests and the inbox worker set it)."""
        return self.transport.sleep

    @sleep.setter
    def sleep(self, value: Callable[[float], None]) -> None:
        self.transport.sleep = value

    # ------------------------------------------------------------------ the port

    def read_changes(self, kind: str, since: Cursor | None) -> Iterator[list[SourceRecord]]:
        return self.reads.read_changes(kind, since)

    def read_ids(self, kind: str, ids: Sequence[str]) -> list[SourceRecord]:
        return self.reads.read_ids(kind, ids)

    def upsert(self, kind: str, records: Sequence[OutboundRecord]) -> list[WriteResult]:
        return self.writes.upsert(kind, records)

    def create_missing(self, kind: str, records: Sequence[OutboundRecord]) -> list[WriteResult]:
        return self.writes.create_missing(kind, records)

    def delete(self, kind: str, keys: Sequence[str]) -> list[WriteResult]:
        return self.writes.delete(kind, keys)

    def close(self) -> None:
        self.transport.close()

    # ------------------------------------------------------------------ diagnosis

    def doctor(self) -> list[Check]:
        return self.diagnosis.doctor()

    def check_mapping_online(self) -> list[Check]:
        return self.diagnosis.check_mapping_online()

    def setup(self, apply: bool) -> list[Check]:
        return self.diagnosis.setup(apply)
