"""Connections (/admin/connections): the deployment's CRM connections, each with its CRM,
portal or org id, status (and why), authorisation and last run; admins connect a HubSpot
portal or a Salesforce org by OAuth (the /oauth/<crm>/install route of `renewals serve`),
reconnect one that needs it, disconnect (tokens revoked) or remove one. The switcher in the
page header (GET /admin/connections/switch) chooses the connection the other pages show."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from flask import Blueprint, abort, flash, g, redirect, render_template, request, session, url_for

from crm_renewals.connector.connections import (
    CONNECTED,
    DISCONNECTED,
    NEEDS_RECONNECT,
    PENDING,
    Connection,
)
from crm_renewals.connector.errors import ConnectorError
from crm_renewals.connector.services import connections as service
from crm_renewals.console.auth import actor, safe_next
from crm_renewals.console.csp import with_form_targets
from crm_renewals.console.current import PARAM, SESSION_KEY, unknown
from crm_renewals.console.state import console

bp = Blueprint("connections", __name__)
#: the CRMs an admin connects by OAuth, as people name them
OAUTH_CRMS = {"hubspot": "HubSpot", "salesforce": "Salesforce"}
#: what a CRM calls the id of what a connection reaches
EXTERNAL = {"hubspot": "portal", "salesforce": "org"}
#: statuses a Reconnect (the OAuth install again) is offered for
RECONNECT = (NEEDS_RECONNECT, DISCONNECTED, PENDING)
#: a message given back in the query string (?connected=, ?error=) is shown up to this long
MESSAGE_MAX = 300


@dataclass(frozen=True)
class Row:
    """A connection as the page shows it."""

    connection: Connection
    last_run: object | None
    problem: str | None  # its settings or state cannot be opened: why
    reconnect: str | None  # the install path that reconnects it
    disconnect: bool


@bp.get("/connections")
def index():
    state = console()
    rows = [_row(conn) for conn in g.connections]
    return (
        render_template(
            "console/connections.html",
            rows=rows,
            connected=_connected_message(request.args.get("connected")),
            error=(request.args.get("error") or "").strip()[:MESSAGE_MAX] or None,
            crms=OAUTH_CRMS,
            install_path=install_path,
            external=EXTERNAL,
            admin=g.user.role == "admin",
            deployment=state.config,
        ),
        200,
        {"Content-Security-Policy": csp(state.config)},
    )


@bp.get("/connections/switch")
def switch():
    """The switcher: the connection chosen kept in the session, then the page's section."""
    name = (request.args.get(PARAM) or "").strip()
    if name not in {c.name for c in g.connections}:
        return unknown(name)
    session[SESSION_KEY] = name
    return redirect(_section(request.args.get("next")))


@bp.post("/connections/<name>/disconnect")
def disconnect(name: str):
    conn = _known(name)
    from crm_renewals.connector import oauth  # h-oauth's: revokes, clears tokens, audits

    state = console()
    try:
        done = oauth.disconnect(state.config, state.store, conn.name, actor())
    except ConnectorError as exc:
        flash(f"{conn.name} could not be disconnected: {exc}", "error")
    else:
        flash(f"Disconnected {done.name}: its tokens are revoked; Reconnect to use it again.")
    state.forget(conn.name)
    return redirect(url_for(".index"))


@bp.post("/connections/<name>/remove")
def remove(name: str):
    conn = _known(name)
    state = console()
    try:
        service.remove(state.config, state.store, conn.name, actor())
    except ConnectorError as exc:
        flash(f"{conn.name} could not be removed: {exc}", "error")
    else:
        flash(
            f"Removed {conn.name}: its state database stays (adding {conn.name} again carries "
            "on from it).",
            "success",
        )
    state.forget(conn.name)
    return redirect(url_for(".index"))


@bp.errorhandler(404)
def _missing(exc):
    return render_template("console/error.html", message=exc.description), 404


def _known(name: str) -> Connection:
    for conn in g.connections:
        if conn.name == name:
            return conn
    abort(404, f"There is no connection named {name[:60]!r}.")


def _row(conn: Connection) -> Row:
    last, problem = None, None
    try:
        runs = console().of(conn).store.runs.list(1)
        last = runs[0] if runs else None
    except ConnectorError as exc:  # its own settings file does not load: shown, not fatal
        problem = str(exc)
    reconnect = None
    if conn.crm in OAUTH_CRMS and conn.status in RECONNECT:
        reconnect = install_path(conn.crm, conn.name)
    return Row(conn, last, problem, reconnect, conn.auth == "oauth" and conn.status == CONNECTED)


def install_path(crm: str, name: str | None = None) -> str:
    """The OAuth install route of `renewals serve` (webhooks/blueprints/oauth.py)."""
    path = f"/oauth/{crm}/install"
    return f"{path}?connection={quote(name)}" if name else path


def _connected_message(name: str | None) -> str | None:
    """ "Connected acme: HubSpot portal 123" for the ?connected=NAME the OAuth callback sends."""
    name = (name or "").strip()[:MESSAGE_MAX]
    if not name:
        return None
    for conn in g.connections:
        if conn.name == name:
            what = OAUTH_CRMS.get(conn.crm, conn.crm)
            if conn.external_id:
                what += f" {EXTERNAL.get(conn.crm, 'id')} {conn.external_id}"
            return f"Connected {conn.name}: {what}"
    return f"Connected {name}"


def _section(target: str | None) -> str:
    """The section of the console `target` is in (/admin/runs/42 -> /admin/runs): a record of
    one connection is not the other's."""
    path = urlsplit(safe_next(target)).path
    parts = path.split("/")  # ["", "admin", section, ...]
    return "/".join(parts[:3]) if len(parts) > 2 and parts[2] else "/admin/"


def csp(config) -> str:
    """The page's Content-Security-Policy: its Connect forms go to /oauth/<crm>/install,
    which redirects to the CRM's authorisation page, and browsers hold the redirect of a
    form to `form-action` too (CSP 3): the CRMs' authorisation hosts are allowed."""
    hosts = {"https://*.hubspot.com", "https://*.salesforce.com", "https://*.force.com"}
    hosts.add(_origin(config.oauth.hubspot_authorize_url))
    if config.oauth.salesforce_login_url:
        hosts.add(_origin(config.oauth.salesforce_login_url))
    return with_form_targets(hosts)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
