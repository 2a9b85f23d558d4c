"""Accounts' health (/admin/health): each account's latest score, grade, trend and drivers in
words, filtered by grade or name, sorted by grade, score, trend or name, paged."""

from __future__ import annotations

from flask import Blueprint, render_template, request

from crm_renewals.connector.services.health_table import GRADES, SORTS, health_table, journeys
from crm_renewals.connector.services.sync import today
from crm_renewals.console import params
from crm_renewals.console.state import current

bp = Blueprint("health", __name__)
bp.register_error_handler(params.BadParam, params.bad_param)


@bp.get("/health")
def index():
    grade = params.choice(request.args, "grade", GRADES)
    sort = params.choice(request.args, "sort", SORTS, "grade")
    query = params.text(request.args, "q")
    page = params.page_number(request.args)
    state = current()
    table = health_table(state.store, grade=grade, query=query, sort=sort, page=page)
    ids = [r.account_id for r in table.rows]
    journey = journeys(state.store, state.config.playbook, ids, today())
    args = {k: v for k, v in (("grade", grade), ("q", query), ("sort", sort)) if v}
    return render_template(
        "console/health.html",
        table=table,
        journey=journey,
        grade=grade,
        q=query,
        sort=sort,
        args=args,
    )
