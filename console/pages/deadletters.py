"""Dead letters (/admin/deadletters): records that failed to map and writes the CRM refused,
filtered by kind, error code and field, each inspectable; admins retry them (the same run as
`renewals deadletters retry [--id N]`, started in the background) or discard them with a
reason (`renewals deadletters discard`). Both are audited."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for

from crm_renewals.connector.services.deadletters import (
    DeadLetterError,
    contract_labels,
    discard,
    find_letters,
    letter,
    open_letters,
)
from crm_renewals.connector.services.launch import RunBusy, launch
from crm_renewals.console import params
from crm_renewals.console.auth import actor
from crm_renewals.console.state import current

bp = Blueprint("deadletters", __name__)
bp.register_error_handler(params.BadParam, params.bad_param)
#: the query parameters that filter, and the letter's column each filters
FILTERS = {"kind": "kind", "code": "error_code", "field": "field"}


@bp.errorhandler(DeadLetterError)
def _refused(exc: DeadLetterError):
    return render_template("console/error.html", message=str(exc)), 400


@bp.get("/deadletters")
def index():
    everything = request.args.get("all") == "1"
    chosen = {name: params.text(request.args, name, 80) for name in FILTERS}
    found = find_letters(
        current().store,
        include_resolved=everything,
        filters={FILTERS[name]: value for name, value in chosen.items()},
        page=params.page_number(request.args),
    )
    args = {k: v for k, v in chosen.items() if v} | ({"all": "1"} if everything else {})
    return render_template(
        "console/deadletters.html", found=found, chosen=chosen, everything=everything, args=args
    )


@bp.get("/deadletters/<int:letter_id>")
def show(letter_id: int):
    store = current().store
    found = letter(store, letter_id)
    if found is None:
        message = f"There is no dead letter {letter_id}."
        return render_template("console/error.html", message=message), 404
    labels = contract_labels(store, [found])
    return render_template("console/deadletter.html", d=found, label=labels.get(found.contract_id))


@bp.post("/deadletters/retry")
def retry():
    state = current()
    everything = request.form.get("all") == "1"
    ids = [] if everything else params.ids(request.form.getlist("ids"))
    if not everything:
        open_letters(state.store, ids)  # each named must be open: else a 400 saying which
    extra = [arg for i in ids for arg in ("--id", str(i))]
    try:
        started = launch(state.config, state.store, "retry", actor(), extra)
    except RunBusy:
        flash("A run is in progress: retry once it has finished.", "error")
        return redirect(url_for(".index"))
    which = "every dead letter" if everything else f"dead letter(s) {', '.join(map(str, ids))}"
    flash(f"Retry of {which} started (process {started.pid}): see Runs for its outcome.", "success")
    return redirect(url_for(".index"))


@bp.post("/deadletters/discard")
def discard_letters():
    ids = params.ids(request.form.getlist("ids"))
    state = current()
    reason = request.form.get("reason", "")
    letters = discard(state.store, ids, reason, actor(), state.name)
    flash(f"Discarded {len(letters)} dead letter(s): {', '.join(str(d.id) for d in letters)}.")
    return redirect(url_for(".index"))
