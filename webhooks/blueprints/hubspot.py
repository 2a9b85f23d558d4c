"""POST /webhooks/hubspot: HubSpot webhook batches, signature v3 checked, stored as they
arrived."""

from __future__ import annotations

from flask import Blueprint, Response, request

from crm_renewals.webhooks.deliveries import hubspot_batch
from crm_renewals.webhooks.receiver import receiver
from crm_renewals.webhooks.verify import check_hubspot_v3, hubspot_uri

bp = Blueprint("hubspot", __name__)


@bp.post("/webhooks/hubspot")
def receive() -> Response:
    rx = receiver()
    settings = rx.config.webhooks
    body = request.get_data(cache=True)
    check_hubspot_v3(
        rx.hubspot_secret,
        request.method,
        hubspot_uri(_signed_uri(settings.public_base_url), settings.hubspot_decode_uri),
        body,
        request.headers.get("X-HubSpot-Request-Timestamp"),
        request.headers.get("X-HubSpot-Signature-v3"),
        rx.clock(),
        settings.signature_tolerance_seconds,
    )
    events = len(hubspot_batch(body))
    rx.accept("hubspot", body, events)
    return Response(f'{{"accepted":{events}}}\n', 200, content_type="application/json")


def _signed_uri(public_base_url: str | None) -> str:
    """The URI HubSpot signed: rebuilt from the configured public URL, never the Host header."""
    base = public_base_url or request.host_url
    query = request.query_string.decode("latin-1")
    return base.rstrip("/") + request.script_root + request.path + (f"?{query}" if query else "")
