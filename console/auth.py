"""Signing in and out, and the guard every /admin request passes: the console is on, the
session names a user who still exists, a form carries its CSRF token, and only admins change
or trigger anything (viewers may look)."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import (
    Blueprint,
    abort,
    current_app,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from crm_renewals.connector.services.users import LoginRefused, authenticate, console_enabled
from crm_renewals.connector.state import User
from crm_renewals.console.state import console

bp = Blueprint("auth", __name__)
#: endpoints open without a session
OPEN = {"admin.auth.login", "admin.static"}


def guard():
    """Before every /admin request."""
    state = console()
    why_off = console_enabled(state.store, state.secret_key)
    if why_off:
        if request.endpoint == "admin.static":
            return None
        return render_template("console/off.html", reason=why_off), 404
    if request.method == "POST":
        # the app's CSRFProtect (console.app): a missing or wrong token is a 400
        current_app.extensions["csrf"].protect()
    g.user = _session_user()
    if request.endpoint in OPEN:
        return None
    if g.user is None:
        return redirect(url_for("admin.auth.login", next=request.full_path.rstrip("?")))
    if request.method == "POST" and g.user.role != "admin" and request.endpoint != _LOGOUT:
        abort(403, "Viewers cannot change anything: ask an admin.")
    return None


_LOGOUT = "admin.auth.logout"


def _session_user() -> User | None:
    email = session.get("email")
    if not email:
        return None
    user = console().store.users.get(email)
    if user is None:  # removed since: the session ends
        session.clear()
    return user


def actor() -> str:
    """Who is acting, for the audit log."""
    return g.user.email


@bp.route("/login", methods=["GET", "POST"])
def login():
    error, status = None, 200
    email = ""
    if request.method == "POST":
        email = request.form.get("email", "")
        state = console()
        try:
            user = authenticate(
                state.store,
                state.config,
                email,
                request.form.get("password", ""),
                request.remote_addr or "unknown",
            )
        except LoginRefused as exc:
            error, status = str(exc), 429 if exc.throttled else 401
        else:
            session.clear()
            session.permanent = True
            session["email"] = user.email
            return redirect(safe_next(request.args.get("next")))
    elif g.user is not None:
        return redirect(url_for("admin.overview.index"))
    return render_template("console/login.html", error=error, email=email), status


@bp.route("/logout", methods=["POST"])
def logout():
    session.clear()
    return redirect(url_for("admin.auth.login"))


#: where signing in may lead back to: the console, and the OAuth install it starts
NEXT_PATHS = ("/admin/", "/oauth/")


def safe_next(target: str | None) -> str:
    """Only a path of the console (or an OAuth install): never another site."""
    if target:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and parts.path.startswith(NEXT_PATHS):
            return target
    return url_for("admin.overview.index")
