"""Renewal reporting and lifecycle segments: worked examples with hand-computed values."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from crm_renewals.connector.domain.book import Book
from crm_renewals.connector.domain.health import score_account
from crm_renewals.connector.domain.models import (
    Account,
    Contract,
    ContractLine,
    Owner,
    RenewalOpportunity,
)
from crm_renewals.connector.domain.policy import RenewalPolicy, Segments
from crm_renewals.connector.domain.report_tables import Report, report_csv
from crm_renewals.connector.domain.reports import (
    UNASSIGNED,
    Outcome,
    by_owner,
    coming_due,
    loss_reasons,
    migration,
    outcomes,
    retention_by_period,
)
from crm_renewals.connector.domain.segments import classify, period_start, periods, segment_periods
from tests.unit.test_health import CARD

D = Decimal


def book() -> Book:
    """Four contracts ending in 2026-Q1 (A renewed up, B renewed down, C lost, D undecided)
    and one ending in 2026-Q2 (E renewed flat)."""
    b = Book()
    b.put("account", "a1", Account(id="a1", name="Acme"))
    spec = [  # id, end, value, renewal stage, renewal amount, loss reason
        ("A", date(2026, 1, 31), "1000", "Closed Won", "1100", None),
        ("B", date(2026, 2, 28), "2000", "Closed Won", "1800", None),
        ("C", date(2026, 3, 15), "1000", "Closed Lost", "0", "Budget cut"),
        ("D", date(2026, 3, 31), "500", "Prospecting", "500", None),
        ("E", date(2026, 5, 10), "800", "Closed Won", "800", None),
    ]
    for cid, end, value, stage, amount, reason in spec:
        b.put(
            "contract",
            cid,
            Contract(
                id=cid,
                account_id="a1",
                status="active",
                start_date=end - timedelta(days=1095),
                end_date=end,
            ),
        )
        b.put(
            "contract_line",
            f"{cid}1",
            ContractLine(
                id=f"{cid}1", contract_id=cid, product_code="X", quantity=D(1), unit_price=D(value)
            ),
        )
        b.put(
            "renewal_opportunity",
            f"o{cid}",
            RenewalOpportunity(
                key=f"{cid}:{end}",
                contract_id=cid,
                account_id="a1",
                name=cid,
                stage=stage,
                close_date=end,
                owner_id="u1",
                amount=D(amount),
                loss_reason=reason,
            ),
        )
    return b


def test_retention_worked_example_by_quarter():
    items = outcomes(book(), RenewalPolicy())
    rows, total = retention_by_period(items, date(2026, 1, 1), date(2026, 6, 30), "quarter")
    q1, q2 = rows
    assert (q1.period, q1.due, q1.renewed, q1.lost, q1.open) == ("2026-Q1", 4, 2, 1, 1)
    assert (q1.open_value, q1.decided_value) == (D(500), D(4000))
    # rates are over decided renewals (A, B renewed; C lost): D is still open, not churned
    assert q1.renewal_rate == D("0.6667") and q1.churn_rate == D("0.3333")
    # by value: renewed 1000 + 2000 of 4000 decided
    assert q1.renewal_rate_value == D("0.7500") and q1.churn_rate_value == D("0.2500")
    # GRR: (min(1100, 1000) + min(1800, 2000)) / 4000 = 2800 / 4000; NRR: 2900 / 4000
    assert q1.gross_revenue_retention == D("0.7000")
    assert q1.net_revenue_retention == D("0.7250")
    assert q1.average_renewal_value == D("1450.00")
    assert (q2.period, q2.due, q2.renewal_rate, q2.net_revenue_retention) == ("2026-Q2", 1, 1, 1)
    # total: 3 of 4 decided renewed; value 3800 of 4800 decided; NRR 3700 / 4800
    assert (total.due, total.renewed, total.open, total.renewal_rate) == (5, 3, 1, D("0.7500"))
    assert total.renewal_rate_value == D("0.7917")
    assert total.net_revenue_retention == D("0.7708")


def test_open_renewals_are_neither_renewed_nor_churned():
    """7 of 37 lost and 10 still open: churn is 7 of 27 decided, not 17 of 37."""
    items = [
        Outcome(f"c{i}", "a1", date(2026, 2, 1), D(100), status)
        for i, status in enumerate(["renewed"] * 20 + ["lost"] * 7 + ["open"] * 10)
    ]
    _, total = retention_by_period(items, date(2026, 1, 1), date(2026, 3, 31), "quarter")
    assert (total.due, total.renewed, total.lost, total.open) == (37, 20, 7, 10)
    assert total.churn_rate == D("0.2593") and total.renewal_rate == D("0.7407")
    assert total.churn_rate_value == D("0.2593")


def test_a_period_with_only_open_renewals_has_no_rates():
    items = [Outcome("c1", "a1", date(2026, 2, 1), D(100), "open")]
    _, total = retention_by_period(items, date(2026, 1, 1), date(2026, 3, 31), "quarter")
    assert (total.due, total.open, total.renewal_rate, total.churn_rate) == (1, 1, None, None)
    assert total.gross_revenue_retention is None


def test_monthly_periods_and_reasons_for_non_renewal():
    items = outcomes(book(), RenewalPolicy())
    rows, _ = retention_by_period(items, date(2026, 1, 1), date(2026, 3, 31), "month")
    assert [(r.period, r.due, r.renewed) for r in rows] == [
        ("2026-01", 1, 1),
        ("2026-02", 1, 1),
        ("2026-03", 2, 0),
    ]
    assert loss_reasons(items, date(2026, 1, 1), date(2026, 12, 31)) == {"Budget cut": 1}
    rows, _ = retention_by_period(items, date(2025, 1, 1), date(2026, 12, 31), "year")
    assert [(r.period, r.due) for r in rows] == [("2025", 0), ("2026", 5)]


def test_coming_due_by_month_with_health_mix():
    items = [
        Outcome("k1", "a1", date(2026, 12, 5), D(100), "open"),
        Outcome("k2", "a2", date(2026, 12, 20), D(200), "open"),
        Outcome("k3", "a3", date(2027, 1, 5), D(300), "open"),
        Outcome("k4", "a3", date(2027, 1, 6), D(300), "renewed", D(300)),  # decided: not due
        Outcome("k5", "a1", date(2026, 11, 1), D(50), "open"),  # already past
    ]
    due = coming_due(items, {"a1": "green", "a2": "red"}, date(2026, 11, 23), months=3)
    assert [(d.month, d.contracts, d.value) for d in due] == [
        ("2026-11", 0, 0),
        ("2026-12", 2, 300),
        ("2027-01", 1, 300),
    ]
    assert due[1].health == {"green": 1, "yellow": 0, "red": 1, "unknown": 0}
    assert due[2].health["unknown"] == 1


def test_segment_migration_matrix():
    before = {"a1": "loyalist", "a2": "loyalist", "a3": "one_time_buyer", "a4": "inactive"}
    after = {"a1": "loyalist", "a2": "under_performer", "a3": "loyalist", "a5": "loyalist"}
    assert migration(before, after) == {
        "loyalist": {"loyalist": 1, "under_performer": 1},
        "one_time_buyer": {"loyalist": 1},
    }


def owners_book() -> Book:
    """Uma won A and lost B; C has no renewal yet and its account's owner Vic has left (his
    manager Wen gets it, as planning would); D's account has no owner; E ends after the window."""
    b = Book()
    b.put("owner", "u1", Owner(id="u1", name="Uma Reyes"))
    b.put("owner", "u2", Owner(id="u2", name="Vic Olsen", active=False, manager_id="u3"))
    b.put("owner", "u3", Owner(id="u3", name="Wen Li"))
    b.put("account", "a1", Account(id="a1", name="Acme", owner_id="u2"))
    b.put("account", "a2", Account(id="a2", name="Globex"))
    spec = [  # id, account, end, value, renewal (stage, amount) or None
        ("A", "a1", date(2026, 2, 1), "1000", ("Closed Won", "1100")),
        ("B", "a1", date(2026, 3, 1), "500", ("Closed Lost", "0")),
        ("C", "a1", date(2026, 3, 10), "300", None),
        ("D", "a2", date(2026, 3, 20), "200", None),
        ("E", "a1", date(2026, 9, 1), "900", ("Closed Won", "900")),
    ]
    for cid, account, end, value, renewal in spec:
        b.put("contract", cid, Contract(id=cid, account_id=account, status="active", end_date=end))
        line = ContractLine(
            id=f"{cid}1", contract_id=cid, product_code="X", quantity=D(1), unit_price=D(value)
        )
        b.put("contract_line", f"{cid}1", line)
        if renewal:
            stage, amount = renewal
            b.put(
                "renewal_opportunity",
                f"o{cid}",
                RenewalOpportunity(
                    key=f"{cid}:{end}",
                    contract_id=cid,
                    account_id=account,
                    name=cid,
                    stage=stage,
                    close_date=end,
                    owner_id="u1",
                    amount=D(amount),
                ),
            )
    return b


