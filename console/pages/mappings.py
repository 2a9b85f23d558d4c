"""Mappings (/admin/mappings): the installed mapping's fields by model, the field editor with
pickers filled from the CRM's schema, the whole file as YAML, the history of versions and a
version's diff against the file. Changes go through console.pages.mapping_changes."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from flask import Blueprint, abort, g, render_template, request

from crm_renewals.connector.domain.mapping import FIELD_TYPES
from crm_renewals.connector.domain.mapping_changes import describe
from crm_renewals.connector.errors import ConnectorError
from crm_renewals.connector.services.mapping_edits import MAX_BYTES, check, installed
from crm_renewals.connector.services.versions import UnknownVersionError, diff_versions, resolve
from crm_renewals.connector.state.versions import short
from crm_renewals.console import mapping_display as display
from crm_renewals.console.crm_fields import crm_fields
from crm_renewals.console.state import console
from crm_renewals.console.state import current as connection_state

bp = Blueprint("mappings", __name__)
TABS = ("fields", "yaml", "history")
MEMO_SIZE = 32
T = TypeVar("T")


@bp.get("/mappings")
def index():
    tab = request.args.get("tab", "fields")
    if tab not in TABS:
        abort(404, f"no tab {tab!r} on the mappings page: one of {', '.join(TABS)}")
    state = connection_state()
    current = _installed()
    candidate = _memo(("check", current.hash), lambda: check(state.config, current.content))
    history = state.store.versions.history("mapping") if tab == "history" else []
    return render_template(
        "console/mappings.html",
        tab=tab,
        current=current,
        short=short(current.hash),
        problems=candidate.problems,
        models=display.models(candidate.mapping) if candidate.ok else [],
        versions=display.newest_first(history),
        stored=any(v.hash == current.hash for v in history),
        max_bytes=MAX_BYTES,
        admin=g.user.role == "admin",
        shared=console().sharing_mapping(state),
        connection=state.name,
    )


@bp.get("/mappings/edit")
def edit():
    """The form for one field (`?model=&field=`), its CRM field picked from the CRM's schema."""
    state = connection_state()
    current = _installed()
    candidate = _memo(("check", current.hash), lambda: check(state.config, current.content))
    if not candidate.ok:
        abort(409, "the installed mapping file has problems: fix it under Edit as YAML")
    kind, name = request.args.get("model", ""), request.args.get("field", "")
    om = candidate.mapping.models.get(kind)
    if om is None or name not in FIELD_TYPES.get(kind, {}):
        abort(404, f"the mapping has no model {kind!r} with a field {name!r}")
    fields, error = (), None
    try:
        fields = crm_fields(om.object)
    except ConnectorError as exc:  # the CRM is out of reach: the path box still works
        error = f"the CRM's fields could not be read ({exc}): type the field name instead"
    py_type, allowed, required = FIELD_TYPES[kind][name]
    return render_template(
        "console/mapping_edit.html",
        kind=kind,
        name=name,
        om=om,
        spec=om.fields.get(name),
        fields=fields,
        known={f.name for f in fields},
        error=error,
        canonical=(display.TYPE_WORDS.get(py_type.__name__, py_type.__name__), allowed, required),
        types=display.TYPES,
        directions=display.DIRECTIONS,
        base=current.hash,
        admin=g.user.role == "admin",
    )


@bp.get("/mappings/versions/<ref>")
def version(ref: str):
    """A stored version against the file as it is now (`renewals mappings diff VERSION`)."""
    state = connection_state()
    try:
        found = resolve(state.store, "mapping", ref)
        now = _installed().hash
        diff = _memo(
            ("diff", found.hash, now),
            lambda: diff_versions(state.store, state.config, found.hash, None),
        )
    except UnknownVersionError as exc:
        abort(404, str(exc))
    except OSError as exc:
        abort(409, f"the mapping file cannot be read: {exc.strerror}")
    return render_template(
        "console/mapping_version.html",
        version=found,
        diff=diff,
        lines=display.diff_lines(diff.diff),
        describe=describe,
        current=diff.after_hash,
        admin=g.user.role == "admin",
    )


def _memo(key: tuple, make: Callable[[], T]) -> T:
    """What a mapping text gives (its check, a diff) is the same until the text changes: kept
    per process and connection by the texts' hashes, so a page view parses no YAML."""
    memo = connection_state().memo.setdefault("mapping", {})
    if key not in memo:
        if len(memo) >= MEMO_SIZE:
            memo.clear()
        memo[key] = make()
    return memo[key]


def _installed():
    try:
        return installed(connection_state().config)
    except OSError as exc:
        abort(409, f"the mapping file cannot be read: {exc.strerror}; restore it from the history")


@bp.errorhandler(404)
@bp.errorhandler(409)
def _refused(exc):
    return render_template("console/error.html", message=exc.description), exc.code
