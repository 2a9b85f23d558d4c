"""Salesforce reads: SOQL through queryAll so deleted and merged records come back flagged,
ordered by (SystemModstamp, Id) and paged with nextRecordsUrl; reads by id 200 at a time.
Records read teach the shared id cache (object, external key) -> Id.

A first or full read (no cursor) whose query returns more than salesforce.bulk_threshold rows
runs as a Bulk API 2.0 query job instead (bulk.py, its rows shaped as queryAll's by
bulk_rows.py). The REST read's first page says how many rows there are (totalSize), so the
choice costs no call at or below the threshold, and one above it (that page is dropped).

A run's reads start together (`prefetch`): the first page of each kind comes from Composite
calls of up to five query subrequests, one API call for five kinds (composite.py: the limits);
the pages after a first one follow its nextRecordsUrl one call a page, as before."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from simple_salesforce import format_soql

from crm_renewals.connector.adapters.salesforce import composite
from crm_renewals.connector.adapters.salesforce.bulk import BulkQuery
from crm_renewals.connector.adapters.salesforce.bulk_rows import BulkShape
from crm_renewals.connector.adapters.salesforce.soql import (
    MAX_IDS_PER_QUERY,
    NO_RECYCLE_BIN,
    filters,
    parse_datetime,
    plain,
    select,
    select_list,
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
        bulk_threshold: int | None = None,
    ):
        self.t, self.mapping, self.ids, self.page_size = transport, mapping, ids, page_size
        #: rows above which a first read uses a Bulk API 2.0 job (None: never)
        self.bulk_threshold = bulk_threshold
        self.bulk = BulkQuery(transport)
        self._described: dict[str, dict[str, dict[str, Any]]] = {}
        #: kind -> how its last first read went: "rest" or "bulk" (logs, tests, benchmarks)
        self.read_by: dict[str, str] = {}
        #: kind -> (SOQL, its first page) read ahead by `prefetch`
        self._first: dict[str, tuple[str, dict]] = {}

    def prefetch(self, sinces: Mapping[str, Cursor | None]) -> None:
        """Read the first page of each kind's coming read (`read_changes(kind, since)`), five
        kinds a Composite call: one API call where five queries took five. A kind left alone in
        the last call is not read ahead (its own query costs the same)."""
        wanted = [(kind, self._changes_soql(kind, since)[0]) for kind, since in sinces.items()]
        self._first = {}
        for i in range(0, len(wanted), composite.COLLECTIONS_PER_COMPOSITE):
            part = wanted[i : i + composite.COLLECTIONS_PER_COMPOSITE]
            if len(part) < 2:
                continue
            asked = [(soql, self._deleted(kind)) for kind, soql in part]
            for (kind, soql), body in zip(
                part, composite.queries(self.t, asked, self.page_size), strict=True
            ):
                if body is not None:
                    self._first[kind] = (soql, body)

    def read_changes(self, kind: str, since: Cursor | None) -> Iterator[list[SourceRecord]]:
        soql, where = self._changes_soql(kind, since)
        if since is None and self.bulk_threshold is not None:
            yield from self._first_read(kind, soql, where)
        else:
            yield from self._pages(kind, soql)

    def _changes_soql(self, kind: str, since: Cursor | None) -> tuple[str, list[str]]:
        """The SOQL of `kind`'s changes after `since`, and its WHERE conditions."""
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
        return soql, where

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

    def _pages(self, kind: str, soql: str, bodies=None) -> Iterator[list[SourceRecord]]:
        om = self.mapping.models[kind]
        for body in bodies if bodies is not None else self._bodies(kind, soql):
            page = [self._source(om, rec) for rec in body.get("records", [])]
            if page:
                yield page

    def _bodies(self, kind: str, soql: str) -> Iterator[dict]:
        log.debug("SOQL %s", soql)
        ahead = self._first.pop(kind, None)  # read ahead, for this very query
        first = ahead[1] if ahead and ahead[0] == soql else None
        return self.t.pages(
            soql, include_deleted=self._deleted(kind), page_size=self.page_size, first=first
        )

    def _deleted(self, kind: str) -> bool:
        """Read through queryAll (deleted rows flagged), else query (no recycle bin)."""
        return self.mapping.models[kind].object not in NO_RECYCLE_BIN

    def _first_read(self, kind: str, soql: str, where: list[str]) -> Iterator[list[SourceRecord]]:
        """REST pages, or a Bulk API 2.0 job when the first page's totalSize passes the
        threshold: "the total number of records returned by the Query request (totalSize)"
        (https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_query.htm)."""
        bodies = self._bodies(kind, soql)
        first = next(bodies, None)
        if first is None:
            return
        total = int(first.get("totalSize") or 0)
        if self.bulk_threshold is None or total <= self.bulk_threshold:
            self.read_by[kind] = "rest"
            yield from self._pages(kind, soql, itertools.chain([first], bodies))
            return
        bodies.close()  # the rest of the REST read is not asked for
        self.read_by[kind] = "bulk"
        log.info(
            "%s: %d rows, above salesforce.bulk_threshold (%d): a Bulk API 2.0 query job",
            kind,
            total,
            self.bulk_threshold,
        )
        yield from max_cursor_last(self._bulk_records(kind, where), self.page_size)

    def _bulk_records(self, kind: str, where: list[str]) -> Iterator[SourceRecord]:
        om = self.mapping.models[kind]
        shape = BulkShape(om.object, select_list(self.mapping, kind), self._describe)
        # no ORDER BY: Bulk API 2.0 results come in no order anyway, and ORDER BY turns off
        # PK chunking, so big queries run slower and may time out
        # (bulk_api_2_0_troubleshoot_query_timeouts.htm)
        soql = select(self.mapping, kind, where, extra=shape.extra)
        deleted = om.object not in NO_RECYCLE_BIN
        for row in self.bulk.rows(soql, include_deleted=deleted):
            yield self._source(om, shape.record(row))

    def _describe(self, obj: str) -> dict[str, dict[str, Any]]:
        """An object's fields by name (describe, once per object and adapter)."""
        if obj not in self._described:
            body = self.t.rest("GET", f"sobjects/{obj}/describe") or {}
            self._described[obj] = {f["name"]: f for f in body.get("fields", [])}
        return self._described[obj]

    def _source(self, om, rec: dict[str, Any]) -> SourceRecord:
        fields = plain(rec)
        stamp = fields.get(om.modified_field or "SystemModstamp")
        deleted = bool(fields.get("IsDeleted"))
        key = fields.get(om.key_field) if om.key_field and om.key_field != "Id" else None
        if key and not deleted:
            self.ids[(om.object, key)] = fields["Id"]
        return SourceRecord(fields["Id"], parse_datetime(stamp), fields, deleted)


def max_cursor_last(records: Iterable[SourceRecord], size: int) -> Iterator[list[SourceRecord]]:
    """Pages of `size` records in the order read, but the record with the greatest cursor
    (modstamp, id) held back to end the last page: the sync commits the last page's last
    cursor, and bulk results come in no order. One record and one page held at a time."""
    held: SourceRecord | None = None
    page: list[SourceRecord] = []
    for rec in records:
        if held is None or (rec.modified_at, rec.id) > (held.modified_at, held.id):
            rec, held = held, rec
        if rec is not None:
            page.append(rec)
        if len(page) >= size:
            yield page
            page = []
    if held is not None:
        page.append(held)
    if page:
        yield page
