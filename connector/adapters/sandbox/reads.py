"""Sandbox reads: change pages ordered by (modstamp, id), soft-deleted records included and
flagged (like queryAll), and reads by id; `Rel.Field` paths filled and `options.where` (`=`,
`!=`) applied as SOQL does. Each page is one API call, retried by the transport."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import datetime

from crm_renewals.connector.adapters.sandbox.transport import SandboxTransport, chunks, stamp
from crm_renewals.connector.domain.mapping import Mapping
from crm_renewals.connector.ports import Cursor, SourceRecord

Row = tuple[str, str, int, str]


class SandboxReads:
    def __init__(self, transport: SandboxTransport, mapping: Mapping, page_size: int):
        self.t, self.mapping, self.page_size = transport, mapping, page_size

    def read_changes(self, kind: str, since: Cursor | None) -> Iterator[list[SourceRecord]]:
        om = self.mapping.models[kind]
        related = [f for f in self.mapping.source_fields(kind) if "." in f]
        after = (stamp(since.modified_at), since.record_id) if since else ("", "")
        while True:
            rows = self.t.retried(self._page, om.object, after)
            more, rows = len(rows) > self.page_size, rows[: self.page_size]
            page = [_source(row, om.modified_field) for row in rows]
            page = [r for r in page if _wanted(r.fields, om.options.get("where", ()))]
            if related:
                self._resolve(page, related)
            if page:
                yield page
            if not more:  # like Salesforce's `done`: no empty page after a full one
                return
            after = (rows[-1][1], rows[-1][0])

    def _page(self, obj: str, after: tuple[str, str]) -> list[Row]:
        self.t.call()
        return self.t.db.execute(
            # a row value: a range of the (object, modstamp, id) index, not a scan of the object
            "SELECT id, modstamp, deleted, fields FROM records WHERE object = ? AND "
            "(modstamp, id) > (?, ?) ORDER BY modstamp, id LIMIT ?",
            (obj, after[0], after[1], self.page_size + 1),
        ).fetchall()

    def read_ids(self, kind: str, ids: Sequence[str]) -> list[SourceRecord]:
        om = self.mapping.models[kind]
        related = [f for f in self.mapping.source_fields(kind) if "." in f]
        out: list[SourceRecord] = []
        for chunk in chunks(list(dict.fromkeys(ids)), self.page_size):
            rows = self.t.retried(self._by_ids, om.object, chunk)
            page = [_source(row, om.modified_field) for row in rows]
            page = [r for r in page if _wanted(r.fields, om.options.get("where", ()))]
            if related:
                self._resolve(page, related)
            out += page
        return out

    def _by_ids(self, obj: str, ids: list[str]) -> list[Row]:
        self.t.call()
        marks = ",".join("?" * len(ids))
        return self.t.db.execute(
            f"SELECT id, modstamp, deleted, fields FROM records WHERE object = ? "
            f"AND id IN ({marks}) ORDER BY modstamp, id",
            (obj, *ids),
        ).fetchall()

    def _resolve(self, page: list[SourceRecord], paths: list[str]) -> None:
        """Fill `Rel.Field` paths from the record `RelId` points at, as SOQL does."""
        rels = {p.split(".", 1)[0] for p in paths}
        ids = {r.fields.get(f"{rel}Id") for r in page for rel in rels} - {None}
        found: dict[str, dict] = {}
        for chunk in chunks(sorted(ids), 500):
            marks = ",".join("?" * len(chunk))
            for rid, fields in self.t.db.execute(
                f"SELECT id, fields FROM records WHERE id IN ({marks}) AND deleted = 0", chunk
            ):
                found[rid] = json.loads(fields)
        for rec in page:
            for rel in rels:
                rec.fields[rel] = found.get(rec.fields.get(f"{rel}Id"))


def _source(row: Row, modified_field: str | None) -> SourceRecord:
    record_id, modstamp, deleted, fields = row
    data = json.loads(fields)
    data[modified_field or "SystemModstamp"] = modstamp
    data["IsDeleted"] = bool(deleted)
    moment = datetime.fromisoformat(modstamp.replace("Z", "+00:00"))
    return SourceRecord(record_id, moment, data, bool(deleted))


def _wanted(fields: dict, where) -> bool:
    """A record meets `options.where` (`=` and `!=` conditions, as SOQL compares them)."""
    for cond in where:
        value = fields.get(cond["field"]) or None  # empty text is null, as in SOQL
        equal = value == cond.get("value")
        if equal != (cond.get("op", "=") == "="):
            return False
    return True
