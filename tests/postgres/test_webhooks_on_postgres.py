"""The webhook inbox on PostgreSQL: the receiver's, the inbox worker's and the signal events'
tests (tests/webhooks), run here unchanged on a schema of their own (tests/postgres/conftest.py):
deliveries stored and read into events once, an unreadable one set aside in a savepoint while
the rest of its batch goes on, retries and the dead letters, the run lock."""

from __future__ import annotations

import pytest

# the tests, collected again here: their configurations now name PostgreSQL
from tests.webhooks.test_hubspot import (  # noqa: F401
    test_official_vector_is_accepted_and_its_events_are_stored,
    test_redelivery_of_the_same_batch_is_stored_once,
)
from tests.webhooks.test_processing import (  # noqa: F401
    ctx,
    test_a_crash_while_reading_deliveries_loses_nothing_and_stores_nothing_twice,
    test_account_event_replans_the_accounts_contracts,
    test_an_unreadable_delivery_goes_to_the_dead_letters_whole,
    test_contract_event_leads_via_the_worker_to_its_renewal,
    test_failed_events_retry_with_backoff_then_go_to_the_dead_letters,
    test_new_contract_under_a_new_account_reads_the_account_and_owner_too,
    test_run_lock_keeps_runs_apart,
    test_settled_events_are_forgotten_after_the_dedupe_window,
    test_unmapped_objects_are_ignored,
    test_worker_leaves_events_for_later_while_another_run_holds_the_lock,
)
from tests.webhooks.test_refusals_and_isolation import (  # noqa: F401
    test_a_delivery_that_cannot_be_stored_is_dead_lettered_and_the_rest_go_on,
    test_health_is_degraded_when_deliveries_wait_longer_than_the_setting,
)
from tests.webhooks.test_signal_events import (  # noqa: F401
    test_a_burst_of_signals_for_one_account_is_one_event,
    test_a_copy_of_a_stored_signal_is_no_new_work,
    test_signals_turn_an_account_red_through_the_inbox_without_a_sync,
)

pytestmark = pytest.mark.usefixtures("on_postgres")
