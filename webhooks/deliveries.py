"""What a delivery holds. A request checks its delivery's shape with these before storing it
as it arrived; the inbox worker reads the same delivery again into inbox events."""

from __future__ import annotations

import json
from typing import Any

from connector.inbox import InboxEvent
from webhooks import soap
from webhooks.verify import Refused

HUBSPOT_MAX_EVENTS = 100


def hubspot_batch(body: bytes) -> list[dict[str, Any]]:
    """A batch of HubSpot events: a JSON array of up to 100 objects, each with an eventId."""
    try:
        data = json.loads(body)
    except ValueError:
        raise Refused(400, "body is not JSON", "payload") from None
    if not isinstance(data, list) or not data:
        raise Refused(400, "expected a non-empty JSON array of events", "payload")
    if len(data) > HUBSPOT_MAX_EVENTS:
        raise Refused(400, f"more than {HUBSPOT_MAX_EVENTS} events", "payload")
    for i, event in enumerate(data):
        if not isinstance(event, dict) or event.get("eventId") in (None, ""):
            raise Refused(400, f"event {i} has no eventId", "payload")
    return data


def hubspot_events(body: bytes) -> list[InboxEvent]:
    out = []
    for event in hubspot_batch(body):
        kind = str(event.get("subscriptionType") or "")
        obj = event.get("objectId")
        out.append(
            InboxEvent(
                "hubspot",
                str(event["eventId"]),
                kind.split(".", 1)[0] or None,
                None if obj in (None, "") else str(obj),
                event,
            )
        )
    return out


def salesforce_events(body: bytes) -> list[InboxEvent]:
    message = soap.parse(body)
    return [
        InboxEvent(
            "salesforce",
            n.id,
            n.object,
            n.record_id,
            {"action_id": message.action_id, "fields": n.fields},
        )
        for n in message.notifications
    ]


READERS = {"hubspot": hubspot_events, "salesforce": salesforce_events}


def events_of(source: str, body: bytes) -> list[InboxEvent]:
    """The events of a stored delivery (the inbox worker's reader)."""
    return READERS[source](body)
