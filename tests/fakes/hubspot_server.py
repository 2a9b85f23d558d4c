"""FakeHubSpot: a small HubSpot CRM API on a loopback port, for tests and benchmarks.

Speaks the wire format of HubSpot's CRM v3 objects / v4 associations / properties / owners /
pipelines APIs as described in ../shared/API_NOTES.md and the fixtures: bearer auth (401),
missing scopes (403), 207 multi-status batches with per-input errors, batch write answers in
a shuffled (seeded) order that echo only the properties sent, each carrying its input's
`objectWriteTraceId`, property values refused unless strings, the search API (filter groups,
none empty, sorts, `after` paging, 200 a page, 400 past 10,000 results, archived excluded), a
rolling-window rate limit answering 429 with HubSpot's headers and body, unique-valued
properties for batch upsert. Admin helpers seed and inspect objects, inject faults (whole
requests or single inputs of a batch) and count requests by endpoint; the real
hubspot-api-client talks to it unchanged.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections import Counter, defaultdict, deque
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from tests.fakes.hubspot_oauth import FakeHubSpotOAuth
from tests.fakes.hubspot_schema import DEFAULT_PROPERTIES, INVERSE, LABELS, PIPELINES
from tests.fakes.loopback import LoopbackServer, send_json, serve

_ROOT = Path(__file__).resolve().parents[2]
#: The official payloads: copied into tests/fixtures, else the shared folder next to the repo.
FIXTURES = next(
    (
        p
        for p in (
            _ROOT / "tests" / "fixtures" / "hubspot",
            _ROOT.parent / "shared" / "fixtures" / "hubspot",
        )
        if p.exists()
    ),
    Path("/work/shared/fixtures/hubspot"),
)
SEARCH_CAP = 10_000
STAMP_FIELDS = {"contacts": ("lastmodifieddate", "hs_lastmodifieddate")}


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class Reply(Exception):
    """Stop handling a request and answer with this status, body and headers."""

    def __init__(self, status: int, body: Any = None, headers: dict | None = None):
        self.status, self.body, self.headers = status, body, headers or {}


def error(status: int, category: str, message: str, **extra) -> Reply:
    body = {"status": "error", "message": message, "category": category}
    body["correlationId"] = "00000000-0000-4000-8000-000000000000"
    return Reply(status, {**body, **extra})


def unauthenticated() -> Reply:
    """HubSpot's 401 for a request without a token it knows."""
    return error(
        401,
        "INVALID_AUTHENTICATION",
        "Authentication credentials not found. This API supports OAuth 2.0 "
        "authentication and you can find more details at https://developers.hubspot.com/"
        "docs/methods/auth/oauth-overview",
    )


