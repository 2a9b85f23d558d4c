"""Eligibility: each guard refuses a minimal contract for its reason, in the table's order."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal

import pytest

from crm_renewals.connector.domain.book import Book
from crm_renewals.connector.domain.models import (
    Account,
    Contract,
    ContractLine,
    CpqRenewal,
    Owner,
    RenewalOpportunity,
)
from crm_renewals.connector.domain.planning.eligibility import (
    CPQ_GUARDS,
    GUARDS,
    Eligible,
    eligibility,
)
from crm_renewals.connector.domain.planning.planner import Planner
from crm_renewals.connector.domain.planning.values import Skip
from crm_renewals.connector.domain.policy import Playbook, RenewalPolicy

AS_OF = date(2026, 11, 23)
END = AS_OF + timedelta(days=100)  # inside the 120-day window, before the latest creation
KEY = f"k1:{END.isoformat()}"


class Ledger:
    def __init__(self, rows=None):
        self.rows = rows or {}

    def written(self, kind, key):
        return self.rows.get((kind, key))


def good_book(**contract) -> Book:
    """One account, one owner, one contract with one recurring line: eligible as it stands."""
    book = Book()
    book.put("owner", "u1", Owner(id="u1", name="Sam"))
    book.put("account", "a1", Account(id="a1", name="Acme", owner_id="u1"))
    fields = {
        "id": "k1",
        "account_id": "a1",
        "status": "active",
        "start_date": END - timedelta(days=365),
        "end_date": END,
        **contract,
    }
    book.put("contract", "k1", Contract(**fields))
    line = ContractLine(
        id="l1", contract_id="k1", product_code="SEAT", quantity=Decimal(1), unit_price=Decimal(9)
    )
    book.put("contract_line", "l1", line)
    return book


def renewal(stage: str, key: str = KEY, close: date = END) -> RenewalOpportunity:
    return RenewalOpportunity(
        key=key,
        contract_id="k1",
        account_id="a1",
        name="Acme renewal",
        stage=stage,
        close_date=close,
        owner_id="u1",
        amount=Decimal(9),
    )


def deleted() -> tuple[Book, Ledger]:
    book = good_book()
    book.drop("contract", "k1")
    book.deleted_contracts.add("k1")
    return book, Ledger()


def broken() -> tuple[Book, Ledger]:
    book = good_book()
    book.mark_broken("k1", "contract_line:l2", "quantity is not a number")
    return book, Ledger()


def renewal_deleted() -> tuple[Book, Ledger]:
    book = good_book()
    book.deleted_renewal_keys.add(KEY)
    return book, Ledger({("renewal_opportunity", KEY): {"name": "Acme renewal"}})


def with_renewal(stage: str, key: str = KEY) -> Callable[[], tuple[Book, Ledger]]:
    def build() -> tuple[Book, Ledger]:
        book = good_book()
        book.put("renewal_opportunity", key, renewal(stage, key))
        return book, Ledger()

    return build


def contract_as(**fields) -> Callable[[], tuple[Book, Ledger]]:
    return lambda: (good_book(**fields), Ledger())


def cpq_asked(days_ago: int) -> Callable[[], tuple[Book, Ledger]]:
    def build() -> tuple[Book, Ledger]:
        book = good_book(cpq=CpqRenewal(renewal_forecast=True))
        asked = {"renewal_forecast": True, "asked_on": str(AS_OF - timedelta(days=days_ago))}
        return book, Ledger({("contract", "k1"): asked})

    return build


def no_account() -> tuple[Book, Ledger]:
    book = good_book()
    book.drop("account", "a1")
    return book, Ledger()


def no_recurring_line() -> tuple[Book, Ledger]:
    book = good_book()
    line = book.contract_lines["l1"]
    book.put("contract_line", "l1", replace(line, recurring=False))
    return book, Ledger()


def owner_gone() -> tuple[Book, Ledger]:
    book = good_book()
    book.put("owner", "u1", Owner(id="u1", name="Sam", active=False))
    return book, Ledger()


#: (the reason, how a minimal contract meets it, a policy other than the default)
CASES = [
    ("contract_deleted", deleted, {}),
    ("missing_data", broken, {}),
    ("renewal_deleted", renewal_deleted, {}),
    ("already_renewed", with_renewal("Closed Won"), {}),
    ("closed_renewal_exists", with_renewal("Closed Lost"), {}),
    ("contract_not_active", contract_as(status="draft"), {}),
    ("awaiting_cpq", cpq_asked(0), {"renewal_mode": "cpq"}),
    ("cpq_overdue", cpq_asked(2), {"renewal_mode": "cpq"}),
    ("not_due", contract_as(end_date=AS_OF + timedelta(days=200)), {}),
    ("contract_ended", contract_as(end_date=AS_OF - timedelta(days=1)), {}),
    ("missing_data", no_account, {}),
    ("missing_data", no_recurring_line, {}),
    ("no_active_owner", owner_gone, {}),
]


@pytest.mark.parametrize(("reason", "build", "policy"), CASES, ids=[c[1].__name__ for c in CASES])
def test_each_guard_refuses_a_minimal_contract_for_its_reason(reason, build, policy):
    book, ledger = build()
    verdict = eligibility(Planner(RenewalPolicy(**policy), Playbook(), AS_OF), book, ledger, "k1")
    assert isinstance(verdict, Skip) and verdict.reason == reason
    assert verdict.detail


def test_the_cases_walk_the_guards_in_the_tables_order():
    # after the two for a contract not there, before the three that find account, lines, owner
    walked = [reason for reason, _, _ in CASES[2:-3]]
    assert walked == [reason for reason, _ in CPQ_GUARDS]
    cpq = {"awaiting_cpq", "cpq_overdue"}
    assert [reason for reason, _ in GUARDS] == [r for r in walked if r not in cpq]


def test_a_contract_no_guard_refuses_is_eligible_with_what_the_guards_found():
    book = good_book()
    verdict = eligibility(Planner(RenewalPolicy(), Playbook(), AS_OF), book, Ledger(), "k1")
    assert isinstance(verdict, Eligible)
    assert (verdict.key, verdict.owner.id, verdict.account.id) == (KEY, "u1", "a1")
    assert [ln.id for ln in verdict.lines] == ["l1"] and verdict.existing is None


def test_a_lost_renewal_of_an_earlier_term_does_not_stop_this_terms():
    earlier = f"k1:{(END - timedelta(days=365)).isoformat()}"
    book, ledger = with_renewal("Closed Lost", earlier)()
    verdict = eligibility(Planner(RenewalPolicy(), Playbook(), AS_OF), book, ledger, "k1")
    assert isinstance(verdict, Eligible) and verdict.existing is None and verdict.key == KEY