def test_figures_by_owner_name_the_rep_of_each_renewal_most_value_first():
    b = owners_book()
    rows = by_owner(outcomes(b, RenewalPolicy()), b.owners, date(2026, 1, 1), date(2026, 3, 31))
    assert [(r.owner, r.due, r.renewed, r.lost, r.open) for r in rows] == [
        ("Uma Reyes", 2, 1, 1, 0),
        ("Wen Li", 1, 0, 0, 1),
        (UNASSIGNED, 1, 0, 0, 1),
    ]
    uma, wen, nobody = rows
    assert (uma.owner_id, uma.value, uma.renewal_amount, uma.renewal_rate) == (
        "u1",
        D(1500),
        D(1100),
        D("0.5000"),
    )
    assert (wen.owner_id, wen.value, wen.renewal_rate) == ("u3", D(300), None)
    assert (nobody.owner_id, nobody.value) == (None, D(200))


def test_by_owner_is_in_the_reports_json_and_its_csv_table():
    b = owners_book()
    items = outcomes(b, RenewalPolicy())
    start, end = date(2026, 1, 1), date(2026, 3, 31)
    rows, total = retention_by_period(items, start, end, "quarter")
    report = Report(end, start, end, "quarter", rows, total, [], {}, None, None)
    report.by_owner = by_owner(items, b.owners, start, end)
    assert report.to_json()["by_owner"][0] == {
        "owner_id": "u1",
        "owner": "Uma Reyes",
        "due": 2,
        "renewed": 1,
        "lost": 1,
        "open": 0,
        "value": 1500.0,
        "renewal_amount": 1100.0,
        "renewal_rate": 0.5,
    }
    lines = report_csv(report, "by_owner").splitlines()
    assert lines[0] == "section,key,metric,value"
    assert "by_owner,Uma Reyes,renewed,1" in lines and "by_owner,Wen Li,renewal_rate," in lines
    assert {line.split(",")[0] for line in lines[1:]} == {"by_owner"}
    assert report_csv(report).endswith(report_csv(report, "by_owner").split("\n", 1)[1])


