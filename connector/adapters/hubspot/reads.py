"""HubSpot reads: change streams and reads by id as SourceRecords. Search pages get their
associations in one v4 read per 1,000 records; archived records (merged into the stream at their
stamp) come from the archived listing, merged-away ones from `hs_merged_object_ids`."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence

from crm_renewals.connector.adapters.hubspot import queries
from crm_renewals.connector.adapters.hubspot.kinds import MERGED, Kinds, parse_time, unlinked
from crm_renewals.connector.adapters.hubspot.transport import HubSpotTransport
from crm_renewals.connector.ports import Cursor, SourceRecord

BATCH = 100


class HubSpotReads:
    def __init__(self, transport: HubSpotTransport, kinds: Kinds, page_size: int):
        self.t, self.k = transport, kinds
        self.page_size = page_size

    def read_changes(self, kind: str, since: Cursor | None) -> Iterator[list[SourceRecord]]:
        if kind == "owner":
            yield from self._read_owners(since)
            return
        # archived first (usually few), so they merge into the stream at their stamp
        gone = deque(sorted(self._archived(kind, since), key=lambda r: r.cursor))
        chunk: list[dict] = []
        for page in queries.search_pages(self.t, self.k, kind, since, self.page_size):
            chunk += page
            if len(chunk) >= queries.ASSOC_CHUNK:  # one association read for five search pages
                yield from self._chunk(kind, chunk, gone, since)
                chunk = []
        if chunk:
            yield from self._chunk(kind, chunk, gone, since)
        rest = list(gone)
        for i in range(0, len(rest), self.page_size):
            yield rest[i : i + self.page_size]

    def _chunk(
        self, kind: str, objs: list[dict], gone: deque[SourceRecord], since: Cursor | None
    ) -> Iterator[list[SourceRecord]]:
        records, merged = self._records(kind, objs)
        if since is not None:  # the search's GTE also returns the stamp's records up to the id
            records = [r for r in records if r.cursor > since]
        upto = records[-1].cursor if records else None
        while gone and upto is not None and gone[0].cursor <= upto:
            merged.append(gone.popleft())
        out = sorted(records + merged, key=lambda r: r.cursor)
        for i in range(0, len(out), self.page_size):
            yield out[i : i + self.page_size]

    def read_ids(self, kind: str, ids: Sequence[str]) -> list[SourceRecord]:
        if kind == "owner":
            wanted = set(ids)
            return [r for page in self._read_owners(None) for r in page if r.id in wanted]
        out: list[SourceRecord] = []
        wanted = list(dict.fromkeys(map(str, ids)))
        for i in range(0, len(wanted), BATCH):
            chunk = wanted[i : i + BATCH]
            found = queries.batch_read(self.t, self.k, kind, chunk, archived=False)
            records, merged = self._records(kind, found)
            missing = set(chunk) - {str(o["id"]) for o in found} - {r.id for r in merged}
            gone = (
                queries.batch_read(self.t, self.k, kind, sorted(missing), archived=True)
                if missing
                else []
            )
            out += records + [r for r in merged if r.id in chunk]
            keep = self.k.predicate(kind)  # deals: a renewal is no contract
            gone = [o for o in gone if keep(o.get("properties") or {})]
            links = queries.associations(self.t, self.k, kind, [o["id"] for o in gone])
            out += [
                self._source(kind, o, links=links.get(str(o["id"]), {}), deleted=True) for o in gone
            ]
        return sorted(out, key=lambda r: r.cursor)

    def _records(
        self, kind: str, objs: list[dict]
    ) -> tuple[list[SourceRecord], list[SourceRecord]]:
        """Live records of a page (associations filled in) and the ids merged into them."""
        keep = self.k.predicate(kind)
        objs = [o for o in objs if keep(o.get("properties") or {})]
        links = queries.associations(self.t, self.k, kind, [o["id"] for o in objs])
        records, merged = [], []
        for obj in objs:
            rec = self._source(kind, obj, links=links.get(str(obj["id"]), {}))
            if unlinked(kind, rec.fields):
                continue
            records.append(rec)
            for old in filter(None, (obj["properties"].get(MERGED) or "").split(";")):
                merged.append(self._gone(kind, old, rec))
        records.sort(key=lambda r: r.cursor)
        return records, merged

    def _archived(self, kind: str, since: Cursor | None) -> list[SourceRecord]:
        """Records archived since the cursor, with their associations where HubSpot still has
        them, so a deleted contract maps (and is reported) like a live one."""
        keep = self.k.predicate(kind)
        objs = [
            o
            for o in queries.list_archived(self.t, self.k, kind)
            if keep(o.get("properties") or {})
            and (since is None or self._source(kind, o, deleted=True).cursor > since)
        ]
        links = queries.associations(self.t, self.k, kind, [o["id"] for o in objs])
        return [
            self._source(kind, o, links=links.get(str(o["id"]), {}), deleted=True) for o in objs
        ]

    def _source(
        self, kind: str, obj: dict, *, links: dict | None = None, deleted: bool = False
    ) -> SourceRecord:
        om = self.k.mapping.models[kind]
        props = dict(obj.get("properties") or {})
        props[om.id_field] = str(obj["id"])
        props.update(links or {})
        stamp = (
            obj.get("archivedAt")
            if deleted and obj.get("archivedAt")
            else props.get(om.modified_field or "") or obj.get("updatedAt")
        )
        props["archived"] = deleted
        return SourceRecord(str(obj["id"]), parse_time(stamp), props, deleted)

    def _gone(self, kind: str, record_id: str, survivor: SourceRecord) -> SourceRecord:
        """A record merged into `survivor`: deleted, described by what it became."""
        om = self.k.mapping.models[kind]
        fields = {**survivor.fields, om.id_field: record_id, "merged_into": survivor.id}
        return SourceRecord(record_id, survivor.modified_at, fields, True)

    def _read_owners(self, since: Cursor | None) -> Iterator[list[SourceRecord]]:
        records = []
        for archived in (False, True):
            for owner in queries.owners(self.t, archived):
                fields = {**owner, "archived": archived or bool(owner.get("archived"))}
                fields["id"] = str(owner["id"])
                moment = parse_time(owner.get("updatedAt") or owner.get("createdAt"))
                records.append(SourceRecord(fields["id"], moment, fields, False))
        records = sorted(
            (r for r in records if since is None or r.cursor > since), key=lambda r: r.cursor
        )
        for i in range(0, len(records), self.page_size):
            yield records[i : i + self.page_size]
