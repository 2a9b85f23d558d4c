"""What the webhook routes share (the Receiver: configuration, secrets read once, the
deployment's connections and their stores, the metrics), and the services they call: route
and store a delivery, report health."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import current_app

from crm_renewals.connector.config import AppConfig
from crm_renewals.connector.connections import DEFAULT, Connection
from crm_renewals.connector.deployment import Deployment
from crm_renewals.connector.inbox import Inbox
from crm_renewals.connector.state import InboxBusy, StateStore
from crm_renewals.webhooks import health, routing
from crm_renewals.webhooks.metrics import Metrics
from crm_renewals.webhooks.verify import Refused

log = logging.getLogger(__name__)
#: a delivery finding the database busy tries again after BUSY_FIRST_S, doubling up to
#: BUSY_MAX_S, for BUSY_RETRY_S in all before it waits on the blocking path
BUSY_FIRST_S, BUSY_MAX_S, BUSY_RETRY_S = 0.0005, 0.004, 0.2
#: webhook path -> its source (the label of its metrics)
ROUTES = {
    "/webhooks/hubspot": "hubspot",
    "/webhooks/salesforce": "salesforce",
    "/webhooks/signals": "signals",
}


_UNSEEN = object()


def source_of(path: str) -> str:
    """The source label of a request path (`/webhooks/signals/<connection>` is signals')."""
    if path in ROUTES:
        return ROUTES[path]
    return "signals" if path.startswith("/webhooks/signals/") else "other"


@dataclass
class Receiver:
    """What the routes share: app.yaml's configuration, secrets (read once), the default
    connection's store, the deployment (every connection, its store opened on first use) and
    the metrics."""

    config: AppConfig
    store: StateStore
    env: Mapping[str, str]
    clock: Callable[[], float]
    metrics: Metrics = field(default_factory=Metrics)
    #: set by `renewals serve`: whether the inbox worker process is alive (None: no worker)
    worker_alive: Callable[[], bool] | None = None
    #: how the request path runs its database write: at once, or (gevent workers) in a native
    #: thread, so a write waiting on the database's lock does not stall the worker's other
    #: connections
    blocking: Callable[..., Any] = field(default=lambda fn, *args: fn(*args))
    #: how work the request need not wait for runs (SQLite's checkpoint): at once, or (gevent
    #: workers) in a native thread while the request is answered
    background: Callable[[Callable[[], Any]], Any] = field(default=lambda fn: fn())
    deployment: Deployment | None = None
    #: `workers.engine: celery`: told the connection of each delivery stored (it enqueues a
    #: webhook_batch off the request path, jobs/dispatch.py Enqueuer)
    on_stored: Callable[[str], None] | None = None

    def __post_init__(self) -> None:
        self.inbox = Inbox(self.store)
        self.deployment = self.deployment or Deployment(self.config, self.store)
        #: private app (default connection) and public app (OAuth connections): either signs
        self.hubspot_secret = self.env.get("HUBSPOT_CLIENT_SECRET") or None
        self.hubspot_app_secret = self.env.get("HUBSPOT_APP_CLIENT_SECRET") or None
        self.signals_secret = self.env.get("SIGNALS_WEBHOOK_SECRET") or None
        self.org_id = self.env.get("SALESFORCE_ORG_ID") or self.config.webhooks.salesforce_org_id
        self._inboxes: dict[str, Inbox] = {}
        self._received: dict[tuple[str, str], Any] = {}
        #: /healthz of many connections: (read at, bodies, urgent), kept a while (health.py)
        self.health_cache: tuple[float, dict, bool] | None = None
        self.health_lock = threading.Lock()

    @property
    def hubspot_secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.hubspot_secret, self.hubspot_app_secret) if s)

    def connections(self) -> list[Connection]:
        return self.deployment.connections()

    def inbox_of(self, conn: Connection) -> Inbox:
        """The inbox of `conn`'s state store (the default connection's: `self.inbox`)."""
        if conn.name == DEFAULT:
            return self.inbox
        store = self.deployment.store(conn)
        inbox = self._inboxes.get(conn.name)
        if inbox is None or inbox.store is not store:
            inbox = self._inboxes[conn.name] = Inbox(store)
        return inbox

    def config_of(self, conn: Connection) -> AppConfig:
        return self.config if conn.name == DEFAULT else self.deployment.config(conn)

    def named(self, name: str) -> Connection | None:
        return self.deployment.find(name)

    def hubspot_groups(
        self, events: list[dict]
    ) -> tuple[list[tuple[Connection, list[dict]]], set[str]]:
        """The batch's events by the connection of their portal (in batch order), and the
        portals no connection takes."""
        conns = self.connections()
        configured = self.config.hubspot.portal_id
        owners: dict[str | None, Connection | None] = {}
        groups: dict[str, tuple[Connection, list[dict]]] = {}
        unknown: set[str] = set()
        portals: dict[int | str, str | None] = {}  # a batch is mostly one portal's
        for event in events:
            raw = event.get("portalId")
            if type(raw) is int or type(raw) is str:  # hashable, and not a bool
                portal = portals.get(raw, _UNSEEN)
                if portal is _UNSEEN:
                    portal = portals[raw] = routing.portal_of(event)
            else:
                portal = routing.portal_of(event)
            if portal not in owners:
                owner = routing.hubspot_owner(conns, portal, configured)
                if owner is None and portal is not None:  # added a moment ago?
                    fresh = self.deployment.after_miss()
                    owner = routing.hubspot_owner(fresh, portal, configured)
                owners[portal] = owner
            owner = owners[portal]
            if owner is None:
                unknown.add(portal or "none")
            else:
                groups.setdefault(owner.name, (owner, []))[1].append(event)
        return list(groups.values()), unknown

    def salesforce_owner(self, organization_id: str) -> Connection:
        """The connection of an outbound message's org; Refused(401) when none takes it."""
        orgs = routing.salesforce_orgs(self.connections(), self.org_id)
        owner = routing.salesforce_owner(orgs, organization_id)
        if owner is None:
            orgs = routing.salesforce_orgs(self.deployment.after_miss(), self.org_id)
            owner = routing.salesforce_owner(orgs, organization_id)
        if owner is not None:
            return owner
        if not orgs:
            raise Refused(401, "no Salesforce organization is configured", "not_configured")
        raise Refused(401, "organization not accepted", "org")

    def timed_out(self, path: str) -> None:
        """A request whose body did not arrive in time (cut by `renewals serve`, 408)."""
        source = source_of(path)
        self.metrics.refused.labels(source, "timeout").inc()
        log.info("refused %s webhook: body not received in time", source)

    def accept(self, source: str, body: bytes, events: int, conn: Connection | None = None):
        """Store the delivery as it arrived in `conn`'s store (default: the default
        connection's): durable from here (the worker reads its events)."""
        name = conn.name if conn is not None else DEFAULT
        inbox = self.inbox if conn is None else self.inbox_of(conn)
        if not self._receive_soon(inbox, source, body):
            self.blocking(inbox.receive, source, body)
        if inbox.checkpoint_due():
            self.background(inbox.checkpoint)
        self.count_received(source, name, events)
        self.stored(name)

    @staticmethod
    def _receive_soon(inbox: Inbox, source: str, body: bytes) -> bool:
        """Store the delivery if the database is free, or once it is again within
        BUSY_RETRY_S (tried every few ms: under gevent the sleep lets the worker's other
        requests run); False if not, for the blocking path to wait. SQLite's own wait sleeps
        1, 2, 5, 10, 15, ... up to 100 ms between tries (a lock held 9 ms costs 18), and the
        blocking path is one native thread a worker, so the requests waiting there queue."""
        delay, waited = BUSY_FIRST_S, 0.0
        while True:
            try:
                inbox.receive(source, body, wait=False)
                return True
            except InboxBusy as busy:
                if not busy.soon or waited >= BUSY_RETRY_S:
                    return False
            time.sleep(delay)
            waited += delay
            delay = min(delay * 2, BUSY_MAX_S)

    def stored(self, connection: str) -> None:
        """Work was stored for `connection` (workers.engine: celery: its batch is enqueued)."""
        if self.on_stored is not None:
            self.on_stored(connection)

    def count_received(self, source: str, connection: str, events: int) -> None:
        counter = self._received.get((source, connection))
        if counter is None:  # a counter's labels() costs more than its inc(): kept
            counter = self._received[source, connection] = self.metrics.received.labels(
                source, connection
            )
        counter.inc(events)

    def health(self) -> tuple[dict[str, Any], int]:
        """/healthz: every connection's database and queue, and the inbox worker."""
        return health.overall(self)

    def health_of(self, conn: Connection) -> tuple[dict[str, Any], int]:
        """/healthz/<connection>: that connection alone, and the inbox worker."""
        return health.single(self, conn)


def receiver() -> Receiver:
    """The Receiver of the app handling this request."""
    return current_app.extensions["renewals"]
