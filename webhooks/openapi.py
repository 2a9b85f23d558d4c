"""The OpenAPI 3.0 description of the webhook app, served at /openapi.json."""

from __future__ import annotations

from typing import Any

from crm_renewals.webhooks.deliveries import HUBSPOT_MAX_EVENTS


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _xml(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/xml": {"schema": {"type": "string"}}}}


ERROR = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}
ACCEPTED = {
    "type": "object",
    "required": ["accepted"],
    "properties": {
        "accepted": {
            "type": "integer",
            "description": "events stored (each connection's, by portalId, as one delivery of "
            "its own; events of an unknown portal are refused and not counted); copies and "
            "redeliveries are recognised by event id when the inbox worker reads it",
        },
    },
}
SIGNALS_ACCEPTED = {
    "type": "object",
    "required": ["accepted", "new"],
    "properties": {
        "accepted": {"type": "integer", "description": "signals in the request"},
        "new": {"type": "integer", "description": "not seen before (others are copies)"},
    },
}
HEALTH = {
    "type": "object",
    "required": ["status"],
    "properties": {
        "status": {"type": "string", "enum": ["ok", "degraded", "fail"]},
        "reason": {"type": "string", "description": "why the status is not ok"},
        "database": {"type": "string"},
        "worker": {
            "type": "string",
            "enum": ["ok", "stopped", "n/a"],
            "description": "the inbox worker process (n/a: the app runs without one)",
        },
        "inbox_depth": {"type": "integer", "description": "events waiting to be processed"},
        "deliveries_waiting": {
            "type": "integer",
            "description": "deliveries stored, not yet read into events",
        },
        "oldest_wait_seconds": {
            "type": "integer",
            "description": "how long the oldest unread delivery or due event has waited",
        },
    },
}
CONNECTION_HEALTH = {
    "type": "object",
    "required": ["status", "database"],
    "properties": {
        "status": {"type": "string", "enum": ["ok", "degraded", "fail"]},
        "reason": {"type": "string"},
        "database": {"type": "string"},
        "inbox_depth": {"type": "integer"},
        "deliveries_waiting": {"type": "integer"},
        "oldest_wait_seconds": {"type": "integer"},
        "connection_status": {
            "type": "string",
            "enum": ["connected", "pending", "needs_reconnect", "disconnected"],
            "description": "the connection's own status (only connected ones are processed; "
            "the others' deliveries are stored and wait)",
        },
    },
}
HEALTH["properties"]["connections"] = {
    "type": "object",
    "description": "each connection's health, by name",
    "additionalProperties": CONNECTION_HEALTH,
}
HEALTH_OF = {
    "type": "object",
    "required": ["connection", "status"],
    "properties": {
        "connection": {"type": "string"},
        **CONNECTION_HEALTH["properties"],
        "worker": HEALTH["properties"]["worker"],
    },
}
CONNECTION_PARAM = {
    "in": "path",
    "name": "connection",
    "required": True,
    "schema": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,39}$"},
    "description": "a connection's name (renewals connections list)",
}
REFUSALS = {
    "400": _json({"$ref": "#/components/schemas/Error"}, "Malformed payload; nothing stored"),
    "401": _json({"$ref": "#/components/schemas/Error"}, "Bad signature or timestamp"),
    "408": _json({"$ref": "#/components/schemas/Error"}, "Body not received in time"),
    "413": _json({"$ref": "#/components/schemas/Error"}, "Body larger than the configured limit"),
}
HUBSPOT_EVENT = {
    "type": "object",
    "required": ["eventId"],
    "properties": {
        "eventId": {"type": "integer"},
        "subscriptionId": {"type": "integer"},
        "portalId": {"type": "integer"},
        "appId": {"type": "integer"},
        "occurredAt": {"type": "integer", "description": "epoch milliseconds"},
        "subscriptionType": {"type": "string", "example": "deal.propertyChange"},
        "attemptNumber": {"type": "integer"},
        "objectId": {"type": "integer"},
        "propertyName": {"type": "string"},
        "propertyValue": {"type": "string"},
        "changeSource": {"type": "string"},
        "changeFlag": {"type": "string"},
        "sourceId": {"type": "string"},
    },
}
SIGNAL = {
    "type": "object",
    "required": ["account", "measure", "value", "timestamp"],
    "additionalProperties": False,
    "properties": {
        "account": {"type": "string", "description": "the account's CRM id"},
        "measure": {"type": "string", "description": "a scorecard measure of app.yaml"},
        "value": {"type": "number"},
        "timestamp": {
            "oneOf": [{"type": "string", "format": "date-time"}, {"type": "integer"}],
            "description": "ISO 8601 with a zone, or epoch milliseconds",
        },
        "source": {"type": "string"},
    },
}


