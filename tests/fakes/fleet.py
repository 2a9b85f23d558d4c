"""Many fake HubSpot portals behind one loopback server, for the fleet benchmark.

Each portal is a FakeHubSpot (its own objects, its rolling 10 s limit answering 429 with
HubSpot's headers and body, its search limit per second) reached through one loopback server
(tests/fakes/loopback.py) that routes each request by its bearer token: a portal's private-app
token names it, as the real api.hubapi.com tells portals apart by the token. Every portal counts
what the CRM side sees: requests, 429s, and the most requests it let through in any rolling window
(10 s; search: 1 s), so the share of a portal's limit used is measured here, not by the client.

Admin over HTTP (the benchmark's workers are other processes): GET /__fleet__/stats (every
portal's counters and duplicate keys), POST /__fleet__/edit (users change records: a webhook's
cause)."""

from __future__ import annotations

import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlparse

from tests.fakes.hubspot_server import FakeHubSpot, unauthenticated
from tests.fakes.loopback import LoopbackServer, send_json, serve

#: what identifies a record the connector writes, per object type: a key seen twice among live
#: records is a duplicate
KEYS = {"deals": "renewal_key", "tasks": "renewal_task_key", "line_items": "renewal_line_key"}


def extra_copies(keys) -> int:
    """How many of `keys` (None: a record without one) repeat a key seen before."""
    seen = Counter(k for k in keys if k)
    return sum(n - 1 for n in seen.values() if n > 1)


class Discard(list):
    """A fleet portal keeps no request bodies (thousands of portals, a day of requests)."""

    def append(self, item) -> None:
        pass


class FleetPortal(FakeHubSpot):
    """One portal of the fleet: FakeHubSpot that also records the peak of its windows."""

    def __init__(self, token: str, portal_id: int, **kwargs: Any):
        super().__init__(token, **kwargs)
        self.portal_id = portal_id
        self.requests = Discard()
        #: the most requests let through in one rolling window (general: `interval`; search: 1 s)
        self.peak = 0
        self.search_peak = 0
        #: a search's matching records, sorted, by (object, filters and sorts), kept until the
        #: next write: paging through a 20,000-record search scans the portal once, not per page
        #: (the fake shares the benchmark's cores; the real search index is not ours to model)
        self.search_cache: dict[tuple, list] = {}

    def _route(self, method: str, path: str, query: dict, body: dict):
        if method != "GET" and not path.endswith(("/search", "/batch/read")):
            with self.lock:
                self.search_cache.clear()
        return super()._route(method, path, query, body)

    def edit(self, obj_type: str, oid: str, changes: dict[str, Any], stamp: str | None = None):
        with self.lock:
            self.search_cache.clear()
            super().edit(obj_type, oid, changes, stamp)

    def _rate(self, search: bool) -> None:
        with self.lock:  # re-entrant: the window count read is the one the request entered
            super()._rate(search)
            if search and self.search_limit:
                self.search_peak = max(self.search_peak, len(self._search_hits))
            elif not search and self.burst:
                self.peak = max(self.peak, len(self._hits))

    def duplicates(self) -> int:
        """Live records sharing a connector key (renewal deals, their lines, tasks)."""
        with self.lock:
            return sum(
                extra_copies(
                    o["properties"].get(prop)
                    for o in self.objects[obj].values()
                    if not o["archived"]
                )
                for obj, prop in KEYS.items()
            )

    def summary(self) -> dict[str, Any]:
        with self.lock:
            return {
                "portal_id": self.portal_id,
                "requests": sum(self.calls.values()),
                "throttled": self.statuses.get(429, 0),
                "limit": self.burst,
                "interval": self.interval,
                "peak": self.peak,
                "search_limit": self.search_limit,
                "search_peak": self.search_peak,
                "renewals": sum(
                    1
                    for o in self.objects["deals"].values()
                    if not o["archived"] and o["properties"].get("renewal_key")
                ),
                "duplicates": self.duplicates(),
            }


