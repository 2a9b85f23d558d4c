"""The Flask app factory. Every accepted delivery is stored as it arrived and acknowledged at
once; the inbox worker (webhooks/worker.py) reads its events and processes them."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from connector.config import AppConfig
from connector.domain.signals import SignalError, parse_signal
from connector.inbox import Inbox
from connector.state import InboxBusy, StateStore
from webhooks import soap
from webhooks.deliveries import hubspot_batch, parse_json
from webhooks.metrics import Metrics
from webhooks.openapi import spec
from webhooks.verify import Refused, check_hubspot_v3, check_signals, hubspot_uri

log = logging.getLogger(__name__)
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


def create_app(
    config: AppConfig,
    *,
    store: StateStore | None = None,
    env: Mapping[str, str] | None = None,
    clock: Callable[[], float] = time.time,
) -> Flask:
    """The webhook app for this configuration (secrets from `env`, default os.environ)."""
    app = Flask("webhooks", static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = config.webhooks.max_body_bytes
    rx = Receiver(
        config, store or StateStore(config.state_url), os.environ if env is None else env, clock
    )
    app.extensions["renewals"] = rx
    settings = config.webhooks

    app.wsgi_app = _Timed(app.wsgi_app, rx.metrics)

    @app.errorhandler(Refused)
    def _refused(exc: Refused):
        source = ROUTES.get(request.path, "other")
        rx.metrics.refused.labels(source, exc.label).inc()
        log.info("refused %s webhook: %s", source, exc.reason)
        if source == "salesforce":
            return Response(soap.fault(exc.reason), exc.status, content_type=soap.CONTENT_TYPE)
        return jsonify(error=exc.reason), exc.status

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(_exc):
        limit = settings.max_body_bytes
        return _refused(Refused(413, f"body larger than {limit} bytes", "too_large"))

    @app.post("/webhooks/hubspot")
    def hubspot():
        body = request.get_data(cache=True)
        base = settings.public_base_url or request.host_url
        query = request.query_string.decode("latin-1")
        uri = base.rstrip("/") + request.script_root + request.path + (f"?{query}" if query else "")
        check_hubspot_v3(
            rx.hubspot_secret,
            request.method,
            hubspot_uri(uri, settings.hubspot_decode_uri),
            body,
            request.headers.get("X-HubSpot-Request-Timestamp"),
            request.headers.get("X-HubSpot-Signature-v3"),
            rx.clock(),
            settings.signature_tolerance_seconds,
        )
        events = len(hubspot_batch(body))
        rx.accept("hubspot", body, events)
        return _accepted(events)

    @app.post("/webhooks/salesforce")
    def salesforce():
        body = request.get_data(cache=True)
        message = soap.parse(body)
        if not rx.org_id:
            raise Refused(401, "no Salesforce organization is configured", "not_configured")
        if not soap.same_org(message.organization_id, rx.org_id):
            raise Refused(401, "organization not accepted", "org")
        # stored before the Ack: an Ack means it is durable
        rx.accept("salesforce", body, len(message.notifications))
        return Response(soap.ACK, 200, content_type=soap.CONTENT_TYPE)

    @app.post("/webhooks/signals")
    def signals():
        body = request.get_data(cache=True)
        check_signals(
            rx.signals_secret,
            body,
            request.headers.get("X-Signals-Timestamp"),
            request.headers.get("X-Signals-Signature"),
            rx.clock(),
            settings.signature_tolerance_seconds,
        )
        items = parse_signals(body, config.scorecard.measures.keys())
        new = rx.store.signals.add(items)
        rx.received["signals"].inc(len(items))
        return jsonify(accepted=len(items), new=new)

    @app.get("/healthz")
    def healthz():
        try:  # reading the queue proves the database answers
            depth, waiting = rx.inbox.depth(), rx.inbox.waiting()
            oldest = rx.inbox.oldest_wait()
        except Exception as exc:  # noqa: BLE001 - health reports, never raises
            return jsonify(status="fail", database=type(exc).__name__), 503
        worker = "n/a" if rx.worker_alive is None else ("ok" if rx.worker_alive() else "stopped")
        body = {"status": "ok", "database": "ok", "worker": worker}
        if worker == "stopped":
            body.update(status="fail", reason="the inbox worker process is not running")
        elif oldest > settings.health_max_wait_seconds:
            limit = settings.health_max_wait_seconds
            reason = f"deliveries or events waiting longer than {limit:g} s: processing is behind"
            body.update(status="degraded", reason=reason)
        queue = {"inbox_depth": depth, "deliveries_waiting": waiting}
        queue["oldest_wait_seconds"] = round(oldest)
        return jsonify(**body, **queue), 200 if body["status"] == "ok" else 503

    @app.get("/metrics")
    def metrics():
        return Response(rx.metrics.render(rx.store), content_type="text/plain; version=0.0.4")

    @app.get("/openapi.json")
    def openapi():
        return jsonify(spec(settings.max_body_bytes))

    return app


class _Timed:
    """WSGI middleware: each webhook request's time to answer, in the latency histogram."""

    def __init__(self, wsgi_app, metrics: Metrics):
        self.wsgi_app = wsgi_app
        self.histograms = {path: metrics.latency.labels(src) for path, src in ROUTES.items()}

    def __call__(self, environ, start_response):
        started = time.perf_counter()
        try:
            return self.wsgi_app(environ, start_response)
        finally:
            histogram = self.histograms.get(environ.get("PATH_INFO"))
            if histogram is not None:
                histogram.observe(time.perf_counter() - started)


def _accepted(events: int) -> Response:
    return Response(f'{{"accepted":{events}}}\n', 200, content_type="application/json")


def parse_signals(body: bytes, measures) -> list:
    """A JSON signal object, an array of them, or {"signals": [...]}; all valid or none kept."""
    data = parse_json(body)
    if isinstance(data, dict) and isinstance(data.get("signals"), list):
        data = data["signals"]
    rows = data if isinstance(data, list) else [data]
    if not rows:
        raise Refused(400, "no signals", "payload")
    out = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise Refused(400, f"signal {i}: expected a JSON object", "payload")
        try:
            out.append(parse_signal(row, list(measures), source="webhook"))
        except SignalError as exc:
            raise Refused(400, f"signal {i}: {exc}", "payload") from None
    return out
