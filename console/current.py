"""Which connection a console request is for: `?connection=NAME` (every link and form of a
page keeps it while the deployment has more than one), else the one chosen with the
switcher (kept in the session), else the deployment's own choice (connections.choose: the
only one, or `default`). A name that is no connection is a 404 page; a choice kept in the
session whose connection has gone since falls back quietly."""

from __future__ import annotations

from flask import g, render_template, request, session
from markupsafe import Markup, escape

from crm_renewals.connector import connections
from crm_renewals.connector.connections import Connection
from crm_renewals.connector.errors import ConfigError
from crm_renewals.console.state import Unavailable, console

PARAM = "connection"
SESSION_KEY = "connection"
#: endpoints a connection means nothing to
_NONE = {None, "admin.static", "admin.auth.login"}
#: CRMs as people name them
CRM_LABELS = {"hubspot": "HubSpot", "salesforce": "Salesforce", "sandbox": "Sandbox"}


def _deployment(endpoint: str) -> bool:
    """A page that is no connection's (links to it carry no ?connection=)."""
    return endpoint == "admin.static" or endpoint.startswith("admin.connections.")


def choose():
    """Before every signed-in /admin request (after auth.guard): g.connections, the
    deployment's connections, and g.connection, the one this request is for."""
    if request.endpoint in _NONE or g.get("user") is None:
        return None
    state = console()
    found = state.connections()
    g.connections = found
    by_name = {c.name: c for c in found}
    asked = request.args.get(PARAM)
    if asked is not None:
        g.connection = by_name.get(asked.strip())
        if g.connection is None:
            return unknown(asked)
        return None
    kept = session.get(SESSION_KEY)
    if kept in by_name:
        g.connection = by_name[kept]
        return None
    if kept is not None:  # removed since: the deployment's choice again
        session.pop(SESSION_KEY)
    g.connection = fallback(found)
    return None


def fallback(found: list[Connection]) -> Connection | None:
    """The deployment's own choice (the only one, or `default`; $RENEWALS_CONNECTION if it
    names one), else the first listed; None when there is none."""
    state = console()
    try:
        return connections.choose(state.config, state.store, None)
    except ConfigError:
        return found[0] if found else None


def unknown(name: str):
    listed = ", ".join(c.name for c in g.get("connections", ())) or "none"
    message = f"There is no connection named {name[:60]!r} (connections: {listed})."
    return render_template("console/error.html", message=message), 404


def keep(endpoint: str, values: dict) -> None:
    """url_defaults of the /admin blueprint: with more than one connection, every link and
    form action of the console names the connection its page shows, so what a form does
    acts on the connection the page showed, whatever another tab chose meanwhile."""
    if _deployment(endpoint) or PARAM in values:
        return
    conn = g.get("connection")
    if conn is not None and len(g.get("connections", ())) > 1:
        values[PARAM] = conn.name


def field() -> Markup:
    """The hidden field a GET form needs to keep the connection (the browser drops the
    query string of a GET form's action)."""
    conn = g.get("connection")
    if conn is None or len(g.get("connections", ())) <= 1:
        return Markup("")
    return Markup('<input type="hidden" name="connection" value="{}">').format(escape(conn.name))


def template_globals() -> dict:
    return {
        "connection_field": field,
        "current_connection": g.get("connection"),
        "all_connections": g.get("connections", ()),
        "crm_label": lambda crm: CRM_LABELS.get(crm, crm),
    }


def unavailable(exc: Unavailable):
    status = 404 if g.get("connection") is None else 503
    return render_template("console/error.html", message=str(exc)), status
