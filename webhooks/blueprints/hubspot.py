"""POST /webhooks/hubspot: HubSpot webhook batches, signature v3 checked (the private app's
client secret or the public app's), routed by portal, stored as they arrived."""

from __future__ import annotations

import json
import logging

from flask import Blueprint, Response, request

from crm_renewals.webhooks.deliveries import hubspot_batch
from crm_renewals.webhooks.receiver import receiver
from crm_renewals.webhooks.verify import Refused, check_hubspot_v3, hubspot_uri

bp = Blueprint("hubspot", __name__)
log = logging.getLogger(__name__)


@bp.post("/webhooks/hubspot")
def receive() -> Response:
    """Each event goes to the connection of its `portalId` (webhooks/routing.py); each
    connection's events are stored as one delivery in its own state store (the body as it
    arrived when they are all one connection's). Events of a portal no connection takes are
    refused, never stored, and counted (reason `unknown_portal`): a batch with none of ours is
    answered 403; a mixed batch stores ours and answers 200, `accepted` = the events stored."""
    rx = receiver()
    settings = rx.config.webhooks
    body = request.get_data(cache=True)
    check_hubspot_v3(
        rx.hubspot_secrets,
        request.method,
        hubspot_uri(_signed_uri(settings.public_base_url), settings.hubspot_decode_uri),
        body,
        request.headers.get("X-HubSpot-Request-Timestamp"),
        request.headers.get("X-HubSpot-Signature-v3"),
        rx.clock(),
        settings.signature_tolerance_seconds,
    )
    events = hubspot_batch(body)
    groups, unknown = rx.hubspot_groups(events)
    if not groups:
        raise Refused(403, "unknown portal", "unknown_portal")
    if unknown:
        rx.metrics.refused.labels("hubspot", "unknown_portal").inc()
        refused = len(events) - sum(len(mine) for _, mine in groups)
        log.info("refused %d hubspot event(s) of unknown portal(s) %s", refused, sorted(unknown))
    stored = 0
    for conn, mine in groups:
        whole = len(groups) == 1 and not unknown
        rx.accept("hubspot", body if whole else _batch(mine), len(mine), conn)
        stored += len(mine)
    return Response(f'{{"accepted":{stored}}}\n', 200, content_type="application/json")


def _batch(events: list[dict]) -> bytes:
    """A part of a batch, as a batch of its own (what the inbox worker reads back)."""
    return json.dumps(events, separators=(",", ":"), ensure_ascii=False).encode()


def _signed_uri(public_base_url: str | None) -> str:
    """The URI HubSpot signed: rebuilt from the configured public URL, never the Host header."""
    base = public_base_url or request.host_url
    query = request.query_string.decode("latin-1")
    return base.rstrip("/") + request.script_root + request.path + (f"?{query}" if query else "")
