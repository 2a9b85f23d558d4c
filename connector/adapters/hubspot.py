"""The HubSpot adapter: the CRM port over hubspot-api-client (CRM v3 objects, v4 associations).

Reads use the search API (sorted by the last-modified property, `after` paging, the window moved
forward at the 10,000-result cap) plus one v4 association read per 1,000 records; archived
records come from the archived listing, merged-away ones from `hs_merged_object_ids`. Writes
are batch upserts by a unique-valued property, 100 inputs a call, then v4 associations; tasks
are created once per dedupe key with inline associations. Every call takes a token from the
portal's bucket (connector.adapters.hubspot_limits) and is retried with tenacity on 429, 5xx
and timeouts.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import urllib3
from urllib3.util.retry import Retry

from connector.adapters import hubspot_calls as calls
from connector.adapters import hubspot_writes as writes
from connector.adapters.hubspot_diag import HubSpotDiagnosis
from connector.adapters.hubspot_limits import limits_for, portal_key
from connector.config_sections import HubspotSettings
from connector.domain.mapping import Mapping
from connector.errors import FatalCrmError, RetriableCrmError
from connector.ports import Cursor, OutboundRecord, SourceRecord, WriteResult
from connector.retry import retrying

TOKEN_ENV = "HUBSPOT_ACCESS_TOKEN"
BATCH = 100
LIMIT_HEADER = "x-hubspot-ratelimit-"
#: Singular names used in `associated_<name>_id` mapping fields -> object types.
ALIASES = {
    "company": "companies",
    "deal": "deals",
    "contact": "contacts",
    "line_item": "line_items",
}


class HubSpotCrm(HubSpotDiagnosis):
    system = "hubspot"
    max_batch = BATCH

    def __init__(
        self,
        mapping: Mapping,
        settings: HubspotSettings,
        token: str,
        *,
        page_size: int = calls.SEARCH_PAGE,
        retry_attempts: int = 5,
        retry_max_wait: float = 30.0,
        interval: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
    ):
        from hubspot import HubSpot

        self.mapping, self.settings = mapping, settings
        self.base_url = settings.base_url.rstrip("/")
        # no hidden urllib3 retries: every attempt is ours, counted and rate limited
        self.client = HubSpot(
            access_token=token, host=self.base_url, retry=Retry(total=0, raise_on_status=False)
        )
        lim = settings.limits
        self.limits = limits_for(
            portal_key(self.base_url, token),
            lim.burst,
            lim.search_per_second,
            interval=interval,
            sleep=sleep,
        )
        self.api_calls = 0
        self.page_size = min(page_size, calls.SEARCH_PAGE)  # the search API's maximum
        self.sleep = sleep
        self._retry = (retry_attempts, retry_max_wait)
        self._apis: dict[str, Any] = {}
        self.ids: dict[tuple[str, str], str] = {}  # (kind, key) -> object id, from our writes
        self.last_limits: dict[str, str] = {}  # X-HubSpot-RateLimit-* of the last answer

    # ------------------------------------------------------------------ plumbing

    def api(self, path: str) -> Any:
        """A cached API object, e.g. api("objects.batch_api"); the client builds one per access."""
        found = self._apis.get(path)
        if found is None:
            found = self.client.crm
            for part in path.split("."):
                found = getattr(found, part)
            self._apis[path] = found
        return found

    def call(self, what: str, fn: Callable, *args, search: bool = False, **kw) -> dict:
        """One HTTP request: a token from the bucket, counted, translated, retried."""
        bucket = self.limits.search if search else self.limits.general

        def once() -> dict:
            bucket.acquire()
            self.api_calls += 1
            try:
                resp = fn(
                    *args,
                    _preload_content=False,
                    _request_timeout=self.settings.timeout_seconds,
                    **kw,
                )
                data = resp.data
                resp.release_conn()  # unpreloaded: hand the connection back to the pool
                if not search:  # search answers carry no rate-limit headers
                    self.last_limits = {
                        k: v for k, v in resp.headers.items() if k.lower().startswith(LIMIT_HEADER)
                    }
                return json.loads(data) if data else {}
            except urllib3.exceptions.HTTPError as exc:
                raise calls.timeout_error(what, exc) from exc
            except Exception as exc:
                if not hasattr(exc, "status"):
                    raise
                err = calls.translate(what, exc, bucket.interval)
                if isinstance(err, RetriableCrmError) and err.status == 429:
                    bucket.pause(err.retry_after or bucket.interval)
                raise err from exc
            finally:
                bucket.release()

        attempts, max_wait = self._retry
        try:
            return retrying(attempts, max_wait, sleep=self.sleep)(once)
        except RetriableCrmError as err:
            # retried here, per request, already: the sync's own retry must not start over
            raise FatalCrmError(
                f"{err} (still failing after {attempts} attempts; the next run resumes)",
                system=err.system,
                status=err.status,
                code=err.code,
                body=err.body,
            ) from err

    def object_type(self, kind: str) -> str:
        return self.mapping.models[kind].object

    def resolve_type(self, name: str) -> str:
        if name == "contract":
            return self.settings.contract_object
        return ALIASES.get(name, name)

    # ------------------------------------------------------------------ reading

    def read_changes(self, kind: str, since: Cursor | None) -> Iterator[list[SourceRecord]]:
        if kind == "owner":
            yield from self._read_owners(since)
            return
        # archived first (usually few), so they merge into the stream at their stamp
        gone = deque(sorted(self._archived(kind, since), key=lambda r: r.cursor))
        chunk: list[dict] = []
        for page in calls.search_pages(self, kind, since):
            chunk += page
            if len(chunk) >= calls.ASSOC_CHUNK:  # one association read for five search pages
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
            found = calls.batch_read(self, kind, chunk, archived=False)
            records, merged = self._records(kind, found)
            missing = set(chunk) - {str(o["id"]) for o in found} - {r.id for r in merged}
            gone = calls.batch_read(self, kind, sorted(missing), archived=True) if missing else []
            out += records + [r for r in merged if r.id in chunk]
            keep = calls.predicate(self, kind)  # deals: a renewal is no contract
            gone = [o for o in gone if keep(o.get("properties") or {})]
            links = calls.associations(self, kind, [o["id"] for o in gone])
            out += [
                self._source(kind, o, links=links.get(str(o["id"]), {}), deleted=True) for o in gone
            ]
        return sorted(out, key=lambda r: r.cursor)

    def _records(
        self, kind: str, objs: list[dict]
    ) -> tuple[list[SourceRecord], list[SourceRecord]]:
        """Live records of a page (associations filled in) and the ids merged into them."""
        keep = calls.predicate(self, kind)
        objs = [o for o in objs if keep(o.get("properties") or {})]
        links = calls.associations(self, kind, [o["id"] for o in objs])
        records, merged = [], []
        for obj in objs:
            rec = self._source(kind, obj, links=links.get(str(obj["id"]), {}))
            if calls.unlinked(kind, rec.fields):
                continue
            records.append(rec)
            for old in filter(None, (obj["properties"].get(calls.MERGED) or "").split(";")):
                merged.append(self._gone(kind, old, rec))
        records.sort(key=lambda r: r.cursor)
        return records, merged

    def _archived(self, kind: str, since: Cursor | None) -> list[SourceRecord]:
        """Records archived since the cursor, with their associations where HubSpot still has
        them, so a deleted contract maps (and is reported) like a live one."""
        keep = calls.predicate(self, kind)
        objs = [
            o
            for o in calls.list_archived(self, kind)
            if keep(o.get("properties") or {})
            and (since is None or self._source(kind, o, deleted=True).cursor > since)
        ]
        links = calls.associations(self, kind, [o["id"] for o in objs])
        return [
            self._source(kind, o, links=links.get(str(o["id"]), {}), deleted=True) for o in objs
        ]

    def _source(
        self, kind: str, obj: dict, *, links: dict | None = None, deleted: bool = False
    ) -> SourceRecord:
        om = self.mapping.models[kind]
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
        om = self.mapping.models[kind]
        fields = {**survivor.fields, om.id_field: record_id, "merged_into": survivor.id}
        return SourceRecord(record_id, survivor.modified_at, fields, True)

    def _read_owners(self, since: Cursor | None) -> Iterator[list[SourceRecord]]:
        records = []
        for archived in (False, True):
            for owner in calls.owners(self, archived):
                fields = {**owner, "archived": archived or bool(owner.get("archived"))}
                fields["id"] = str(owner["id"])
                moment = parse_time(owner.get("updatedAt") or owner.get("createdAt"))
                records.append(SourceRecord(fields["id"], moment, fields, False))
        records = sorted(
            (r for r in records if since is None or r.cursor > since), key=lambda r: r.cursor
        )
        for i in range(0, len(records), self.page_size):
            yield records[i : i + self.page_size]

    # ------------------------------------------------------------------ writing

    def upsert(self, kind: str, records: Sequence[OutboundRecord]) -> list[WriteResult]:
        calls.check_batch(self, len(records))
        if not records:
            return []
        if calls.by_id(self, kind):
            return writes.update_by_id(self, kind, list(records))
        return writes.upsert(self, kind, list(records))

    def create_missing(self, kind: str, records: Sequence[OutboundRecord]) -> list[WriteResult]:
        calls.check_batch(self, len(records))
        if not records:
            return []
        return writes.create_missing(self, kind, list(records))

    def delete(self, kind: str, keys: Sequence[str]) -> list[WriteResult]:
        calls.check_batch(self, len(keys))
        if not keys:
            return []
        ids = writes.ids_by_key(self, kind, list(keys))
        found = [ids[k] for k in keys if k in ids]
        if found:
            writes.archive(self, kind, found)
        for key in keys:
            self.ids.pop((kind, key), None)
        return [WriteResult(key, True, ids.get(key)) for key in keys]

    def close(self) -> None:
        for api in self._apis.values():
            pool = getattr(getattr(api.api_client, "rest_client", None), "pool_manager", None)
            if pool is not None:
                pool.clear()
        self._apis.clear()


def parse_time(value: Any) -> datetime:
    """HubSpot stamps: ISO 8601 text (Z), or epoch milliseconds as text."""
    if value is None or value == "":
        return datetime.fromtimestamp(0, UTC)
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    text = str(value)
    if text.isdigit():
        return datetime.fromtimestamp(int(text) / 1000, UTC)
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
