"""The Flask app factory. Every accepted delivery is stored as it arrived and acknowledged at
once; the inbox worker (webhooks/worker.py) reads its events and processes them.

`create_app` only assembles: the Receiver (webhooks/receiver.py), the blueprints
(webhooks/blueprints/), the error handlers that turn a refusal into its HTTP answer, the
latency middleware, and the admin console under /admin (console/)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from crm_renewals import console
from crm_renewals.connector import bootstrap
from crm_renewals.connector.config import AppConfig
from crm_renewals.connector.state import StateStore
from crm_renewals.webhooks import soap
from crm_renewals.webhooks.blueprints import BLUEPRINTS
from crm_renewals.webhooks.blueprints.oauth import bp as oauth_bp
from crm_renewals.webhooks.metrics import Metrics
from crm_renewals.webhooks.receiver import ROUTES, Receiver, receiver, source_of
from crm_renewals.webhooks.verify import Refused

log = logging.getLogger(__name__)


def create_app(
    config: AppConfig,
    *,
    store: StateStore | None = None,
    env: Mapping[str, str] | None = None,
    clock: Callable[[], float] = time.time,
) -> Flask:
    """The webhook app of the deployment whose app.yaml `config` is (secrets from `env`,
    default os.environ; the default connection's store from connector.bootstrap unless one is
    given). It serves every connection of the deployment (webhooks/routing.py)."""
    app = Flask("webhooks", static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = config.webhooks.max_body_bytes
    store = store or bootstrap.open_store(config)
    rx = Receiver(config, store, os.environ if env is None else env, clock)
    app.extensions["renewals"] = rx
    app.wsgi_app = _Timed(app.wsgi_app, rx.metrics)
    app.register_error_handler(Refused, _refused)
    app.register_error_handler(RequestEntityTooLarge, _too_large)
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    app.register_blueprint(oauth_bp)  # connecting CRMs by OAuth: the console's admins only
    console.install(app, config, store, rx.env)
    return app


def _refused(exc: Refused):
    """A refused request: counted by source and reason; a SOAP fault for Salesforce."""
    source = source_of(request.path)
    receiver().metrics.refused.labels(source, exc.label).inc()
    log.info("refused %s webhook: %s", source, exc.reason)
    if source == "salesforce":
        return Response(soap.fault(exc.reason), exc.status, content_type=soap.CONTENT_TYPE)
    return jsonify(error=exc.reason), exc.status


def _too_large(_exc: RequestEntityTooLarge):
    limit = receiver().config.webhooks.max_body_bytes
    return _refused(Refused(413, f"body larger than {limit} bytes", "too_large"))


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
            path = environ.get("PATH_INFO") or ""
            if path.startswith("/webhooks/signals/"):
                path = "/webhooks/signals"
            histogram = self.histograms.get(path)
            if histogram is not None:
                histogram.observe(time.perf_counter() - started)
