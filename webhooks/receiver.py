"""What the webhook routes share (the Receiver: configuration, secrets read once, the store,
the inbox and the metrics), and the two services they call: store a delivery, report health."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import current_app

from crm_renewals.connector.config import AppConfig
from crm_renewals.connector.inbox import Inbox
from crm_renewals.connector.state import InboxBusy, StateStore
from crm_renewals.webhooks.metrics import Metrics

log = logging.getLogger(__name__)
#: webhook path -> its source (the label of its metrics)
ROUTES = {
    "/webhooks/hubspot": "hubspot",
    "/webhooks/salesforce": "salesforce",
    "/webhooks/signals": "signals",
}


@dataclass
class Receiver:
    """What the routes share: configuration, secrets (read once), the store and the metrics."""

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

    def __post_init__(self) -> None:
        self.inbox = Inbox(self.store)
        self.hubspot_secret = self.env.get("HUBSPOT_CLIENT_SECRET") or None
        self.signals_secret = self.env.get("SIGNALS_WEBHOOK_SECRET") or None
        self.org_id = self.env.get("SALESFORCE_ORG_ID") or self.config.webhooks.salesforce_org_id
        #: the events-received counter of each source
        self.received = {s: self.metrics.received.labels(s) for s in ROUTES.values()}

    def timed_out(self, path: str) -> None:
        """A request whose body did not arrive in time (cut by `renewals serve`, 408)."""
        source = ROUTES.get(path, "other")
        self.metrics.refused.labels(source, "timeout").inc()
        log.info("refused %s webhook: body not received in time", source)

    def accept(self, source: str, body: bytes, events: int) -> None:
        """Store the delivery as it arrived: durable from here (the worker reads its events)."""
        try:  # most of the time the database is free: no hand-off to a thread
            self.inbox.receive(source, body, wait=False)
        except InboxBusy:
            self.blocking(self.inbox.receive, source, body)
        self.received[source].inc(events)

    def health(self) -> tuple[dict[str, Any], int]:
        """/healthz: the database, the inbox worker and the queue; (body, HTTP status)."""
        try:  # reading the queue proves the database answers
            depth, waiting = self.inbox.depth(), self.inbox.waiting()
            oldest = self.inbox.oldest_wait()
        except Exception as exc:  # noqa: BLE001 - health reports, never raises
            return {"status": "fail", "database": type(exc).__name__}, 503
        alive = self.worker_alive
        worker = "n/a" if alive is None else ("ok" if alive() else "stopped")
        body: dict[str, Any] = {"status": "ok", "database": "ok", "worker": worker}
        limit = self.config.webhooks.health_max_wait_seconds
        if worker == "stopped":
            body.update(status="fail", reason="the inbox worker process is not running")
        elif oldest > limit:
            reason = f"deliveries or events waiting longer than {limit:g} s: processing is behind"
            body.update(status="degraded", reason=reason)
        queue = {"inbox_depth": depth, "deliveries_waiting": waiting}
        queue["oldest_wait_seconds"] = round(oldest)
        return {**body, **queue}, 200 if body["status"] == "ok" else 503


def receiver() -> Receiver:
    """The Receiver of the app handling this request."""
    return current_app.extensions["renewals"]
