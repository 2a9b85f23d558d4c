"""POST /webhooks/salesforce: Salesforce outbound messages (SOAP), routed by their
OrganizationId to the connection of that org, stored, then answered with the Ack."""

from __future__ import annotations

from flask import Blueprint, Response, request

from crm_renewals.webhooks import soap
from crm_renewals.webhooks.receiver import receiver

bp = Blueprint("salesforce", __name__)


@bp.post("/webhooks/salesforce")
def receive() -> Response:
    rx = receiver()
    body = request.get_data(cache=True)
    message = soap.parse(body)
    conn = rx.salesforce_owner(message.organization_id)  # else refused: 401, nothing stored
    # stored before the Ack: an Ack means it is durable
    rx.accept("salesforce", body, len(message.notifications), conn)
    return Response(soap.ACK, 200, content_type=soap.CONTENT_TYPE)
