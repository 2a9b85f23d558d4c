"""Upsell and cross-sell rules: worked examples, through the planner."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from crm_renewals.connector.domain.book import Book
from crm_renewals.connector.domain.health import score_account
from crm_renewals.connector.domain.models import Account, Contact, Contract, ContractLine, Owner
from crm_renewals.connector.domain.planning.planner import Planner
from crm_renewals.connector.domain.planning.values import RenewalPlan
from crm_renewals.connector.domain.policy import (
    CrossSell,
    Playbook,
    RenewalPolicy,
    SeatExpansion,
    TierUpgrade,
    Upsell,
)
from tests.unit.test_health import CARD

AS_OF = date(2026, 11, 23)
RULES = Upsell(
    seat_expansion=SeatExpansion(
        above_utilisation=0.9, target_utilisation=0.8, seat_products=("STD",)
    ),
    tier_upgrade=TierUpgrade(usage_share=0.9, next_tier={"STD": "PRO"}),
    cross_sell=CrossSell(peer_share=0.6, min_peers=5),
)


class NoLedger:
    def written(self, kind, key):
        return None


def book_with_peers() -> Book:
    """a1 renews 50 STD seats; 6 SMB peers: 5 own SUP, all own STD; one bought PRO at 700."""
    book = Book()
    book.put("owner", "u1", Owner(id="u1", name="Sam"))
    end = AS_OF + timedelta(days=100)
    for i in range(7):
        aid, cid = f"a{i + 1}", f"k{i + 1}"
        book.put("account", aid, Account(id=aid, name=f"Org {i}", owner_id="u1", segment="SMB"))
        book.put(
            "contact",
            f"c{i}",
            Contact(id=f"c{i}", account_id=aid, name="Ann", renewal_contact=True),
        )
        book.put(
            "contract",
            cid,
            Contract(
                id=cid,
                account_id=aid,
                status="active",
                start_date=end - timedelta(days=364),
                end_date=end if i == 0 else end + timedelta(days=200),
            ),
        )
        qty = "50" if i == 0 else "10"
        book.put(
            "contract_line",
            f"{cid}-std",
            ContractLine(
                id=f"{cid}-std",
                contract_id=cid,
                product_code="STD",
                quantity=Decimal(qty),
                unit_price=Decimal("100"),
            ),
        )
        if 1 <= i <= 5:
            book.put(
                "contract_line",
                f"{cid}-sup",
                ContractLine(
                    id=f"{cid}-sup",
                    contract_id=cid,
                    product_code="SUP",
                    product_name="Premium support",
                    quantity=Decimal(1),
                    unit_price=Decimal("900"),
                ),
            )
    book.put(
        "contract_line",
        "k7-pro",
        ContractLine(
            id="k7-pro",
            contract_id="k7",
            product_code="PRO",
            quantity=Decimal(5),
            unit_price=Decimal("700"),
        ),
    )
    return book


def plan_for(values: dict, usage: dict | None = None) -> RenewalPlan:
    health = {"a1": score_account(CARD, "a1", values)}
    planner = Planner(
        RenewalPolicy(),
        Playbook(steps=()),
        AS_OF,
        scorecard=CARD,
        upsell=RULES,
        health=health,
        usage={"a1": usage or {}},
    )
    plan = planner.plan(book_with_peers(), NoLedger(), "k1").renewal
    assert isinstance(plan, RenewalPlan)
    return plan


def suggestions(plan: RenewalPlan) -> dict:
    return {ln.key.split(":", 2)[2]: ln for ln in plan.lines if ln.kind != "renewal"}


def test_seat_expansion_tier_upgrade_and_cross_sell_worked_example():
    plan = plan_for(
        {"seat_utilisation": 0.95, "late_payments": 0, "nps": 30}, {"capped_feature_usage": 0.92}
    )
    lines = suggestions(plan)
    assert sorted(lines) == ["cross_sell:SUP", "upsell:seats", "upsell:tier"]
    # 0.95 * 50 = 47.5 active users; ceil(47.5 / 0.8) = 60 seats: 10 more at the renewal price
    seats = lines["upsell:seats"]
    assert (seats.kind, seats.product_code, seats.quantity, seats.unit_price) == (
        "upsell",
        "STD",
        Decimal(10),
        Decimal("100.00"),
    )
    assert seats.description == (
        "Upsell: seat utilisation 95% of 50 seats (48 active users); 10 more seats bring it to 80%"
    )
    tier = lines["upsell:tier"]
    assert (tier.product_code, tier.quantity, tier.unit_price) == (
        "PRO",
        Decimal(50),
        Decimal("700.00"),
    )
    cross = lines["cross_sell:SUP"]
    assert cross.kind == "cross_sell" and cross.unit_price == Decimal("900.00")
    assert cross.description == "Cross-sell: 5 of 6 SMB peers (83%) own Premium support"
    # the renewal amount stays the renewal: 50 seats at 100
    assert plan.opportunity.amount == Decimal("5000.00")
    # (30 * 100 + 20 * 87.5 + 20 * 100) / 70 = 96.4
    assert (plan.opportunity.health_score, plan.opportunity.health_grade) == (96, "green")


def test_no_suggestion_for_a_red_account_or_below_the_thresholds():
    red = plan_for(
        {"seat_utilisation": 0.3, "late_payments": 3, "nps": -40}, {"capped_feature_usage": 1}
    )
    # (30 * 20 + 20 * 10 + 20 * 0) / 70 = 11.4: red, so no tier upgrade and no cross-sell
    assert red.opportunity.health_grade == "red" and suggestions(red) == {}
    calm = plan_for({"seat_utilisation": 0.9, "late_payments": 0}, {"capped_feature_usage": 0.89})
    assert sorted(suggestions(calm)) == ["cross_sell:SUP"]  # 0.9 is not above 0.9
