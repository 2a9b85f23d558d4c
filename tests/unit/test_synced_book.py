"""The synced book `explain` and the contract search read: loaded once, kept while no run
changes the state database, loaded again after one (a dry run is not a run)."""

from __future__ import annotations

from datetime import date, timedelta

from crm_renewals.connector.services import explain, sync
from crm_renewals.connector.services.synced import synced_book

AS_OF = date(2026, 11, 23)


def test_the_synced_book_is_kept_until_a_run_changes_it(context, book):
    first_id = book.contract(book.account("Acme"), AS_OF + timedelta(days=100))
    sync(context, as_of=AS_OF)
    kept = synced_book(context.store)
    assert first_id in kept.book.contracts and synced_book(context.store) is kept

    later_id = book.contract(book.account("Globex"), AS_OF + timedelta(days=90), number="2")
    sync(context, as_of=AS_OF, dry_run=True)  # reads it, records nothing
    assert synced_book(context.store) is kept
    assert explain(context, later_id, AS_OF).plan is None  # not synced yet

    sync(context, as_of=AS_OF)
    assert synced_book(context.store) is not kept
    explained = explain(context, later_id, AS_OF)
    assert explained.plan is not None and explained.account.name == "Globex"
