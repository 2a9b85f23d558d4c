"""Incremental runs plan what changed and what fell due (connector/services/scope.py), and
leave the CRM as planning the whole book would: after each one, a dry run of the whole book
plans no write."""

from __future__ import annotations

from datetime import date, timedelta

from crm_renewals.connector.adapters.sandbox.seed import seed
from crm_renewals.connector.services import sync
from tests.conftest import AS_OF


def whole_book_plans_nothing(context, as_of: date) -> None:
    planned = sync(context, as_of=as_of, dry_run=True)
    assert planned.scope is None
    assert planned.writes == {}, planned.writes


def test_a_quiet_run_plans_nothing_and_a_changed_contract_alone(context, book):
    acc = book.account("Acme")
    far = book.contract(acc, AS_OF + timedelta(days=300), number="far")
    book.contract(book.account("Globex"), AS_OF + timedelta(days=310), number="other")
    first = sync(context, as_of=AS_OF)
    assert first.scope is None  # no index yet: the whole book, which builds it
    quiet = sync(context, as_of=AS_OF)
    assert quiet.scope == {"accounts": 0, "changed": 0, "refused": 0, "due": 0, "signals": 0}
    assert (quiet.created, quiet.skipped, quiet.writes) == (0, 0, {})
    end = AS_OF + timedelta(days=100)
    context.crm.edit("Contract", far, {"EndDate": end.isoformat()})
    changed = sync(context, as_of=AS_OF)
    assert changed.scope["accounts"] == 1 and changed.scope["changed"] == 1
    assert changed.created == 1 and book.opportunity(f"{far}:{end.isoformat()}")
    whole_book_plans_nothing(context, AS_OF)


def test_days_go_by_and_each_due_contract_is_planned_on_its_day(context, book):
    """Renewal windows opening and playbook steps coming due, day by day across a quarter's
    end, with a rep's edits on some days: each day's incremental run plans them through the
    index and leaves nothing for a whole-book plan to do."""
    start = date(2026, 3, 25)
    accounts = [book.account(f"Account {i}") for i in range(8)]
    for i, acc in enumerate(accounts):
        book.contact(acc, f"Pat {i}", renewal=i != 7)
        book.contract(acc, start + timedelta(days=121 + i), number=f"{i}")
    sync(context, as_of=start)
    sync(context, as_of=start)  # reads its own writes back
    due = []
    for day in range(1, 12):
        as_of = start + timedelta(days=day)
        if day == 4:
            book.contract(accounts[0], as_of + timedelta(days=90), number="new")
        report = sync(context, as_of=as_of)
        assert report.scope is not None, f"day {day}: planned the whole book"
        due.append(report.scope["due"])
        whole_book_plans_nothing(context, as_of)
    # after the first day (the tasks the first runs wrote), few accounts a day
    assert max(due[2:]) <= 3, due


def test_a_seeded_book_over_a_week_converges_like_a_whole_book_plan(context):
    seed(context.crm, seed=3, as_of=AS_OF, accounts=60, contracts=100)
    for day in range(4):
        as_of = AS_OF + timedelta(days=day)
        sync(context, as_of=as_of)
        sync(context, as_of=as_of)
        whole_book_plans_nothing(context, as_of)


def test_a_contract_moved_to_another_account_replans_both(context, book):
    first, second = book.account("First"), book.account("Second")
    moving = book.contract(first, AS_OF + timedelta(days=300), number="moving")
    book.contract(first, AS_OF + timedelta(days=320), number="staying")
    book.contract(book.account("Third"), AS_OF + timedelta(days=330), number="elsewhere")
    sync(context, as_of=AS_OF)
    sync(context, as_of=AS_OF)
    context.crm.edit("Contract", moving, {"AccountId": second})
    report = sync(context, as_of=AS_OF)
    assert report.scope["changed"] == 2  # the account it left and the one it joined
    whole_book_plans_nothing(context, AS_OF)


def test_a_webhook_run_keeps_the_index_of_what_it_planned(context, book):
    """A webhook run plans a changed contract and mirrors it; the next sync reads the same
    record again, which changes nothing, so the index must already hold its new due day."""
    from crm_renewals.connector.services.refresh import sync_records

    acc = book.account("Acme")
    book.contact(acc, "Pat")
    moved = book.contract(acc, AS_OF + timedelta(days=300), number="moved")
    sync(context, as_of=AS_OF)
    sync(context, as_of=AS_OF)
    end = AS_OF + timedelta(days=125)  # its window opens in five days
    context.crm.edit("Contract", moved, {"EndDate": end.isoformat()})
    sync_records(context, {"contract": [moved]}, as_of=AS_OF)
    assert sync(context, as_of=AS_OF).scope["changed"] == 0
    opens = AS_OF + timedelta(days=5)
    due = sync(context, as_of=opens)
    assert due.scope["due"] == 1 and due.created == 1
    whole_book_plans_nothing(context, opens)


def test_a_record_committed_late_within_the_overlap_is_still_read(context, book):
    """A quiet run reads after its cursor only, but a record stamped before the last read
    began (less `sync.overlap_seconds`) may have become visible after it: still read."""
    acc = book.account("Acme")
    book.contract(acc, AS_OF + timedelta(days=300), number="early")
    sync(context, as_of=AS_OF)
    sync(context, as_of=AS_OF)
    read_at = context.store.cursors.read_at("contract")
    cursor = context.store.cursors.get("contract").modified_at
    stamped = read_at - timedelta(seconds=60)
    assert stamped < cursor  # behind the cursor: a read after the cursor alone misses it
    clock = context.crm.transport.clock
    context.crm.transport.clock = lambda: stamped
    late = book.contract(acc, AS_OF + timedelta(days=100), number="late")
    context.crm.transport.clock = clock
    report = sync(context, as_of=AS_OF)
    assert report.created == 1 and report.scope["changed"] == 1
    assert book.opportunity(f"{late}:{(AS_OF + timedelta(days=100)).isoformat()}")
