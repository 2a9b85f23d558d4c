"""Overview (/admin/): the CRM connection (the `doctor` verdict, checked again on demand),
the last runs, API calls today, the inbox, open dead letters, the next scheduled jobs, the
health mix, and "Sync now" / "Dry run" with the live panel (console.pages.runs)."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, flash, redirect, render_template, request

from crm_renewals.connector.services.live import live
from crm_renewals.connector.services.status import status
from crm_renewals.console.auth import actor, safe_next
from crm_renewals.console.state import current
from crm_renewals.jobs.scheduler import upcoming

bp = Blueprint("overview", __name__)
#: doctor checks that report the CRM's own API limits and use (Salesforce, HubSpot)
LIMIT_CHECKS = ("daily API requests", "rate limits")


@bp.get("/")
def index():
    state = current()
    verdict = state.doctor()
    return render_template(
        "console/overview.html",
        verdict=verdict,
        limits=[c for c in verdict.checks if c.name in LIMIT_CHECKS],
        status=status(state.store),
        jobs=upcoming(state.config, state.store),
        timezone=state.config.schedule.timezone,
        live=live(state.config, state.store),
        crm=state.config.crm,
        checked_at=datetime.fromtimestamp(verdict.at, UTC).strftime("%Y-%m-%d %H:%M:%S"),
    )


@bp.post("/doctor")
def doctor():
    """Run the `doctor` checks again now."""
    state = current()
    verdict = state.doctor(refresh=True)
    failing = [c.name for c in verdict.checks if not c.ok]
    detail = {"connection": state.name, "ok": verdict.ok, "failing": failing}
    detail["error"] = verdict.error
    state.store.audit.record(actor(), "crm.doctor", state.config.crm, detail)
    if verdict.ok:
        flash(f"The {state.config.crm} CRM answers: every check passed.", "success")
    else:
        flash(f"The {state.config.crm} CRM check found problems: see below.", "error")
    return redirect(safe_next(request.form.get("next")))
