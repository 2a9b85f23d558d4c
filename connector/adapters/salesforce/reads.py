"""Salesforce reads: SOQL through queryAll so deleted and merged records come back flagged,
ordered by (SystemModstamp, Id) and paged with nextRecordsUrl; reads by id 200 at a time.
Records read teach the shared id cache (object, external key) -> Id."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

from simple_salesforce import format_soql

from crm_renewals.connector.adapters.salesforce.soql import (
    MAX_IDS_PER_QUERY,
    NO_RECYCLE_BIN,
    filters,
    parse_datetime,
    plain,
    select,
)
from crm_renewals.connector.adapters.salesforce.transport import SalesforceTransport
from crm_renewals.connector.domain.mapping import Mapping as FieldMapping
from crm_renewals.connector.ports import Cursor, SourceRecord

log = logging.getLogger(__name__)


class SalesforceReads:
    def __init__(
        self,
        transport: SalesforceTransport,
        mapping: FieldMapping,
        ids: dict[tuple[str, str], str],
        page_size: int,
    ):
        self.t, self.mapping, self.ids, self.page_size = transport, mapping, ids, page_size

    def read_changes(self, kind: str, since: Cursor | None) -> Iterator[list[SourceRecord]]:
        om = self.mapping.models[kind]
        stamp = om.modified_field or "SystemModstamp"
        where = filters(om)
        if since is not None:
            if since.record_id:
                where.append(
                    format_soql(
                        "({:literal} > {} OR ({:literal} = {} AND Id > {}))",
                        stamp,
                        since.modified_at,
                        stamp,
                        since.modified_at,
                        since.record_id,
                    )
                )
            else:
                where.append(format_soql("{:literal} >= {}", stamp, since.modified_at))
        soql = select(self.mapping, kind, where) + format_soql(" ORDER BY {:literal}, Id", stamp)
        yield from self._pages(kind, soql)

    def read_ids(self, kind: str, ids: Sequence[str]) -> list[SourceRecord]:
        out: list[SourceRecord] = []
        unique = list(dict.fromkeys(ids))
        where = filters(self.mapping.models[kind])  # the kind's records only: not a rep's own task
        for i in range(0, len(unique), MAX_IDS_PER_QUERY):
            chunk = unique[i : i + MAX_IDS_PER_QUERY]
            soql = select(self.mapping, kind, [*where, format_soql("Id IN {}", chunk)])
            for page in self._pages(kind, soql):
                out += page
        return out

    def _pages(self, kind: str, soql: str) -> Iterator[list[SourceRecord]]:
        om = self.mapping.models[kind]
        log.debug("SOQL %s", soql)
        deleted = om.object not in NO_RECYCLE_BIN  # queryAll, else query
        for body in self.t.pages(soql, include_deleted=deleted, page_size=self.page_size):
            page = [self._source(om, rec) for rec in body.get("records", [])]
            if page:
                yield page

    def _source(self, om, rec: dict[str, Any]) -> SourceRecord:
        fields = plain(rec)
        stamp = fields.get(om.modified_field or "SystemModstamp")
        deleted = bool(fields.get("IsDeleted"))
        key = fields.get(om.key_field) if om.key_field and om.key_field != "Id" else None
        if key and not deleted:
            self.ids[(om.object, key)] = fields["Id"]
        return SourceRecord(fields["Id"], parse_datetime(stamp), fields, deleted)
