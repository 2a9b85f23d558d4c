"""Overview (/admin/)."""

from __future__ import annotations

from flask import Blueprint, render_template

bp = Blueprint("overview", __name__)


@bp.get("/")
def index():
    return render_template("console/overview.html")