class TenantServer:
    """Tenants (a fleet's portals or orgs) behind one loopback server, each reached by its access
    token as the real API tells them apart; the admin routes GET /__fleet__/stats (every
    tenant's `summary()`) and POST /__fleet__/edit (users change records). Subclasses say how a
    tenant serves a request, how an unknown token is answered and how a user edits records."""

    #: the stats' key for the tenants ("portals", "orgs")
    kind = "tenants"

    def __init__(self) -> None:
        self.by_token: dict[str, Any] = {}
        self.by_id: dict[Any, Any] = {}
        self.server: LoopbackServer | None = None
        self.lock = threading.Lock()
        self.unrouted = 0  # requests whose token named no tenant

    def _register(self, token: str, tenant_id: Any, tenant: Any) -> Any:
        self.by_token[token] = tenant
        self.by_id[tenant_id] = tenant
        return tenant

    @property
    def url(self) -> str:
        return self.server.url

    def stop(self) -> None:
        if self.server:
            self.server.stop()

    def stats(self) -> dict[str, Any]:
        return {
            self.kind: {str(k): t.summary() for k, t in self.by_id.items()},
            "unrouted": self.unrouted,
        }

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        path = urlparse(h.path).path
        if path.startswith("/__fleet__/"):
            length = int(h.headers.get("Content-Length") or 0)
            self._admin(h, path, h.rfile.read(length) if length else b"")
            return
        auth = h.headers.get("Authorization") or ""
        tenant = self.by_token.get(auth.removeprefix("Bearer ")) if auth else None
        if tenant is None:
            with self.lock:
                self.unrouted += 1
            length = int(h.headers.get("Content-Length") or 0)
            if length:
                h.rfile.read(length)
            self._unknown(h)
            return
        self._serve(tenant, h)

    def _admin(self, h: BaseHTTPRequestHandler, path: str, raw: bytes) -> None:
        try:
            if path == "/__fleet__/stats":
                send_json(h, 200, self.stats())
            elif path == "/__fleet__/edit" and h.command == "POST":
                spec = json.loads(raw)
                tenant = self.by_id[self._id_of(spec)]
                ids = self.edit(tenant, spec["object"], int(spec["count"]), spec["changes"])
                send_json(h, 200, {"ids": ids})
            else:
                send_json(h, 404, self._error(f"no admin route {h.command} {path}"))
        except (KeyError, ValueError) as exc:
            send_json(h, 400, self._error(f"bad admin request: {exc}"))

    # what a fleet of one CRM says
    def _id_of(self, spec: dict) -> Any:
        raise NotImplementedError

    def _error(self, message: str) -> Any:
        raise NotImplementedError

    def _unknown(self, h: BaseHTTPRequestHandler) -> None:
        """Answer a request whose token names no tenant (its body read)."""
        raise NotImplementedError

    def _serve(self, tenant: Any, h: BaseHTTPRequestHandler) -> None:
        raise NotImplementedError

    def edit(self, tenant: Any, obj: str, count: int, changes: dict[str, Any]) -> list[str]:
        raise NotImplementedError


class FleetHubSpot(TenantServer):
    """Portals by private-app token behind one loopback HTTP server."""

    kind = "portals"

    def add(
        self,
        token: str,
        portal_id: int,
        *,
        burst: int = 100,
        search_per_second: int = 5,
        interval: float = 10.0,
        seed: int = 7,
    ) -> FleetPortal:
        portal = FleetPortal(
            token,
            portal_id,
            burst=burst,
            interval=interval,
            search_per_second=search_per_second,
            seed=seed,
        )
        return self._register(token, portal_id, portal)

    def start(self, port: int = 0) -> str:
        self.server = serve(self._handle, port)
        return self.url

    def edit(self, portal: FleetPortal, obj: str, count: int, changes: dict[str, Any]) -> list[str]:
        """A portal's users change the first `count` live records of `obj`: their ids."""
        with portal.lock:
            ids = [oid for oid, o in portal.objects[obj].items() if not o["archived"]][:count]
            for oid in ids:
                portal.edit(obj, oid, changes)
        return ids

    def _id_of(self, spec: dict) -> int:
        return int(spec["portal_id"])

    def _error(self, message: str) -> dict:
        return {"message": message}

    def _unknown(self, h: BaseHTTPRequestHandler) -> None:
        reply = unauthenticated()
        send_json(h, reply.status, reply.body)

    def _serve(self, portal: FleetPortal, h: BaseHTTPRequestHandler) -> None:
        portal._handle(h)
