"""Wires the console into the webhook app: the /admin blueprint and its pages, sessions that
expire and ride only secure connections when the request is https, CSRF on every form, and
headers that keep the pages from being framed, sniffed or cached."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from flask import Blueprint, Flask, render_template, request
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.middleware.proxy_fix import ProxyFix

from crm_renewals.connector import bootstrap
from crm_renewals.connector.config import AppConfig
from crm_renewals.connector.connections import DEFAULT
from crm_renewals.connector.state import StateStore
from crm_renewals.console import auth, current
from crm_renewals.console.csp import CSP
from crm_renewals.console.pages import PAGES
from crm_renewals.console.state import ConsoleState, Unavailable

csrf = CSRFProtect()


class _SessionInterface(SecureCookieSessionInterface):
    """The session cookie is Secure whenever the request came over https."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"]) or request.is_secure


def install(app: Flask, config: AppConfig, store: StateStore, env: Mapping[str, str]) -> None:
    """Add /admin to `app` (it answers "off" until a user exists and the secret key is set).
    `config` and `store`: app.yaml's and the registry's (the default connection's); given
    another connection's, the console still serves the whole deployment."""
    state = deployment(config, store, env)
    app.extensions["console"] = state
    app.secret_key = state.secret_key
    app.config.update(
        SESSION_COOKIE_NAME="renewals_console",
        SESSION_COOKIE_PATH="/",  # /oauth/<crm>/install and callback read it too
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=config.console.session_hours),
        WTF_CSRF_CHECK_DEFAULT=False,  # the console's guard checks its own forms
        WTF_CSRF_TIME_LIMIT=None,  # a token lives as long as the session
    )
    app.session_interface = _SessionInterface()
    if config.console.trust_proxy:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)
    csrf.init_app(app)
    admin = Blueprint(
        "admin",
        __name__,
        url_prefix="/admin",
        template_folder="templates",
        static_folder="static",
        static_url_path="/static",
    )
    admin.before_request(auth.guard)
    admin.before_request(current.choose)
    admin.url_defaults(current.keep)
    admin.context_processor(current.template_globals)
    admin.register_error_handler(Unavailable, current.unavailable)
    admin.after_request(_headers)
    admin.register_blueprint(auth.bp)
    for page in PAGES:
        admin.register_blueprint(page)
    app.register_blueprint(admin)
    app.register_error_handler(CSRFError, _csrf_refused)


def deployment(config: AppConfig, store: StateStore, env: Mapping[str, str]) -> ConsoleState:
    """The console of the deployment `config` is a connection of."""
    if config.connection == DEFAULT or config.registry_url is None:
        return ConsoleState(config, store, env)
    base = bootstrap.load_base(str(config.source))
    return ConsoleState(base, bootstrap.open_registry(config), env, owns_store=True)


def _headers(response):
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    if not request.path.startswith("/admin/static/"):
        response.headers["Cache-Control"] = "no-store"
    return response


def _csrf_refused(exc: CSRFError):
    message = f"The form could not be accepted ({exc.description}): reload the page and retry."
    return render_template("console/error.html", message=message), 400
