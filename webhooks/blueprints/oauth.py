"""Connecting a CRM by OAuth: `GET /oauth/<crm>/install` (a signed-in console admin; sends the
browser to the CRM to approve the app) and `GET /oauth/<crm>/callback` (where the CRM sends it
back; the connection created or updated, then the console's Connections page).

The console's session (cookie path "/") is the admin's identity here; a random nonce kept in
it (`oauth_nonce`) binds each install to the browser session that started it. Every refusal
is a redirect to the Connections page with a short reason, or a 4xx page: never a 5xx."""

from __future__ import annotations

import contextlib
import logging
import secrets
from urllib.parse import urlencode

from flask import Blueprint, current_app, g, redirect, render_template, request, session, url_for

from crm_renewals.connector import bootstrap
from crm_renewals.connector.config import AppConfig
from crm_renewals.connector.connections import DEFAULT
from crm_renewals.connector.errors import ConfigError, ConnectorError
from crm_renewals.connector.oauth import flows
from crm_renewals.connector.oauth.providers import OAUTH_CRMS
from crm_renewals.connector.services.users import console_enabled
from crm_renewals.connector.state import StateStore, User
from crm_renewals.console.auth import _session_user
from crm_renewals.console.state import console
from crm_renewals.webhooks.receiver import receiver

bp = Blueprint("oauth", __name__, url_prefix="/oauth")
log = logging.getLogger(__name__)
NONCE = "oauth_nonce"
CONNECTIONS_PAGE = "/admin/connections"
#: a reason shown in the Connections page's URL is cut to this length
SHORT = 240
CRM_NAMES = {"hubspot": "HubSpot", "salesforce": "Salesforce"}


@bp.get("/<crm>/install")
def install(crm: str):
    """Send a signed-in admin to the CRM to approve the app (?connection=NAME: for it)."""
    refused = _signed_in_admin()
    if refused is not None:
        return refused
    if crm not in OAUTH_CRMS:
        return _page(
            404,
            f"{crm!r} does not connect by OAuth: /oauth/hubspot/install or "
            "/oauth/salesforce/install",
        )
    nonce = session.get(NONCE) or secrets.token_urlsafe(32)
    session[NONCE] = nonce
    base, registry = _deployment()
    try:
        url = flows.start(
            base,
            registry,
            crm,
            request.args.get("connection") or None,
            nonce,
            g.user.email,
            _redirect_base(base),
            receiver().env,
        )
    except ConnectorError as exc:
        return _back(error=f"{CRM_NAMES[crm]} not connected: {_reason(exc)}")
    return redirect(url, 302)


@bp.get("/<crm>/callback")
def callback(crm: str):
    """The CRM's answer: the code exchanged, the connection connected."""
    if crm not in OAUTH_CRMS:
        return _page(404, f"{crm!r} does not connect by OAuth")
    nonce = session.get(NONCE)
    state = request.args.get("state", "")
    base, registry = _deployment()
    name = CRM_NAMES[crm]
    if not nonce:  # no console session in this browser: nowhere to send a reason
        _forget(base, registry, crm, state)
        return _page(
            400,
            f"{name} sign-in refused: this browser has no console session that "
            "started it. Sign in to the console and connect again.",
        )
    if request.args.get("error"):  # the admin declined, or the CRM refused the request
        _forget(base, registry, crm, state, nonce)
        said = request.args.get("error_description") or ""
        why = request.args.get("error", "")[:60] + (f": {said}" if said else "")
        return _back(error=f"{name} not connected: {why}")
    try:
        conn = flows.finish(
            base,
            registry,
            crm,
            state,
            request.args.get("code", ""),
            nonce,
            _redirect_base(base),
            receiver().env,
        )
    except ConnectorError as exc:
        log.info("%s OAuth callback refused: %s", crm, type(exc).__name__)
        return _back(error=f"{name} not connected: {_reason(exc)}")
    return _back(connected=conn.name)


def _forget(
    base: AppConfig, registry: StateStore, crm: str, state: str, nonce: str | None = None
) -> None:
    """The flow of `state` used up (it cannot be finished later), if it was this session's."""
    with contextlib.suppress(ConnectorError):
        flows.take(base, registry, crm, state, nonce)


def _signed_in_admin():
    """None if a console admin is signed in (g.user); else the answer to give."""
    state = console()
    why_off = console_enabled(state.store, state.secret_key)
    if why_off:
        return render_template("console/off.html", reason=why_off), 404
    g.user = _session_user()
    if g.user is None:
        return redirect(url_for("admin.auth.login", next=request.full_path.rstrip("?")))
    if not _is_admin(g.user):
        return _page(403, "Only an admin can connect a CRM: ask one.")
    return None


def _is_admin(user: User) -> bool:
    return user.role == "admin"


def _deployment() -> tuple[AppConfig, StateStore]:
    """app.yaml's settings and the registry (the default connection's state database)."""
    found = current_app.extensions.get("oauth")
    if found is None:
        config = receiver().config
        base = config if config.connection == DEFAULT else bootstrap.load_base(str(config.source))
        own = console().store
        same = config.connections_url == config.state_url
        found = (base, own if same else bootstrap.open_registry(config))
        current_app.extensions["oauth"] = found
    return found


def _redirect_base(base: AppConfig) -> str:
    """oauth.redirect_base_url, else webhooks.public_base_url, else the URL the browser used."""
    return base.oauth.redirect_base_url or base.webhooks.public_base_url or request.host_url


def _reason(exc: ConnectorError) -> str:
    if isinstance(exc, ConfigError):
        return "; ".join(f"{p.path}: {p.message}" for p in exc.problems)
    return str(exc)


def _back(**query: str):
    """The console's Connections page, with `connected=` or a short `error=`."""
    short = {k: v if len(v) <= SHORT else v[: SHORT - 1] + "…" for k, v in query.items()}
    return redirect(f"{CONNECTIONS_PAGE}?{urlencode(short)}", 302)


def _page(status: int, message: str):
    g.user = getattr(g, "user", None)
    return render_template("console/error.html", message=message), status
