"""The mapping guard's rules (connector/services/guard.py): when a run's mapping failures stop
it before its first write, and when they do not."""

from __future__ import annotations

from click.testing import CliRunner

from crm_renewals.connector.cli import main
from crm_renewals.connector.config import load_config
from crm_renewals.connector.errors import MappingError, UnmappedValueError
from crm_renewals.connector.services.guard import HANDFUL, Baseline, skip_change, verdict
from crm_renewals.connector.services.reading import Reading
from tests.conftest import write_config

AFTER_RUN_1 = Baseline(1, {}, frozenset({"contract"}), "after run 1")


def reading(read: dict[str, int], failing: dict[str, int]) -> Reading:
    r = Reading()
    r.read.update(read)
    for kind, n in failing.items():
        for i in range(n):
            r.fail(UnmappedValueError(kind, f"{kind}-{i}", "stage", "Closed Lost", "not mapped"))
    return r


def test_one_bad_record_among_the_three_an_incremental_run_read_does_not_stop_it():
    assert verdict(reading({"contract": 3}, {"contract": 1}), 0.02, AFTER_RUN_1) is None
    # a share over the setting needs more than a handful of failures to stop a run
    few = reading({"renewal_opportunity": 10}, {"renewal_opportunity": HANDFUL})
    assert verdict(few, 0.02, AFTER_RUN_1) is None


def test_a_share_over_the_setting_stops_a_first_run_and_names_what_dominates():
    r = reading({"renewal_opportunity": 100, "contract": 712}, {"renewal_opportunity": 71})
    r.fail(MappingError("contract", "800X", "end_date", None, "required value missing"))
    why = verdict(r, 0.02, Baseline())
    assert why is not None and why.startswith("72 of 812 records failed to map (8.9% > 2%)")
    assert "most: renewal_opportunity.stage: value 'Closed Lost' has no mapping (71)" in why
    assert why.endswith("contract.end_date: required value missing (1)")
    assert verdict(r, 0.1, Baseline()) is None  # within a looser setting


def test_a_kind_that_mapped_cleanly_and_now_fails_for_more_than_a_handful_stops_the_run():
    r = reading({"renewal_opportunity": 71, "contract": 2000}, {"renewal_opportunity": 7})
    why = verdict(r, 0.02, AFTER_RUN_1)
    assert why is not None and why.startswith("7 renewal_opportunity records failed to map")
    assert "none did after run 1" in why
    # no run to compare with (a first run): the share rule alone, and 7 of 2071 is within it
    assert verdict(r, 0.02, Baseline()) is None
    # a kind already failing after the last run is weighed by the share rule only
    assert verdict(reading({"contract": 2000}, {"contract": 7}), 0.02, AFTER_RUN_1) is None


def test_skip_reasons_change_lists_what_moved_and_is_none_without_a_run_to_compare():
    base = Baseline(1, {"already_renewed": 20, "not_due": 5}, name="after run 1")
    assert skip_change(base, {"already_renewed": 20, "contract_ended": 23}) == {
        "contract_ended": {"before": 0, "after": 23},
        "not_due": {"before": 5, "after": 0},
    }
    assert skip_change(Baseline(), {"not_due": 1}) is None


def test_max_map_failure_share_is_a_share_from_0_to_1(tmp_path):
    config = write_config(tmp_path, sync={"max_map_failure_share": 1.5})
    result = CliRunner().invoke(main, ["--config", str(config), "config", "check"])
    assert result.exit_code == 2 and "sync.max_map_failure_share" in result.output
    assert load_config(write_config(tmp_path)).sync.max_map_failure_share == 0.02
