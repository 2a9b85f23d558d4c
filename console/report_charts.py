"""The report page's charts, drawn from the report `renewals report` prints (console.charts
draws; this picks the figures and words)."""

from __future__ import annotations

from decimal import Decimal

from markupsafe import Markup

from crm_renewals.connector.domain.report_tables import Report
from crm_renewals.connector.domain.reports import GRADES
from crm_renewals.console.charts import (
    GRADE_COLOURS,
    Series,
    grouped_bars,
    heat_map,
    horizontal_bars,
    lines,
    stacked_bars,
)

GRADE_NAMES = {"green": "green", "yellow": "yellow", "red": "red", "unknown": "no grade"}
RENEWED, CHURNED = "#1f8a4c", "#c0392b"
GRR, NRR = "#2455c3", "#7a4bc0"
LOST = "#c0392b"
OVERDUE, DUE_TODAY = "#e0a526", "#9aa5b1"


def _pct(value: Decimal | None) -> float | None:
    return None if value is None else float(value * 100)


def _migration_title(report: Report) -> str:
    if report.migration_from and report.migration_to:
        span = f"{report.migration_from} → {report.migration_to}"
        return f"Segment migration {span} (accounts)"
    return "Segment migration (accounts)"


def report_charts(report: Report) -> dict[str, Markup]:
    """Chart id -> its SVG: renewals coming due by month and health grade, renewal rate and
    churn by period, gross and net revenue retention by period, reasons for non-renewal,
    segment migration and the journey's touchpoints by segment."""
    due = report.coming_due
    periods = [r.period for r in report.periods]
    by = report.period
    return {
        "chart-coming-due": stacked_bars(
            "chart-coming-due",
            "Renewals coming due by month, by account health (open contracts)",
            [d.month for d in due],
            [Series(GRADE_NAMES[g], GRADE_COLOURS[g], [d.health[g] for d in due]) for g in GRADES],
        ),
        "chart-rates": grouped_bars(
            "chart-rates",
            f"Renewal rate and churn by {by} (of renewals decided)",
            periods,
            [
                Series("renewal rate", RENEWED, [_pct(r.renewal_rate) for r in report.periods]),
                Series("churn", CHURNED, [_pct(r.churn_rate) for r in report.periods]),
            ],
        ),
        "chart-retention": lines(
            "chart-retention",
            f"Gross and net revenue retention by {by}",
            periods,
            [
                Series(
                    "gross (GRR)", GRR, [_pct(r.gross_revenue_retention) for r in report.periods]
                ),
                Series("net (NRR)", NRR, [_pct(r.net_revenue_retention) for r in report.periods]),
            ],
        ),
        "chart-reasons": horizontal_bars(
            "chart-reasons",
            "Reasons for non-renewal (lost renewals)",
            list(report.loss_reasons.items()),
            LOST,
            "lost renewals",
        ),
        "chart-migration": heat_map(
            "chart-migration",
            _migration_title(report),
            report.migration,
            "from ↓  to →",
        ),
        "chart-journey": _journey(report),
    }


def _journey(report: Report) -> Markup:
    rows = report.journey.segments if report.journey else []
    return stacked_bars(
        "chart-journey",
        "Journey touchpoints due by segment: completed, overdue, due today",
        [str(r.segment) for r in rows],
        [
            Series("completed", RENEWED, [r.completed for r in rows]),
            Series("overdue", OVERDUE, [r.overdue for r in rows]),
            Series("due today", DUE_TODAY, [r.open for r in rows]),
        ],
    )
