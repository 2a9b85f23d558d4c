"""/healthz and /healthz/<connection>: each connection's database and queue, the inbox
worker, and the deployment's worst.

A connection's `status`: `fail` when its database does not answer (or its settings do not
load), `degraded` when it needs reconnecting (its deliveries are kept and wait) or when its
events wait longer than `webhooks.health_max_wait_seconds` (processing is behind), else `ok`.
The HTTP answer is 503 when the process cannot do its work (a database, the inbox worker, or
processing behind), else 200: a connection waiting for an admin to reconnect it is reported
(`degraded`, with a reason naming it) but restarting the server would not help it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crm_renewals.connector.connections import NEEDS_RECONNECT, Connection

if TYPE_CHECKING:
    from crm_renewals.webhooks.receiver import Receiver

RANK = {"ok": 0, "degraded": 1, "fail": 2}
#: beyond this many connections, /healthz reads their databases at most every CACHE_SECONDS
MANY_CONNECTIONS, CACHE_SECONDS = 25, 15.0


def connection_health(rx: Receiver, conn: Connection) -> tuple[dict[str, Any], bool]:
    """(the connection's body, whether it makes the process unhealthy: 503)."""
    body: dict[str, Any] = {"status": "ok", "database": "ok"}
    try:  # reading the queue proves the database answers
        inbox = rx.inbox_of(conn)
        depth, waiting, oldest = inbox.depth(), inbox.waiting(), inbox.oldest_wait()
        limit = rx.config_of(conn).webhooks.health_max_wait_seconds
    except Exception as exc:  # noqa: BLE001 - health reports, never raises
        body.update(status="fail", database=type(exc).__name__, connection_status=conn.status)
        body["reason"] = f"connection {conn.name}: its state database does not answer"
        return body, True
    body.update(inbox_depth=depth, deliveries_waiting=waiting)
    body.update(oldest_wait_seconds=round(oldest), connection_status=conn.status)
    urgent = False
    if conn.status == NEEDS_RECONNECT:
        why = f" ({conn.status_reason})" if conn.status_reason else ""
        reason = f"connection {conn.name} needs reconnecting{why}: its deliveries wait"
        body.update(status="degraded", reason=reason)
    elif conn.runnable and oldest > limit:
        reason = (
            f"connection {conn.name}: deliveries or events waiting longer than {limit:g} s: "
            "processing is behind"
        )
        body.update(status="degraded", reason=reason)
        urgent = True
    return body, urgent


def _worker(rx: Receiver) -> str:
    if rx.config.workers.engine == "celery":  # Celery workers run the inboxes, elsewhere
        return "celery"
    alive = rx.worker_alive
    return "n/a" if alive is None else ("ok" if alive() else "stopped")


def overall(rx: Receiver) -> tuple[dict[str, Any], int]:
    """Today's keys (summed, or the worst, over the connections) and `connections`."""
    try:
        conns = rx.connections()
    except Exception as exc:  # noqa: BLE001 - the registry (default database) does not answer
        return {"status": "fail", "database": type(exc).__name__}, 503
    worker = _worker(rx)
    each, urgent = _each(rx, conns)
    body: dict[str, Any] = {"status": "ok", "database": "ok", "worker": worker}
    reasons = [b["reason"] for b in each.values() if "reason" in b]
    worst = max((b["status"] for b in each.values()), key=RANK.__getitem__, default="ok")
    failed = [b["database"] for b in each.values() if b["database"] != "ok"]
    if failed:
        body["database"] = failed[0]
    if worker == "stopped":
        body.update(status="fail", reason="the inbox worker process is not running")
        urgent = True
    elif worst != "ok":
        body.update(status=worst, reason="; ".join(reasons))
    counted = [b for b in each.values() if "inbox_depth" in b]
    if counted:
        body["inbox_depth"] = sum(b["inbox_depth"] for b in counted)
        body["deliveries_waiting"] = sum(b["deliveries_waiting"] for b in counted)
        body["oldest_wait_seconds"] = max(b["oldest_wait_seconds"] for b in counted)
    body["connections"] = each
    return body, 503 if urgent or body["status"] == "fail" else 200


def _each(rx: Receiver, conns: list[Connection]) -> tuple[dict[str, dict[str, Any]], bool]:
    """Every connection's body, and whether one makes the process unhealthy. Beyond
    MANY_CONNECTIONS the answer is kept CACHE_SECONDS (one probe reads them while others wait
    and share it): a read of a thousand state databases takes seconds, a probe comes every few.
    """
    if len(conns) <= MANY_CONNECTIONS:
        return _read_each(rx, conns)
    with rx.health_lock:
        kept = rx.health_cache
        if kept is None or rx.clock() - kept[0] >= CACHE_SECONDS:
            kept = rx.health_cache = (rx.clock(), *_read_each(rx, conns))
        return kept[1], kept[2]


def _read_each(rx: Receiver, conns: list[Connection]) -> tuple[dict[str, dict[str, Any]], bool]:
    each: dict[str, dict[str, Any]] = {}
    urgent = False
    for conn in conns:
        each[conn.name], bad = connection_health(rx, conn)
        urgent = urgent or bad
    return each, urgent


def single(rx: Receiver, conn: Connection) -> tuple[dict[str, Any], int]:
    body, urgent = connection_health(rx, conn)
    worker = _worker(rx)
    body = {"connection": conn.name, **body, "worker": worker}
    if worker == "stopped":
        body.update(status="fail", reason="the inbox worker process is not running")
        urgent = True
    return body, 503 if urgent or body["status"] == "fail" else 200