def spec(max_body_bytes: int) -> dict[str, Any]:
    header = {"in": "header", "required": True, "schema": {"type": "string"}}
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "crm-renewals webhooks",
            "version": "1",
            "description": "Change notifications from HubSpot and Salesforce, product-usage "
            "signals, health and metrics. Accepted events are stored durably and acknowledged "
            f"at once; bodies over {max_body_bytes} bytes are refused with 413.",
        },
        "paths": {
            "/webhooks/hubspot": {
                "post": {
                    "summary": "HubSpot webhook batch (signature v3)",
                    "operationId": "hubspotWebhook",
                    "parameters": [
                        {**header, "name": "X-HubSpot-Signature-v3"},
                        {
                            **header,
                            "name": "X-HubSpot-Request-Timestamp",
                            "description": "epoch ms, within 5 minutes",
                        },
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "array",
                                    "minItems": 1,
                                    "maxItems": HUBSPOT_MAX_EVENTS,
                                    "items": HUBSPOT_EVENT,
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": _json(ACCEPTED, "Stored"),
                        **REFUSALS,
                        "403": _json(
                            {"$ref": "#/components/schemas/Error"},
                            "No event of a known portal (unknown portal); nothing stored",
                        ),
                    },
                }
            },
            "/webhooks/salesforce": {
                "post": {
                    "summary": "Salesforce outbound message (SOAP notifications)",
                    "operationId": "salesforceOutboundMessage",
                    "requestBody": {
                        "required": True,
                        "content": {"text/xml": {"schema": {"type": "string"}}},
                    },
                    "responses": {
                        "200": _xml("notificationsResponse with Ack true, after storing"),
                        "400": _xml("SOAP fault: malformed message, DTD or entities"),
                        "401": _xml("SOAP fault: organization of no connection (not accepted)"),
                        "413": _xml("SOAP fault: body too large"),
                    },
                }
            },
            "/webhooks/signals": {"post": _signals_op("signals", [])},
            "/webhooks/signals/{connection}": {
                "post": _signals_op("signalsOfConnection", [CONNECTION_PARAM])
            },
            "/healthz": {
                "get": {
                    "summary": "Process, database and inbox worker health",
                    "operationId": "health",
                    "responses": {
                        "200": _json(HEALTH, "Healthy (a connection needing reconnect: degraded)"),
                        "503": _json(HEALTH, "Database or worker down, or processing behind"),
                    },
                }
            },
            "/healthz/{connection}": {
                "get": {
                    "summary": "One connection's health (its database and queue), and the worker",
                    "operationId": "healthOfConnection",
                    "parameters": [CONNECTION_PARAM],
                    "responses": {
                        "200": _json(HEALTH_OF, "Healthy, or waiting to be reconnected"),
                        "404": _json({"$ref": "#/components/schemas/Error"}, "No such connection"),
                        "503": _json(HEALTH_OF, "Database or worker down, or processing behind"),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "operationId": "metrics",
                    "responses": {
                        "200": {
                            "description": "Prometheus text format",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This description",
                    "operationId": "openapi",
                    "responses": {"200": _json({"type": "object"}, "OpenAPI 3 document")},
                }
            },
            **_oauth_paths(),
        },
        "components": {"schemas": {"Error": ERROR}},
    }


def _redirect(description: str) -> dict[str, Any]:
    return {"description": description, "headers": {"Location": {"schema": {"type": "string"}}}}


def _html(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/html": {"schema": {"type": "string"}}}}


def _oauth_paths() -> dict[str, Any]:
    """Connecting a CRM by OAuth (webhooks/blueprints/oauth.py): browser redirects, not an API."""
    crm = {
        "name": "crm",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "enum": ["hubspot", "salesforce"]},
    }

    def query(name: str, description: str) -> dict[str, Any]:
        return {
            "name": name,
            "in": "query",
            "schema": {"type": "string"},
            "description": description,
        }

    return {
        "/oauth/{crm}/install": {
            "get": {
                "summary": "A signed-in console admin connects a CRM: sent to its approval page",
                "operationId": "oauthInstall",
                "parameters": [crm, query("connection", "the connection to connect or reconnect")],
                "responses": {
                    "302": _redirect(
                        "To the CRM (or the console's login page, or Connections with ?error=)"
                    ),
                    "403": _html("Signed in, but not an admin"),
                    "404": _html("The console is off, or the CRM does not connect by OAuth"),
                },
            }
        },
        "/oauth/{crm}/callback": {
            "get": {
                "summary": "Where the CRM sends the admin back: the connection connected",
                "operationId": "oauthCallback",
                "parameters": [
                    crm,
                    query("code", "the authorization code"),
                    query("state", "the install's state"),
                    query("error", "the CRM's refusal (access_denied...)"),
                    query("error_description", "its description"),
                ],
                "responses": {
                    "302": _redirect("To /admin/connections?connected=NAME or ?error=REASON"),
                    "400": _html("No console session in this browser"),
                    "404": _html("The CRM does not connect by OAuth"),
                },
            }
        },
    }


def _signals_op(operation: str, parameters: list[dict[str, Any]]) -> dict[str, Any]:
    """POST of signals: to the default-chosen connection, or to the one in the path."""
    header = {"in": "header", "required": True, "schema": {"type": "string"}}
    op = {
        "summary": "Product-usage signals (HMAC-SHA256 signed)",
        "operationId": operation,
        "parameters": [
            *parameters,
            {
                **header,
                "name": "X-Signals-Timestamp",
                "description": "epoch seconds, within 5 minutes",
            },
            {
                **header,
                "name": "X-Signals-Signature",
                "description": "v1= + hex HMAC-SHA256(secret, timestamp + '.' + body)",
            },
        ],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [
                            SIGNAL,
                            {"type": "array", "items": SIGNAL},
                            {
                                "type": "object",
                                "required": ["signals"],
                                "properties": {"signals": {"type": "array", "items": SIGNAL}},
                            },
                        ]
                    }
                }
            },
        },
        "responses": {"200": _json(SIGNALS_ACCEPTED, "Stored"), **REFUSALS},
    }
    if parameters:
        op["summary"] += ", for the connection named in the path"
        op["responses"]["404"] = _json({"$ref": "#/components/schemas/Error"}, "No such connection")
    else:
        op["responses"]["404"] = _json(
            {"$ref": "#/components/schemas/Error"},
            "Several connections and none is default: name one in the path",
        )
    return op