class FakeHubSpot:
    def __init__(
        self,
        token: str = "pat-test-token",
        *,
        burst: int | None = None,
        interval: float = 10.0,
        search_per_second: int = 5,
        scopes_denied: set[str] | None = None,
        seed: int = 7,
    ):
        self.token = token
        self.burst, self.interval, self.search_limit = burst, interval, search_per_second
        self.scopes_denied = scopes_denied or set()
        self.lock = threading.RLock()
        self.objects: dict[str, dict[str, dict]] = defaultdict(dict)
        self.owners: dict[str, dict] = {}
        #: (from type, from id, to type) -> {to id: {(category, type id)}}
        self.links: dict[tuple[str, str, str], dict[str, set]] = defaultdict(dict)
        self.properties = {
            t: {p["name"]: dict(p) for p in ps} for t, ps in DEFAULT_PROPERTIES.items()
        }
        self.groups: dict[str, set[str]] = defaultdict(set)
        #: (type, unique property) -> {value: id} of live records: upserts stay O(1) at 10k+
        self.index: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
        self.pipelines = json.loads(json.dumps(PIPELINES))
        self.labels = dict(LABELS)
        self.calls: Counter[str] = Counter()
        self.requests: list[tuple[str, Any]] = []  # ("METHOD /path", JSON body), in order
        self.new_links = 0  # associations created through the API that did not exist yet
        #: (Unix time, type, id) of each record written through the API (created, updated)
        self.writes: list[tuple[float, str, str]] = []
        self.statuses: Counter[int] = Counter()
        self.faults: list[tuple[str, Reply]] = []
        self.input_faults: list[tuple[str, int]] = []  # (route fragment, status), per input
        #: batch write answers come back in this generator's order: the spec promises none
        self.rng = random.Random(seed)
        self.stalls: list[tuple[str, float]] = []
        self._seq = 1000
        self.frozen: str | None = None
        self._last = datetime.now(UTC) - timedelta(days=1)
        self._hits: deque[float] = deque()
        self._search_hits: deque[float] = deque()
        self.server: LoopbackServer | None = None
        #: the public app: install page, token endpoint, the access tokens it issued
        self.oauth = FakeHubSpotOAuth()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> str:
        self.server = serve(self._handle)
        return self.url

    @property
    def url(self) -> str:
        return self.server.url

    def stop(self) -> None:
        if self.server:
            self.server.stop()

    # ------------------------------------------------------------------ admin: seed / inspect

    def freeze(self) -> None:
        """Records written from now on share one modified stamp."""
        self.frozen = self.now()

    def now(self) -> str:
        """A stamp later than any before it (1 ms apart at least), like HubSpot's."""
        if self.frozen:
            return self.frozen
        with self.lock:
            moment = max(datetime.now(UTC), self._last + timedelta(milliseconds=1))
            self._last = moment
            return iso(moment)

    def new_id(self) -> str:
        with self.lock:
            self._seq += 1
            return str(self._seq)

    def create(self, obj_type: str, properties: dict[str, Any], *, stamp: str | None = None) -> str:
        """A record made by a user of the portal (no validation)."""
        with self.lock:
            oid = self.new_id()
            at = stamp or self.now()
            props = {k: _text(v) for k, v in properties.items()}
            self.objects[obj_type][oid] = {
                "id": oid,
                "properties": {**props, "hs_object_id": oid, "createdate": at},
                "createdAt": at,
                "archived": False,
            }
            self._touch(obj_type, oid, at)
            self._reindex(obj_type, oid)
            return oid

    def edit(self, obj_type: str, oid: str, changes: dict[str, Any], stamp: str | None = None):
        with self.lock:
            obj = self.objects[obj_type][oid]
            self._unindex(obj_type, oid)
            obj["properties"].update({k: _text(v) for k, v in changes.items()})
            self._touch(obj_type, oid, stamp or self.now())
            self._reindex(obj_type, oid)

    def archive(self, obj_type: str, oid: str) -> None:
        with self.lock:
            obj = self.objects[obj_type][oid]
            self._unindex(obj_type, oid)
            obj["archived"], obj["archivedAt"] = True, self.now()

    def merge(self, obj_type: str, primary: str, merged: str) -> None:
        """Merge `merged` into `primary`: the merged id disappears, the primary lists it."""
        with self.lock:
            self._unindex(obj_type, merged)
            self.objects[obj_type].pop(merged)
            props = self.objects[obj_type][primary]["properties"]
            ids = [x for x in (props.get("hs_merged_object_ids") or "").split(";") if x]
            props["hs_merged_object_ids"] = ";".join(ids + [merged])
            self._touch(obj_type, primary, self.now())

    def lookup(self, obj_type: str, prop: str, value: str) -> dict | None:
        """The live record whose unique-valued `prop` is `value`."""
        oid = self.index[(obj_type, prop)].get(value)
        return None if oid is None else self.objects[obj_type][oid]

    def reindex(self, obj_type: str) -> None:
        for oid, obj in self.objects[obj_type].items():
            if not obj["archived"]:
                self._reindex(obj_type, oid)

    def _unique(self, obj_type: str) -> list[str]:
        return [n for n, p in self.properties[obj_type].items() if p.get("hasUniqueValue")]

    def _reindex(self, obj_type: str, oid: str) -> None:
        props = self.objects[obj_type][oid]["properties"]
        for name in self._unique(obj_type):
            if props.get(name) not in (None, ""):
                self.index[(obj_type, name)][props[name]] = oid

    def _unindex(self, obj_type: str, oid: str) -> None:
        props = self.objects[obj_type][oid]["properties"]
        for name in self._unique(obj_type):
            if self.index[(obj_type, name)].get(props.get(name)) == oid:
                del self.index[(obj_type, name)][props[name]]

    def get(self, obj_type: str, oid: str) -> dict[str, Any]:
        return self.objects[obj_type][oid]["properties"]

    def live(self, obj_type: str) -> list[dict[str, Any]]:
        with self.lock:
            return [o["properties"] for o in self.objects[obj_type].values() if not o["archived"]]

    def find(self, obj_type: str, prop: str, value: str) -> dict[str, Any] | None:
        return next((p for p in self.live(obj_type) if p.get(prop) == value), None)

    def add_owner(self, first: str, last: str, *, archived: bool = False) -> str:
        with self.lock:
            oid = self.new_id()
            at = self.now()
            self.owners[oid] = {
                "id": oid,
                "email": f"{first.lower()}.{last.lower()}@example.com",
                "type": "PERSON",
                "firstName": first,
                "lastName": last,
                "userIdIncludingInactive": int(oid),
                "createdAt": at,
                "updatedAt": at,
                "archived": archived,
                "teams": [],
                **({} if archived else {"userId": int(oid)}),
            }
            return oid

    def load_owners(self, fixture: str = "owners_page.json") -> list[str]:
        """Owners as the official sample pages list them."""
        page = json.loads((FIXTURES / fixture).read_text())
        with self.lock:
            for owner in page["results"]:
                self.owners[owner["id"]] = dict(owner)
        return [o["id"] for o in page["results"]]

    def archive_owner(self, oid: str) -> None:
        with self.lock:
            owner = self.owners[oid]
            owner.update(archived=True, updatedAt=self.now())
            owner.pop("userId", None)

    def associate(
        self, src: str, sid: str, dst: str, did: str, type_id: int, category="HUBSPOT_DEFINED"
    ) -> bool:
        """Link two records both ways; True when the link is new."""
        with self.lock:
            spec = (category, type_id)
            have = self.links[(src, sid, dst)].setdefault(str(did), set())
            new = spec not in have
            have.add(spec)
            back = INVERSE.get(type_id, type_id)
            self.links[(dst, str(did), src)].setdefault(sid, set()).add((category, back))
            return new

    def associated(self, src: str, sid: str, dst: str) -> dict[str, set]:
        return dict(self.links.get((src, str(sid), dst), {}))

    def define_connector_properties(self) -> None:
        """What `renewals setup hubspot --apply` creates, without going through the API."""
        from crm_renewals.connector.adapters.hubspot.diagnosis import CONNECTOR_PROPERTIES

        for obj, props in CONNECTOR_PROPERTIES.items():
            for name, label, type_, field_type, unique in props:
                self.properties[obj][name] = _prop(name, label, type_, field_type, unique)
            self.reindex(obj)

    def fail_next(self, route: str, status: int, body: Any = None, headers=None, times=1):
        """The next `times` requests whose 'METHOD /path' contains `route` get this answer."""
        for _ in range(times):
            self.faults.append((route, Reply(status, body, headers)))

    def fail_inputs(self, count: int, status: int = 429, route: str = "") -> None:
        """The next `count` inputs of batch upsert/create/update calls whose 'object/batch/op'
        contains `route` are refused one by one with `status` inside a 207 answer (a per-record
        rate limit or server error), the other inputs of the call written as usual."""
        self.input_faults += [(route, status)] * count

    def stall_next(self, route: str, seconds: float) -> None:
        """The next request matching `route` is answered only after `seconds` (timeouts)."""
        self.stalls.append((route, seconds))

    def fail_with_429(self, route: str = "", times: int = 1) -> None:
        data = json.loads((FIXTURES / "error_429.json").read_text())
        headers = dict(data["_http"]["headers"])
        headers["X-HubSpot-RateLimit-Interval-Milliseconds"] = str(int(self.interval * 1000))
        self.fail_next(route, 429, data["body"], headers, times)

    def stats(self) -> dict[str, Any]:
        """Requests by endpoint and answers by status (also served at GET /__fake__/stats)."""
        with self.lock:
            return {"calls": dict(self.calls), "statuses": dict(self.statuses)}

    def count(self, fragment: str) -> int:
        return sum(n for k, n in self.calls.items() if fragment in k)

    # ------------------------------------------------------------------ HTTP

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        url = urlparse(h.path)
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        status, body, headers = 200, None, {}
        try:
            key = f"{h.command} {url.path}"
            if url.path.startswith("/__fake__/"):  # admin, for a fake in another process
                from tests.fakes import hubspot_admin

                raise Reply(*hubspot_admin.route(self, h.command, url.path, url.query, raw))
            if url.path.startswith("/oauth/"):  # the app's OAuth: no bearer token, forms
                with self.lock:
                    self.calls[key] += 1
                raise Reply(*self.oauth.route(h.command, url.path, url.query, raw))
            self._gate(h, key)
            query = {k: v for k, v in parse_qs(url.query).items()}
            payload = json.loads(raw) if raw else {}
            self.requests.append((key, payload))
            status, body = self._route(h.command, url.path, query, payload)
            if "/search" not in url.path:
                headers = self._limit_headers()
        except Reply as r:
            status, body, headers = r.status, r.body, r.headers
        self.statuses[status] += 1
        send_json(h, status, body, headers)  # a client that gave up (a timeout test) is let be

    def _gate(self, h, key: str) -> None:
        with self.lock:
            self.calls[_template(key)] += 1
            stall = next((s for s in self.stalls if s[0] in key), None)
            if stall is not None:
                self.stalls.remove(stall)
        if stall is not None:
            time.sleep(stall[1])
        with self.lock:
            for i, (route, reply) in enumerate(self.faults):
                if route in key:
                    del self.faults[i]
                    raise reply
        auth = h.headers.get("Authorization") or ""
        # the private app's token, or an access token the public app's OAuth issued
        valid, why = (True, "") if auth == f"Bearer {self.token}" else self._oauth_token(auth)
        if not valid and why == "EXPIRED_AUTHENTICATION":
            raise error(401, why, "The OAuth token used to make this call expired.")
        if not valid:
            raise unauthenticated()
        for scope_obj in self.scopes_denied:
            if f"/{scope_obj}" in key:
                raise error(
                    403,
                    "MISSING_SCOPES",
                    "This app hasn't been granted all required scopes to make this call.",
                    errors=[{"message": f"One of crm.objects.{scope_obj}.read is required"}],
                )
        self._rate(search="/search" in key)

    def _oauth_token(self, auth: str) -> tuple[bool, str]:
        if not auth.startswith("Bearer "):
            return False, "INVALID_AUTHENTICATION"
        return self.oauth.valid_access_token(auth.removeprefix("Bearer "))

    def _rate(self, search: bool) -> None:
        """HubSpot's usage guidelines: every request of an app counts in its rolling 10-second
        burst limit (association reads and writes too), except CRM search, which has its own
        limit of 5 requests a second per account (search API guide, "Limitations")."""
        if search:
            hits, limit, window = self._search_hits, self.search_limit, self.interval / 10
        else:
            hits, limit, window = self._hits, self.burst, self.interval
        if not limit:
            return
        with self.lock:
            now = time.monotonic()
            while hits and hits[0] <= now - window:
                hits.popleft()
            if len(hits) >= limit:
                data = json.loads((FIXTURES / "error_429.json").read_text())
                headers = dict(data["_http"]["headers"])
                headers["X-HubSpot-RateLimit-Max"] = str(limit)
                headers["X-HubSpot-RateLimit-Interval-Milliseconds"] = str(int(window * 1000))
                raise Reply(429, data["body"], {} if search else headers)
            hits.append(now)

    def _limit_headers(self) -> dict[str, str]:
        if not self.burst:
            return {}
        return {
            "X-HubSpot-RateLimit-Max": str(self.burst),
            "X-HubSpot-RateLimit-Remaining": str(max(self.burst - len(self._hits), 0)),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(self.interval * 1000)),
        }

    def _route(self, method: str, path: str, query: dict, body: dict) -> tuple[int, Any]:
        from tests.fakes import hubspot_routes as r

        for verb, pattern, handler in r.ROUTES:
            m = re.fullmatch(pattern, path)
            if m and verb == method:
                with self.lock:
                    return handler(self, query, body, **m.groupdict())
        raise error(404, "OBJECT_NOT_FOUND", f"no route {method} {path}")

    def _touch(self, obj_type: str, oid: str, at: str) -> None:
        obj = self.objects[obj_type][oid]
        obj["updatedAt"] = at
        for name in STAMP_FIELDS.get(obj_type, ("hs_lastmodifieddate",)):
            obj["properties"][name] = at
        # hs_task_completion_date is left as written: we found no HubSpot documentation that
        # HubSpot stamps it when a task is completed, so the fake does not (the connector counts
        # a task completed by hs_task_status alone)


def _template(key: str) -> str:
    """Requests counted by endpoint: ids in the path replaced by {id}."""
    return re.sub(r"/\d+(?=/|$)", "/{id}", key)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _prop(name, label, type_, field_type, unique=False, group="renewals") -> dict:
    return {
        "name": name,
        "label": label,
        "type": type_,
        "fieldType": field_type,
        "groupName": group,
        "hasUniqueValue": unique,
        "formField": False,
        "calculated": False,
        "externalOptions": False,
        "options": [],
        "description": "",
        "displayOrder": -1,
        "modificationMetadata": {
            "archivable": True,
            "readOnlyDefinition": False,
            "readOnlyValue": False,
        },
    }
