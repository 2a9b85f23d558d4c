"""Reports (/admin/reports): what `renewals report` gives (the same service, the same options
checked the same way), with charts, and each table as CSV (the same rows as
`renewals report --csv`)."""

from __future__ import annotations

from decimal import Decimal

from flask import Blueprint, Response, render_template, request

from crm_renewals.connector.domain.report_tables import SECTIONS, report_csv
from crm_renewals.connector.services.report import (
    PERIODS,
    ReportOptionsError,
    report_options,
)
from crm_renewals.connector.services.sync import today
from crm_renewals.console.report_charts import report_charts
from crm_renewals.console.state import current

bp = Blueprint("reports", __name__)
#: the CSV of every table at once (`renewals report --csv`)
ALL = "report"


@bp.get("/reports")
def index():
    try:
        report = _report()
    except ReportOptionsError as exc:
        page = render_template("console/reports.html", error=str(exc), **_form())
        return page, 400
    return render_template(
        "console/reports.html",
        report=report,
        charts=report_charts(report),
        pct=pct,
        money=money,
        **_form(),
    )


@bp.get("/reports/<table>.csv")
def table_csv(table: str):
    if table != ALL and table not in SECTIONS:
        known = ", ".join([ALL, *SECTIONS])
        return _plain(f"No table {table!r}: the tables are {known}.", 404)
    try:
        report = _report()
    except ReportOptionsError as exc:
        return _plain(str(exc), 400)
    name = f"renewals-{table}-{report.start}-{report.end}.csv"
    return Response(
        report_csv(report, None if table == ALL else table),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _report():
    """The report the query string asks for (ReportOptionsError: it cannot be built)."""
    args = request.args
    options = report_options(
        args.get("period"), args.get("from"), args.get("to"), args.get("as_of")
    )
    state = current()
    return state.reports.get(state.store, state.config, options, today())


def _form() -> dict:
    """The query as given (to show it back in the form) and what the form offers."""
    args = request.args
    given = {k: args.get(k, "") for k in ("period", "from", "to", "as_of")}
    query = {k: v for k, v in given.items() if v}
    return {"given": given, "query": query, "periods": PERIODS, "tables": [ALL, *SECTIONS]}


def _plain(message: str, status: int) -> Response:
    return Response(message + "\n", status=status, mimetype="text/plain")


def pct(value: Decimal | float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def money(value: Decimal | float | None) -> str:
    return "–" if value is None else f"{value:,.2f}"
