"""Runs: the history (/admin/runs, paged and filtered), one run in words (/admin/runs/<id>),
starting a sync or a dry run (POST /admin/runs/start: the `renewals` command itself, through
the run lock) and the live panel the overview polls while a run goes (/admin/runs/live)."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for

from crm_renewals.connector.errors import ConnectorError
from crm_renewals.connector.services.launch import RunBusy, launch
from crm_renewals.connector.services.live import live
from crm_renewals.connector.services.run_detail import MODES, STATUSES, run_detail
from crm_renewals.console import params
from crm_renewals.console.auth import actor
from crm_renewals.console.state import current

bp = Blueprint("runs", __name__)
PAGE_SIZE = 50
#: what the overview's buttons may start, and what they say
STARTS = {"sync": "Sync", "dry_run": "Dry run"}


class BadQuery(ValueError):
    """A query string value the page cannot use."""


@bp.get("/runs")
def index():
    try:
        page = _page(request.args.get("page"))
        mode = _choice("mode", MODES)
        status = _choice("status", STATUSES)
    except BadQuery as exc:
        return render_template("console/error.html", message=str(exc)), 400
    store = current().store
    total = store.runs.count(mode, status)
    rows = store.runs.list(PAGE_SIZE, (page - 1) * PAGE_SIZE, mode, status)
    return render_template(
        "console/runs/list.html",
        rows=rows,
        total=total,
        page=page,
        pages=max(1, -(-total // PAGE_SIZE)),
        mode=mode,
        status=status,
        modes=MODES,
        statuses=STATUSES,
    )


@bp.get("/runs/<run_id>")
def detail(run_id: str):
    found = run_detail(current().store, int(run_id)) if _is_id(run_id) else None
    if found is None:
        return render_template("console/runs/missing.html", run_id=run_id), 404
    return render_template("console/runs/detail.html", d=found, r=found.run)


@bp.get("/runs/live")
def live_panel():
    """The live panel (htmx swaps it in place; it polls again only while a run goes)."""
    state = current()
    return render_template("console/runs/_live.html", live=live(state.config, state.store))


@bp.post("/runs/start")
def start():
    command = request.form.get("command", "")
    if command not in STARTS:
        message = f"Cannot start {command[:40]!r}: choose {' or '.join(STARTS)}."
        return render_template("console/error.html", message=message), 400
    state = current()
    try:
        launch(state.config, state.store, command, actor())
    except RunBusy:
        flash("A run is in progress: wait for it to finish, then start another.", "error")
    except ConnectorError as exc:
        flash(f"{STARTS[command]} could not start: {exc}", "error")
    else:
        flash(f"{STARTS[command]} started: its progress shows below.", "success")
    return redirect(url_for("admin.overview.index"))


def _page(raw: str | None) -> int:
    if raw is None or raw == "":
        return 1
    if not params.digits(raw) or not 1 <= int(raw) <= 1_000_000:
        raise BadQuery(f"page must be a whole number from 1 (not {raw[:20]!r})")
    return int(raw)


def _choice(name: str, allowed: tuple[str, ...]) -> str | None:
    raw = request.args.get(name) or None
    if raw is not None and raw not in allowed:
        raise BadQuery(f"{name} must be one of {', '.join(allowed)} (not {raw[:20]!r})")
    return raw


def _is_id(raw: str) -> bool:
    return params.digits(raw) and len(raw) <= 18
