"""The Salesforce adapter: the CRM port over simple-salesforce and the REST API.

Reads are SOQL built with `format_soql`, through queryAll so deleted and merged records come
back flagged, ordered by (SystemModstamp, Id) and paged with nextRecordsUrl. Writes go through
sObject Collections requests of 200 records with allOrNone false, upserting by the mapping's
External ID field, so every record gets its own result and a re-run never duplicates; up to five
of them share one Composite call (1,000 records a call; `salesforce.write_api: collections` sends
each on its own). Every REST call is
counted, retried when transient, and the run stops before the org's daily API use passes the
configured share.

An OAuth connection's session (`connect_oauth`) is renewed through its grant's refresh token
when Salesforce answers INVALID_SESSION_ID, once per call.

A first or full read of a kind above `salesforce.bulk_threshold` rows runs as a Bulk API 2.0
query job instead (`bulk`: the job's lifecycle; `bulk_rows`: its CSV rows in queryAll's shape).

Parts: `transport` (login, calls, budget guard, retries, errors), `soql` (queries and answers),
`reads` (with `bulk` and `bulk_rows`), `writes` (with the lookups writes need), `diagnosis`;
`SalesforceCrm` only delegates.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from simple_salesforce import Salesforce

from crm_renewals.connector.adapters.facade import AdapterFacade
from crm_renewals.connector.adapters.salesforce.diagnosis import SalesforceDiagnosis
from crm_renewals.connector.adapters.salesforce.reads import SalesforceReads
from crm_renewals.connector.adapters.salesforce.soql import check_names, parse_datetime
from crm_renewals.connector.adapters.salesforce.transport import (
    SalesforceTransport,
    connect,
    connect_oauth,
)
from crm_renewals.connector.adapters.salesforce.writes import SalesforceWrites
from crm_renewals.connector.config_sections import SalesforceSettings
from crm_renewals.connector.domain.mapping import Mapping as FieldMapping
from crm_renewals.connector.domain.policy import RenewalPolicy
from crm_renewals.connector.ports import Cursor

if TYPE_CHECKING:
    from crm_renewals.connector.adapters.shared_limits import SharedLimits

__all__ = ["SalesforceCrm", "connect", "connect_oauth", "parse_datetime"]


class SalesforceCrm(AdapterFacade):
    system = "salesforce"

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
        shared: SharedLimits | None = None,
        org: str | None = None,
    ):
        """`shared`: the Redis every process shares the org's daily-use stop through
        (workers.redis_url); `org`: the org id when known (else the instance's host)."""
        check_names(mapping)
        self.mapping, self.settings = mapping, settings
        self.page_size = page_size
        self.policy = policy or RenewalPolicy()
        usage = shared.org(org or sf.sf_instance) if shared is not None else None
        self.transport = SalesforceTransport(
            sf,
            settings,
            retry_attempts=retry_attempts,
            retry_max_wait=retry_max_wait,
            sleep=sleep,
            shared=usage,
        )
        #: (object, external key) -> record Id, learnt from reads and writes.
        self.ids: dict[tuple[str, str], str] = {}
        self.reads = SalesforceReads(
            self.transport, mapping, self.ids, page_size, bulk_threshold=settings.bulk_threshold
        )
        self.writes = SalesforceWrites(self.transport, mapping, settings, self.ids, self.policy)
        #: records a write call carries (salesforce.write_api): the Applier's batch size
        self.max_batch = self.writes.max_batch
        self.diagnosis = SalesforceDiagnosis(self.transport, mapping, settings, self.policy)

    def prefetch(self, sinces: Mapping[str, Cursor | None]) -> None:
        self.reads.prefetch(sinces)

    @property
    def api_usage(self) -> tuple[int, int] | None:
        """(used, daily allowance) from the last Sforce-Limit-Info."""
        return self.transport.api_usage

    @api_usage.setter
    def api_usage(self, value: tuple[int, int] | None) -> None:
        self.transport.api_usage = value
