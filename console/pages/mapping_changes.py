"""The mapping page's forms (admins only): a candidate (one field edited, the whole YAML, or
a stored version to revert to) is validated as `renewals config check` does, previewed as
`renewals mappings preview` does, and saved when it is valid and the file is still the one
the form was made from (`base`, its sha256; else 409). See connector.services.mapping_edits."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from functools import partial

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from werkzeug.exceptions import RequestEntityTooLarge

from crm_renewals.connector import bootstrap
from crm_renewals.connector.domain.mapping import FIELD_TYPES
from crm_renewals.connector.domain.mapping_changes import describe
from crm_renewals.connector.errors import ConfigError, ConnectorError
from crm_renewals.connector.mapping_text import MappingTextError, set_field
from crm_renewals.connector.services.context import UsedFile
from crm_renewals.connector.services.mapping_edits import (
    MAX_BYTES,
    Candidate,
    CandidateTooLargeError,
    StaleBaseError,
    check,
    installed,
    save,
    version_text,
    with_line_ends,
)
from crm_renewals.connector.services.preview import preview, schema_problems, summary, worse
from crm_renewals.connector.services.sync import today
from crm_renewals.connector.services.versions import UnknownVersionError, compare
from crm_renewals.connector.state.versions import short
from crm_renewals.console import mapping_display as display
from crm_renewals.console import params
from crm_renewals.console.auth import actor
from crm_renewals.console.state import console
from crm_renewals.console.state import current as connection_state

bp = Blueprint("mapping_changes", __name__)
bp.register_error_handler(params.BadParam, params.bad_param)
_HEX = re.compile(r"[0-9a-f]{1,64}")
#: what a candidate is, as a later form carries it on
_WHAT = re.compile(r"field [a-z_]+\.[a-z_]+|the edited YAML|version [0-9a-f]{1,64}")


@dataclass(frozen=True)
class Made:
    """A candidate as the form made it, and the file it was made from."""

    text: str
    base: str  # sha256 of the file when the form was rendered
    current: UsedFile  # the file as it is now
    what: str  # "field account.segment", "the edited YAML", "version 1a2b3c4d"
    revert_of: str | None = None

    @property
    def stale(self) -> bool:
        return self.base != self.current.hash


@bp.post("/mappings/validate")
def validate():
    made = _made()
    checked = _checked(made)
    if not checked.ok:
        return _problems(made, checked)
    return _page(made, data=None)


@bp.post("/mappings/preview")
def preview_candidate():
    made = _made()
    checked = _checked(made)
    if not checked.ok:
        return _problems(made, checked)
    state, as_of = connection_state(), _as_of()
    try:
        with state.context() as ctx:
            result = preview(ctx, checked.mapping, as_of)
    except ConnectorError as exc:  # the installed mapping or the CRM cannot be used
        message = f"The preview could not run ({type(exc).__name__}: {exc}); nothing was written."
        return render_template("console/error.html", message=message), 503
    schema, schema_error = [], None
    try:
        schema = schema_problems(partial(bootstrap.build_crm, state.config), checked.mapping)
    except ConnectorError as exc:  # the CRM is out of reach: the dry run still stands
        schema_error = f"{type(exc).__name__}: {exc}"
    data = summary(result, made.current.path, made.what, schema)
    return _page(made, data=data, schema_error=schema_error, worse=worse(data))


@bp.post("/mappings/save")
def save_candidate():
    made = _made()
    state = connection_state()
    try:
        saved = save(state.store, state.config, made.text, made.base, actor(), made.revert_of)
    except CandidateTooLargeError as exc:
        abort(413, str(exc))
    except ConfigError as exc:
        return _problems(made, Candidate(made.text, None, exc.problems))
    except StaleBaseError as exc:
        abort(409, f"Not saved: {exc}.")
    except OSError as exc:
        message = f"Not saved: cannot write {made.current.path} ({exc.strerror or exc})."
        return render_template("console/error.html", message=message), 500
    if saved.changed:
        flash(f"saved: version {short(saved.after)}; the next sync uses it", "success")
    else:
        flash(f"nothing to save: version {short(saved.after)} is installed already", "info")
    return redirect(url_for("admin.mappings.index"))


def _made() -> Made:
    """The candidate the form carries: `text` (the YAML, or a previewed candidate), `version`
    (revert), or `model` and `field` with the field form's options."""
    form = request.form
    current = _installed()
    base = (form.get("base") or "").strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", base):
        abort(400, "the form lacks the version it was made from (base): reload the page")
    revert_of = _ref(form.get("revert_of"))
    if "text" in form:
        what = form.get("what", "")
        if not _WHAT.fullmatch(what):
            what = f"version {revert_of}" if revert_of else "the edited YAML"
        return Made(with_line_ends(form["text"], current.content), base, current, what, revert_of)
    if form.get("version"):
        try:
            found, text = version_text(connection_state().store, form["version"])
        except UnknownVersionError as exc:
            abort(404, str(exc))
        return Made(text, base, current, f"version {found.short}", found.short)
    kind, name = form.get("model", ""), form.get("field", "")
    if name not in FIELD_TYPES.get(kind, {}):
        abort(404, f"no canonical field {kind!r}.{name!r}")
    try:
        text = set_field(current.content, kind, name, display.spec_from_form(form))
    except (display.BadForm, MappingTextError) as exc:
        abort(400, str(exc))
    return Made(text, base, current, f"field {kind}.{name}")


def _checked(made: Made) -> Candidate:
    try:
        return check(connection_state().config, made.text)
    except CandidateTooLargeError as exc:
        abort(413, str(exc))


def _problems(made: Made, checked: Candidate):
    """The candidate's problems with their lines; the YAML to fix them in. Nothing saved."""
    return _page(made, data=None, problems=checked.problems), 400


def _page(made: Made, data, **extra):
    diff, changes = compare(made.current.content, made.text, made.current.path, made.what)
    return render_template(
        "console/mapping_preview.html",
        made=made,
        data=data,
        lines=display.diff_lines(diff),
        changes=changes,
        describe=describe,
        problems=extra.pop("problems", []),
        as_of=request.form.get("as_of", ""),
        shared=console().sharing_mapping(connection_state()),
        connection=connection_state().name,
        **extra,
    )


def _as_of() -> date:
    return params.day(request.form) or today()


def _ref(raw: str | None) -> str | None:
    ref = (raw or "").strip().lower()
    return ref if _HEX.fullmatch(ref) else None


def _installed() -> UsedFile:
    try:
        return installed(connection_state().config)
    except OSError as exc:
        abort(409, f"the mapping file cannot be read: {exc.strerror}")


@bp.errorhandler(400)
@bp.errorhandler(404)
@bp.errorhandler(409)
def _refused(exc):
    return render_template("console/error.html", message=exc.description), exc.code


@bp.errorhandler(RequestEntityTooLarge)
def _too_large(_exc):
    """A form past the request limits, or a candidate past MAX_BYTES: refused unread."""
    message = (
        f"Refused: the candidate is too large (a mapping file is at most {MAX_BYTES:,} bytes)."
    )
    return render_template("console/error.html", message=message), 413
