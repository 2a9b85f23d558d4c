"""POST /webhooks/salesforce: Salesforce outbound messages (SOAP) of the configured org,
stored, then answered with the Ack."""

from __future__ import annotations

from flask import Blueprint, Response, request

from crm_renewals.webhooks import soap
from crm_renewals.webhooks.receiver import receiver
from crm_renewals.webhooks.verify import Refused

bp = Blueprint("salesforce", __name__)


@bp.post("/webhooks/salesforce")
def receive() -> Response:
    rx = receiver()
    body = request.get_data(cache=True)
    message = soap.parse(body)
    if not rx.org_id:
        raise Refused(401, "no Salesforce organization is configured", "not_configured")
    if not soap.same_org(message.organization_id, rx.org_id):
        raise Refused(401, "organization not accepted", "org")
    # stored before the Ack: an Ack means it is durable
    rx.accept("salesforce", body, len(message.notifications))
    return Response(soap.ACK, 200, content_type=soap.CONTENT_TYPE)
