"""Settings (/admin/settings): the effective app.yaml (what `renewals config show` prints:
secrets only as set or unset, a database password masked), the `doctor` checks of the CRM
connection (cached by the console state; "Check again" posts to /admin/doctor), the console's
own settings and its users."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, render_template

from crm_renewals.connector.services.settings import config_files, effective_yaml, secrets_set
from crm_renewals.console.state import console, current

bp = Blueprint("settings", __name__)


@bp.get("/settings")
def index():
    state = current()
    return render_template(
        "console/settings.html",
        verdict=state.doctor(),
        crm=state.config.crm,
        files=config_files(state.config),
        secrets=secrets_set(state.config, state.env),
        settings=state.config.console,
        users=console().store.users.list(),  # the deployment's users
        config_yaml=effective_yaml(state.config),
        when=when,
    )


def when(moment: datetime | float | None) -> str:
    """A time in UTC to the second (an epoch in seconds, or an aware datetime); "never"."""
    if moment is None:
        return "never"
    if isinstance(moment, int | float):
        moment = datetime.fromtimestamp(moment, UTC)
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