def test_segments_by_rules_over_30_day_periods_with_18_periods_of_history():
    segs = Segments()
    assert period_start(date(2024, 1, 30), segs) == date(2024, 1, 1)
    assert period_start(date(2024, 1, 31), segs) == date(2024, 1, 31)
    starts = periods(date(2026, 6, 30), segs)
    assert len(starts) == 18 and starts[-1] <= date(2026, 6, 30) < starts[-1] + timedelta(days=30)
    assert classify(segs.rules, {"active": False, "terms": 4}) == "inactive"
    assert (
        classify(segs.rules, {"active": True, "terms": 1, "health_score": 30}) == "under_performer"
    )
    assert classify(segs.rules, {"active": True, "terms": 2, "gap_days": 45}) == "seasonal"
    assert classify(segs.rules, {"active": True, "terms": 3, "gap_days": 0}) == "loyalist"
    assert classify(segs.rules, {"active": True, "terms": 2, "gap_days": 0}) == "two_time_buyer"
    assert classify(segs.rules, {"active": True, "terms": 1, "gap_days": 0}) == "one_time_buyer"

    b = book()  # a1: five three-year terms, overlapping
    health = {"a1": score_account(CARD, "a1", {"seat_utilisation": 0.2, "late_payments": 3})}
    as_of = date(2026, 3, 20)
    starts = periods(as_of, segs)
    rows = flat(segment_periods(b, segs, RenewalPolicy(), as_of, health))
    by_period = {r["period_start"]: r for r in rows}
    assert sorted(by_period) == [s.isoformat() for s in starts]
    current = by_period[starts[-1].isoformat()]
    # by 2026-03-20 A and B were renewed, C was lost, D still runs: health 12 decides
    assert current["facts"] == {
        "active": True,
        "terms": 5,
        "renewals_won": 2,
        "renewals_lost": 1,
        "gap_days": 0,
        "health_score": 12,
        "days_since_last_activity": None,
    }
    assert current["segment"] == "under_performer"
    earliest = by_period[starts[0].isoformat()]  # no health for past periods
    assert earliest["facts"]["health_score"] is None and earliest["segment"] == "loyalist"
    after = flat(segment_periods(b, segs, RenewalPolicy(), date(2026, 6, 30), {}))
    assert after[-1]["segment"] == "inactive"  # every term has ended


def flat(periods_rows) -> list[dict]:
    return [row for rows in periods_rows for row in rows]
