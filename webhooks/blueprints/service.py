"""The service routes: GET /healthz, /healthz/<connection>, /metrics (Prometheus) and
/openapi.json."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from flask import Blueprint, Response, jsonify

from crm_renewals.connector import connections
from crm_renewals.webhooks.openapi import spec
from crm_renewals.webhooks.receiver import receiver

bp = Blueprint("service", __name__)
log = logging.getLogger(__name__)


@bp.get("/healthz")
def healthz():
    body, status = receiver().health()
    return jsonify(**body), status


@bp.get("/healthz/<connection>")
def healthz_of(connection: str):
    rx = receiver()
    conn = rx.named(connection) if connections.NAME.fullmatch(connection) else None
    if conn is None:
        return jsonify(error="unknown connection"), 404
    body, status = rx.health_of(conn)
    return jsonify(**body), status


@bp.get("/metrics")
def metrics() -> Response:
    rx = receiver()
    try:
        conns = rx.deployment.connections()
    except Exception:  # noqa: BLE001 - the registry does not answer: the default alone
        log.warning("metrics: the connections could not be read", exc_info=True)
        stores: Iterable = [("default", rx.store)]
    else:  # read one by one as the scrape goes (connector/deployment.py: WARM_STORES)
        stores = ((c.name, s) for c, s, _ in rx.deployment.stores(conns) if s is not None)
    return Response(rx.metrics.render(stores), content_type="text/plain; version=0.0.4")


@bp.get("/openapi.json")
def openapi():
    return jsonify(spec(receiver().config.webhooks.max_body_bytes))
