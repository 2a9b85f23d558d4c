"""The service routes: GET /healthz, /metrics (Prometheus) and /openapi.json."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from crm_renewals.webhooks.openapi import spec
from crm_renewals.webhooks.receiver import receiver

bp = Blueprint("service", __name__)


@bp.get("/healthz")
def healthz():
    body, status = receiver().health()
    return jsonify(**body), status


@bp.get("/metrics")
def metrics() -> Response:
    rx = receiver()
    return Response(rx.metrics.render(rx.store), content_type="text/plain; version=0.0.4")


@bp.get("/openapi.json")
def openapi():
    return jsonify(spec(receiver().config.webhooks.max_body_bytes))
