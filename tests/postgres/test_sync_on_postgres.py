"""The end-to-end sync, on PostgreSQL: the sync service's tests (tests/e2e/test_sync_service.py),
the incremental runs' (tests/e2e/test_incremental.py) and the CLI's sync tests
(tests/e2e/test_cli.py), run here unchanged on a schema of their own (tests/postgres/conftest.py).
A second run writes nothing; a run that stopped converges."""

from __future__ import annotations

import pytest

# the tests, collected again here: their configurations now name PostgreSQL
from tests.e2e.test_cli import (  # noqa: F401
    cli,
    test_deadletters_retry_remaps_after_a_mapping_fix,
    test_dry_run_prints_the_diff_and_writes_nothing,
    test_explain_answers_why_from_the_planner,
    test_sync_json_reports_counts_and_a_second_sync_writes_nothing,
    test_sync_refuses_to_overlap_a_run_in_progress,
)
from tests.e2e.test_incremental import (  # noqa: F401
    test_a_contract_moved_to_another_account_replans_both,
    test_a_quiet_run_plans_nothing_and_a_changed_contract_alone,
    test_a_webhook_run_keeps_the_index_of_what_it_planned,
    test_days_go_by_and_each_due_contract_is_planned_on_its_day,
)
from tests.e2e.test_sync_service import (  # noqa: F401
    test_a_renewal_line_a_rep_changed_keeps_the_lines_and_the_amount,
    test_a_run_hands_back_only_the_plans_its_caller_asks_for,
    test_a_run_that_never_finished_is_shown_as_interrupted,
    test_amended_end_date_moves_the_open_renewal_instead_of_adding_one,
    test_changed_contract_line_updates_the_untouched_renewal,
    test_closed_won_renewal_means_already_renewed,
    test_configured_fallback_owner_takes_work_of_owners_who_left,
    test_contracts_outside_the_window_or_inactive_are_skipped_with_reasons,
    test_dry_run_plans_but_writes_nothing,
    test_fatal_error_stops_the_run_and_the_next_run_converges,
    test_inactive_owner_falls_back_to_the_active_manager,
    test_owner_who_left_without_a_manager_is_reported_not_guessed,
    test_record_refused_by_the_crm_is_dead_lettered_then_written_once_fixed,
    test_renewal_deleted_by_a_rep_is_not_created_again,
    test_renewal_is_created_in_window_with_uplifted_lines_and_owner,
    test_renewal_is_not_duplicated_when_run_twice,
    test_rep_who_moved_the_stage_keeps_amount_and_lines_but_owned_fields_are_kept,
    test_tasks_name_every_renewal_contact_and_flag_accounts_without_one,
    test_transient_crm_errors_are_retried,
    test_unmappable_record_is_dead_lettered_and_the_rest_carries_on,
    test_writes_go_out_in_batches_of_the_adapter_limit,
)

pytestmark = pytest.mark.usefixtures("on_postgres")


def test_demo_twice_starts_over_on_postgresql_too(tmp_path, on_postgres):
    """`renewals demo` (and `sandbox seed --reset`) empty the state database whatever it is:
    the second demo plans against the new sandbox, not the first one's ledger."""
    import json

    from tests.conftest import cli_for, write_config

    renewals = cli_for(write_config(tmp_path))
    assert renewals("demo", "--as-of", "2026-11-23").exit_code == 0
    first = json.loads(renewals("runs", "--json").output)
    assert renewals("demo", "--as-of", "2026-11-23").exit_code == 0
    again = json.loads(renewals("runs", "--json").output)
    assert [r["id"] for r in again] == [r["id"] for r in first] == [2, 1]  # started over
    created = [r["counts"]["created"] for r in (again[-1], first[-1])]
    assert created[0] == created[1] > 0  # the renewals created anew, not found in a ledger
