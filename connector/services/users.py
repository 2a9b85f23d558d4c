"""Console users: added, listed and removed by `renewals users`, signed in by the console.
Passwords are stored as scrypt hashes (werkzeug.security: salted, memory-hard); a sign-in is
throttled per email and per client address, and every change is in the audit log."""

from __future__ import annotations

import re
from datetime import timedelta

from werkzeug.security import check_password_hash, generate_password_hash

from crm_renewals.connector.config import AppConfig
from crm_renewals.connector.errors import ConnectorError
from crm_renewals.connector.state import StateStore, User, now

ROLES = ("admin", "viewer")
MIN_PASSWORD = 12
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
#: checked against when the email is unknown, so a wrong email costs the same time
_DUMMY_HASH = generate_password_hash("not a password of anyone", method="scrypt")


class UserError(ConnectorError):
    """A user that cannot be added or removed as asked."""


class LoginRefused(ConnectorError):
    """A sign-in refused: wrong credentials, or too many failures (`throttled`)."""

    def __init__(self, message: str, throttled: bool = False):
        super().__init__(message)
        self.throttled = throttled


def add_user(store: StateStore, email: str, role: str, password: str, actor: str) -> User:
    email = email.strip().lower()
    if not _EMAIL.match(email) or len(email) > 254:
        raise UserError(f"{email!r} is not an email address")
    if role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if len(password) < MIN_PASSWORD:
        raise UserError(f"the password must have at least {MIN_PASSWORD} characters")
    if not store.users.add(email, role, generate_password_hash(password, method="scrypt")):
        raise UserError(f"{email} is a user already (`renewals users remove` it first)")
    store.audit.record(actor, "user.add", email, {"role": role})
    return store.users.get(email)


def remove_user(store: StateStore, email: str, actor: str) -> None:
    email = email.strip().lower()
    if not store.users.remove(email):
        raise UserError(f"{email} is not a user (`renewals users list` shows them)")
    store.audit.record(actor, "user.remove", email)


def authenticate(
    store: StateStore, config: AppConfig, email: str, password: str, address: str
) -> User:
    """The user these credentials name, or LoginRefused (the failure is counted)."""
    email = email.strip().lower()[:254]
    settings = config.console
    since = now() - timedelta(minutes=settings.lockout_minutes)
    by_email, by_address = store.users.failures_since(since, email, address)
    if by_email >= settings.login_attempts or by_address >= 4 * settings.login_attempts:
        raise LoginRefused(
            f"Too many failed sign-ins: try again in {settings.lockout_minutes} minutes.",
            throttled=True,
        )
    found = store.users.credentials(email) if email else None
    if not check_password_hash(found[1] if found else _DUMMY_HASH, password) or found is None:
        store.users.failed(email, address)
        store.audit.record(email or "(no email)", "login.failed", address)
        raise LoginRefused("Wrong email or password.")
    store.users.signed_in(email)
    store.audit.record(email, "login", address)
    return found[0]


def console_enabled(store: StateStore, secret_key: str | None) -> str | None:
    """Why the console is off (None: it is on)."""
    if not secret_key:
        return "RENEWALS_SECRET_KEY is not set"
    if store.users.count() == 0:
        return "no user yet: add one with `renewals users add EMAIL --role admin`"
    return None
