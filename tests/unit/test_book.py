"""Pure functions over the book: which contracts a change touches, which parents they lack."""

from __future__ import annotations

from datetime import date

from crm_renewals.connector.domain.book import Book, affected_contracts, missing_parents
from crm_renewals.connector.domain.models import Account, Contract, Owner, RenewalOpportunity

END = date(2027, 3, 31)


def book() -> Book:
    b = Book()
    b.put("owner", "boss", Owner(id="boss", name="Boss"))
    b.put("owner", "rep", Owner(id="rep", name="Rep", manager_id="boss"))
    b.put("account", "a1", Account(id="a1", name="Acme", owner_id="rep"))
    b.put("account", "a2", Account(id="a2", name="Globex", owner_id="boss"))
    for cid, account in (("k1", "a1"), ("k2", "a2"), ("k3", "a2")):
        contract = Contract(
            id=cid, account_id=account, status="active", start_date=END, end_date=END
        )
        b.put("contract", cid, contract)
    return b


def row(kind: str, rid: str, parent: str | None = None, **data) -> dict:
    return {"kind": kind, "id": rid, "parent_id": parent, "data": data}


def test_a_contract_its_lines_and_its_renewal_affect_that_contract():
    rows = [
        row("contract", "k1"),
        row("contract_line", "l1", contract_id="k2"),
        row("renewal_opportunity", "r3", contract_id="k3"),
    ]
    assert affected_contracts(book(), rows) == {"k1", "k2", "k3"}


def test_a_renewal_line_affects_its_renewals_contract_even_one_not_synced_yet():
    b = book()
    key = f"k1:{END.isoformat()}"
    renewal = RenewalOpportunity(
        key=key,
        contract_id="k1",
        account_id="a1",
        name="r",
        stage="Prospecting",
        close_date=END,
        owner_id="rep",
        amount=0,
    )
    b.put("renewal_opportunity", "r1", renewal)
    rows = [row("renewal_line", "x", renewal_key=key), row("renewal_line", "y", renewal_key="k9:d")]
    assert affected_contracts(b, rows) == {"k1", "k9"}


def test_an_account_a_contact_or_an_owner_affects_the_contracts_under_them():
    assert affected_contracts(book(), [row("account", "a1")]) == {"k1"}
    assert affected_contracts(book(), [row("contact", "c1", account_id="a2")]) == {"k2", "k3"}
    # the manager leaving moves their reports' work too
    assert affected_contracts(book(), [row("owner", "boss")]) == {"k1", "k2", "k3"}
    assert affected_contracts(book(), [row("owner", "nobody")]) == set()


def test_missing_parents_are_the_accounts_and_owners_the_book_lacks():
    b = book()
    b.put(
        "contract",
        "k4",
        Contract(
            id="k4", account_id="a9", status="active", start_date=END, end_date=END, owner_id="u9"
        ),
    )
    b.put("account", "a3", Account(id="a3", name="Initech", owner_id="u8"))
    b.put(
        "contract",
        "k5",
        Contract(id="k5", account_id="a3", status="active", start_date=END, end_date=END),
    )
    need = missing_parents(b, {"k1", "k4", "k5", "gone"})
    assert need == {"account": {"a9"}, "owner": {"u9", "u8"}}
