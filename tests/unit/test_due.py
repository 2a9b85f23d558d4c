"""The planning index's promise (connector/domain/planning/due.py): before a contract's next
due day, planning it again with nothing changed writes nothing new."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from crm_renewals.connector.config import load_config
from crm_renewals.connector.domain.health import Health, Previous
from crm_renewals.connector.domain.models import Contact
from crm_renewals.connector.domain.planning.due import _next_quarter, health_due, next_due
from crm_renewals.connector.domain.planning.planner import Planner
from crm_renewals.connector.domain.planning.values import RenewalPlan
from crm_renewals.connector.domain.writes import jsonable
from tests.unit.test_planning import AS_OF, Ledger, contract, line, make_book

CONFIG = load_config(Path(__file__).resolve().parents[2] / "app.yaml")
DAYS = 160


def planner(day: date) -> Planner:
    c = CONFIG
    return Planner(c.renewals, c.playbook, day, scorecard=c.scorecard, upsell=c.upsell)


def written(book, ledger: Ledger, plan) -> None:
    """What the CRM and the ledger hold once the plan's writes succeeded."""
    for w in plan.writes:
        base = ledger.rows.get((w.kind, w.key), {})
        ledger.rows[(w.kind, w.key)] = {**base, **{k: jsonable(v) for k, v in w.fields.items()}}
    if isinstance(plan.renewal, RenewalPlan) and plan.renewal.writes:
        book.put("renewal_opportunity", plan.renewal.opportunity.key, plan.renewal.opportunity)
        for rl in plan.renewal.lines:
            book.put("renewal_line", rl.key, rl)


@settings(max_examples=40, deadline=None)
@given(
    end=st.integers(min_value=-20, max_value=420),
    named=st.booleans(),
    years=st.integers(min_value=1, max_value=3),
)
def test_nothing_new_is_written_before_the_due_day(end, named, years):
    k = contract(end=AS_OF + timedelta(days=end))
    k = replace(k, start_date=k.end_date - timedelta(days=365 * years))
    book = make_book([k], [line()])
    if not named:
        book.put("contact", "c1", Contact(id="c1", account_id="a1", name="Ann"))
    ledger, due, seen = Ledger(), None, 0
    for offset in range(DAYS):
        day = AS_OF + timedelta(days=offset)
        p = planner(day)
        plan = p.plan(book, ledger, "k1")
        if due is not None and day < due:
            assert plan.writes == (), f"{day}: {plan.writes} before the due day {due}"
            continue
        seen += bool(plan.writes)
        written(book, ledger, plan)
        due = next_due(p, book, plan)
        if due is None:
            break
        assert due > day


def test_the_next_quarter_starts_on_its_first_day():
    assert _next_quarter(date(2026, 3, 31)) == date(2026, 4, 1)
    assert _next_quarter(date(2026, 11, 23)) == date(2027, 1, 1)
    assert _next_quarter(date(2026, 1, 1)) == date(2026, 4, 1)


def health(trend: str, values: dict | None = None, grade="green", before="green") -> Health:
    previous = Previous(80, before)
    return Health("a1", 80, grade, 3, False, trend, (), values or {"nps": 30.0}, previous)


def test_health_is_due_while_it_moves_with_the_day():
    scorecard, tomorrow = CONFIG.scorecard, AS_OF + timedelta(days=1)
    assert health_due(scorecard, None, AS_OF) is None
    assert health_due(scorecard, health("flat"), AS_OF) is None
    assert health_due(scorecard, health("new"), AS_OF) == tomorrow
    assert health_due(scorecard, health("down 3"), AS_OF) == tomorrow
    days_since = health("flat", {"days_since_last_activity": 4.0})
    assert health_due(scorecard, days_since, AS_OF) == tomorrow
    turned_red = health("flat", grade="red", before="green")
    assert health_due(scorecard, turned_red, AS_OF) == tomorrow
