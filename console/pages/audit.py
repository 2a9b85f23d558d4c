"""Audit (/admin/audit): who changed or triggered what, from the console and the CLI, newest
first, paged, filtered by who and by action (a prefix: "run" is every run started)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template, request

from crm_renewals.connector.state import AuditEntry
from crm_renewals.console import params
from crm_renewals.console.pages.settings import when
from crm_renewals.console.state import current

bp = Blueprint("audit", __name__)
PAGE_SIZE = 50
#: an action in words (the log keeps its code; an action not named here shows as its code)
WORDS = {
    "login": "signed in",
    "login.failed": "was refused sign-in",
    "user.add": "added a console user",
    "user.remove": "removed a console user",
    "run.sync": "started a sync",
    "run.dry_run": "started a dry run",
    "run.retry": "retried the dead letters",
    "crm.doctor": "checked the CRM connection",
    "mapping.save": "saved the mapping",
    "mapping.revert": "reverted the mapping",
    "deadletters.discard": "discarded dead letters",
    "connection.remove": "removed a connection",
    "connection.disconnect": "disconnected a connection",
}


@bp.get("/audit")
def index():
    actor = request.args.get("actor", "").strip()
    action = request.args.get("action", "").strip()
    page = request.args.get("page", "1").strip()
    if not params.digits(page) or int(page) < 1:
        message = f"page must be a whole number from 1, not {page!r}"
        return render_template("console/error.html", message=message), 400
    page = int(page)
    store = current().store
    total = store.audit.count(actor or None, action or None)
    entries = store.audit.list(PAGE_SIZE, (page - 1) * PAGE_SIZE, actor or None, action or None)
    return render_template(
        "console/audit.html",
        entries=[(e, words(e), detail(e.detail)) for e in entries],
        actor=actor,
        action=action,
        actors=store.audit.actors(),
        areas=sorted({a.split(".")[0] for a in store.audit.actions()}),
        page=page,
        pages=max(1, -(-total // PAGE_SIZE)),
        total=total,
        filters={k: v for k, v in (("actor", actor), ("action", action)) if v},
        when=when,
    )


def words(entry: AuditEntry) -> str:
    return WORDS.get(entry.action, entry.action)


def detail(value: dict[str, Any] | None) -> str:
    """The entry's detail in words: "role admin, pid 4242"."""
    if not value:
        return ""
    return ", ".join(f"{k.replace('_', ' ')} {_plain(v)}" for k, v in value.items())


def _plain(value: Any) -> str:
    if isinstance(value, dict):
        return "(" + ", ".join(f"{k} {_plain(v)}" for k, v in value.items()) + ")"
    if isinstance(value, list | tuple):
        return ", ".join(_plain(v) for v in value)
    return "none" if value is None else str(value)
