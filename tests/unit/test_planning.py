"""Pure planning: decisions as values, and the properties a re-run relies on."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from crm_renewals.connector.domain.book import Book
from crm_renewals.connector.domain.models import (
    Account,
    Contact,
    Contract,
    ContractLine,
    CpqRenewal,
    Owner,
)
from crm_renewals.connector.domain.planning.planner import Planner
from crm_renewals.connector.domain.planning.terms import resolve_owner
from crm_renewals.connector.domain.planning.values import RenewalPlan, Skip
from crm_renewals.connector.domain.policy import Playbook, RenewalPolicy
from crm_renewals.connector.domain.writes import jsonable

AS_OF = date(2026, 11, 23)


class Ledger:
    def __init__(self):
        self.rows = {}

    def written(self, kind, key):
        return self.rows.get((kind, key))


def make_book(contracts: list[Contract], lines: list[ContractLine], owners=None) -> Book:
    book = Book()
    for o in owners or [Owner(id="u1", name="Sam")]:
        book.put("owner", o.id, o)
    book.put("account", "a1", Account(id="a1", name="Acme", owner_id="u1"))
    book.put("contact", "c1", Contact(id="c1", account_id="a1", name="Ann", renewal_contact=True))
    for c in contracts:
        book.put("contract", c.id, c)
    for ln in lines:
        book.put("contract_line", ln.id, ln)
    return book


def contract(cid="k1", end=AS_OF + timedelta(days=100), status="active", uplift=None):
    return Contract(
        id=cid,
        account_id="a1",
        status=status,
        end_date=end,
        start_date=end - timedelta(days=365),
        uplift_percent=uplift,
    )


def line(lid="l1", cid="k1", qty="10", price="99.99"):
    return ContractLine(
        id=lid,
        contract_id=cid,
        product_code="SEAT",
        quantity=Decimal(qty),
        unit_price=Decimal(price),
    )


def planner(as_of=AS_OF, **policy) -> Planner:
    return Planner(RenewalPolicy(**policy), Playbook(), as_of)


def apply(book: Book, ledger: Ledger, plans) -> None:
    """What a CRM plus the ledger end up holding after the writes succeed."""
    for plan in plans:
        renewal = plan.renewal
        if not isinstance(renewal, RenewalPlan):
            continue
        for w in plan.writes:
            base = ledger.rows.get((w.kind, w.key), {})
            ledger.rows[(w.kind, w.key)] = {**base, **{k: jsonable(v) for k, v in w.fields.items()}}
        if any(w.kind == "renewal_opportunity" for w in plan.writes):
            book.put("renewal_opportunity", renewal.opportunity.key, renewal.opportunity)
        for rl in renewal.lines:
            book.put("renewal_line", rl.key, rl)


def test_renewal_amount_is_the_sum_of_uplifted_lines_rounded_to_cents():
    book = make_book([contract(uplift=Decimal("3"))], [line(qty="3", price="33.33")])
    plan = planner().plan(book, Ledger(), "k1")
    assert plan.renewal.lines[0].unit_price == Decimal("34.33")
    assert plan.renewal.opportunity.amount == Decimal("102.99")


def test_policy_uplift_applies_when_the_contract_has_no_override():
    book = make_book([contract()], [line(qty="1", price="100")])
    plan = planner(uplift_percent=Decimal("10")).plan(book, Ledger(), "k1")
    assert plan.renewal.opportunity.amount == Decimal("110.00")


def test_window_opens_at_lead_time_and_late_creation_is_noted():
    end = AS_OF + timedelta(days=120)
    book = make_book([contract(end=end)], [line()])
    early = planner(as_of=AS_OF - timedelta(days=1)).plan(book, Ledger(), "k1")
    assert isinstance(early.renewal, Skip)
    assert planner().plan(book, Ledger(), "k1").renewal.action == "create"
    late = planner(as_of=end - timedelta(days=30)).plan(book, Ledger(), "k1").renewal
    assert any(n.startswith("late") for n in late.notes)


def test_owner_chain_resolves_to_first_active_manager_then_fallback():
    owners = {
        o.id: o
        for o in (
            Owner(id="rep", name="Rep", active=False, manager_id="lead"),
            Owner(id="lead", name="Lead", active=False, manager_id="vp"),
            Owner(id="vp", name="VP"),
            Owner(id="loner", name="Loner", active=False),
        )
    }
    assert resolve_owner(owners, "rep", None)[0].id == "vp"
    assert resolve_owner(owners, "loner", "desk")[0].id == "desk"
    owner, why = resolve_owner(owners, "loner", None)
    assert owner is None and "fallback_owner" in why


def test_customer_notice_is_due_sixty_days_before_end_on_a_business_day():
    end = date(2027, 3, 21)  # a Sunday; end - 60 is a Thursday, end - 59 would be Friday
    book = make_book([contract(end=end)], [line()])
    plan = planner(as_of=end - timedelta(days=89)).plan(book, Ledger(), "k1")
    notice = next(t for t in plan.tasks.tasks if t.dedupe_key.endswith("customer_notice"))
    assert notice.due_date <= end - timedelta(days=60) and notice.due_date.weekday() < 5
    assert "Ann" in notice.description and notice.contact_id == "c1"


dates = st.dates(min_value=date(2026, 1, 1), max_value=date(2028, 12, 31))


@st.composite
def books(draw):
    n = draw(st.integers(1, 8))
    contracts, lines = [], []
    for i in range(n):
        status = draw(st.sampled_from(["active", "active", "draft", "expired"]))
        uplift = draw(st.one_of(st.none(), st.decimals(0, 20, places=1)))
        contracts.append(contract(f"k{i}", draw(dates), status, uplift))
        for j in range(draw(st.integers(0, 4))):
            lines.append(
                line(
                    f"l{i}-{j}",
                    f"k{i}",
                    str(draw(st.integers(1, 500))),
                    str(draw(st.decimals(1, 5000, places=2))),
                )
            )
    owners = [
        Owner(id="u1", name="Sam", active=draw(st.booleans()), manager_id="m1"),
        Owner(id="m1", name="Boss", active=draw(st.booleans())),
    ]
    return make_book(contracts, lines, owners)


@settings(max_examples=60, deadline=None)
@given(book=books(), as_of=dates)
def test_replanning_after_applying_a_plan_yields_no_further_writes(book, as_of):
    ledger = Ledger()
    p = planner(as_of=as_of)
    apply(book, ledger, list(p.plan_book(book, ledger)))
    again = [pl for pl in p.plan_book(book, ledger) if isinstance(pl.renewal, RenewalPlan)]
    assert [w for pl in again for w in pl.writes] == []


@settings(max_examples=60, deadline=None)
@given(book=books(), as_of=dates)
def test_no_two_renewals_share_a_key_and_every_task_key_is_unique(book, as_of):
    plans = [
        pl
        for pl in planner(as_of=as_of).plan_book(book, Ledger())
        if isinstance(pl.renewal, RenewalPlan)
    ]
    keys = [pl.renewal.opportunity.key for pl in plans]
    assert len(keys) == len(set(keys))
    task_keys = [t.dedupe_key for pl in plans for t in pl.tasks.tasks]
    assert len(task_keys) == len(set(task_keys))
    line_keys = [ln.key for pl in plans for ln in pl.renewal.lines]
    assert len(line_keys) == len(set(line_keys))


# ------------------------------------------------------------------ Salesforce CPQ forecasts


def cpq_contract(end=AS_OF + timedelta(days=100), forecast=True, renewal=None) -> Contract:
    return Contract(
        id="k1",
        account_id="a1",
        status="active",
        start_date=end - timedelta(days=365),
        end_date=end,
        cpq=CpqRenewal(renewal_forecast=forecast, cpq_renewal_id=renewal),
    )


def test_asking_cpq_records_the_day_it_was_asked():
    book = make_book([cpq_contract(forecast=False)], [line()])
    (plan,) = planner(renewal_mode="cpq").plan_book(book, Ledger())
    (write,) = plan.writes
    assert write.fields == {"renewal_forecast": True, "asked_on": AS_OF}


def test_a_forecast_cpq_does_not_honour_in_a_day_needs_attention():
    book = make_book([cpq_contract()], [line()])
    ledger = Ledger()
    ledger.rows[("contract", "k1")] = {"renewal_forecast": True, "asked_on": str(AS_OF)}
    cpq = planner(renewal_mode="cpq")
    assert cpq.plan(book, ledger, "k1").renewal.reason == "awaiting_cpq"
    later = planner(AS_OF + timedelta(days=2), renewal_mode="cpq").plan(book, ledger, "k1").renewal
    assert later.reason == "cpq_overdue" and f"since {AS_OF}" in later.detail
    assert "renewals cpq retry k1" in later.detail


def test_a_forecast_past_the_latest_creation_point_or_the_end_stays_overdue():
    book = make_book([cpq_contract(end=AS_OF + timedelta(days=80))], [line()])
    overdue = planner(renewal_mode="cpq").plan(book, Ledger(), "k1")  # asked by someone else
    assert overdue.renewal.reason == "cpq_overdue"
    ended = planner(AS_OF + timedelta(days=100), renewal_mode="cpq").plan(book, Ledger(), "k1")
    assert ended.renewal.reason == "cpq_overdue"  # not a plain contract_ended: CPQ failed it
