"""POST /webhooks/signals (the default-chosen connection) and /webhooks/signals/<connection>:
product-usage signals, HMAC-SHA256 signed, stored in that connection's state store by the same
service as `renewals signals import` (connector.services.signals)."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from crm_renewals.connector import connections
from crm_renewals.connector.connections import Connection
from crm_renewals.connector.domain.signals import Signal, SignalError, parse_signal
from crm_renewals.connector.errors import ConfigError
from crm_renewals.connector.services.signals import accept_signals
from crm_renewals.webhooks.deliveries import parse_json
from crm_renewals.webhooks.receiver import receiver
from crm_renewals.webhooks.verify import Refused, check_signals

bp = Blueprint("signals", __name__)


@bp.post("/webhooks/signals")
def receive():
    """Signals of the default-chosen connection (`default`, else the only one)."""
    return _receive(None)


@bp.post("/webhooks/signals/<connection>")
def receive_for(connection: str):
    """Signals of the connection named in the path (404 if there is none by that name)."""
    return _receive(connection)


def _receive(name: str | None):
    rx = receiver()
    body = request.get_data(cache=True)
    check_signals(
        rx.signals_secret,
        body,
        request.headers.get("X-Signals-Timestamp"),
        request.headers.get("X-Signals-Signature"),
        rx.clock(),
        rx.config.webhooks.signature_tolerance_seconds,
    )
    conn = _connection(rx, name)
    items = parse_signals(body, rx.config_of(conn).scorecard.measures.keys())
    # in the worker's native thread: a write waiting on the database's lock must not stall
    # the worker's other connections (as deliveries: Receiver.accept)
    new = rx.blocking(accept_signals, rx.inbox_of(conn).store, items)
    rx.count_received("signals", conn.name, len(items))
    rx.stored(conn.name)
    return jsonify(accepted=len(items), new=new)


def _connection(rx, name: str | None) -> Connection:
    if name is None:
        try:
            return connections.choose(rx.config, rx.deployment.registry, None)
        except ConfigError:  # several connections and no default: which one is not said
            reason = "no default connection: post to /webhooks/signals/<connection>"
            raise Refused(404, reason, "connection") from None
    conn = rx.named(name) if connections.NAME.fullmatch(name) else None
    if conn is None:
        raise Refused(404, "unknown connection", "connection")
    return conn


def parse_signals(body: bytes, measures) -> list[Signal]:
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
