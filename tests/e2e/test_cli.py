"""The `renewals` command line on the sandbox CRM, as an admin or a script uses it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from crm_renewals.connector.cli import main
from tests.conftest import cli_for, write_config

AS_OF = "2026-11-23"


@pytest.fixture
def cli(tmp_path):
    invoke = cli_for(write_config(tmp_path))
    assert invoke("sandbox", "seed", "--as-of", AS_OF).exit_code == 0
    return invoke


def test_sync_json_reports_counts_and_a_second_sync_writes_nothing(cli):
    first = cli("sync", "--as-of", AS_OF, "--json")
    assert first.exit_code == 1  # the demo book holds records broken on purpose
    data = json.loads(first.output)
    for key in ("created", "updated", "unchanged", "skipped", "failed", "api_calls"):
        assert isinstance(data[key], int)
    assert data["created"] > 40 and data["failed"] == 4
    assert data["skip_reasons"]["no_active_owner"] >= 1
    second = json.loads(cli("sync", "--as-of", AS_OF, "--json").output)
    assert (second["created"], second["updated"], second["writes"]) == (0, 0, {})
    assert second["unchanged"] == data["created"]


def test_dry_run_prints_the_diff_and_writes_nothing(cli):
    out = cli("sync", "--dry-run", "--as-of", AS_OF)
    assert "+ create renewal_opportunity" in out.output and "Dry run" in out.output
    runs = json.loads(cli("runs", "--json").output)
    assert runs == []
    assert json.loads(cli("sync", "--as-of", AS_OF, "--json").output)["created"] > 0


def test_explain_answers_why_from_the_planner(cli, tmp_path):
    data = json.loads(cli("sync", "--as-of", AS_OF, "--json").output)
    assert data["created"]
    letters = json.loads(cli("deadletters", "list", "--json").output)
    broken = letters[0]["contract_id"]
    out = cli("explain", broken, "--as-of", AS_OF, "--json")
    why = json.loads(out.output)
    assert why["decision"] == "skip" and why["reason"] == "missing_data"
    assert why["dead_letters"]
    runs = json.loads(cli("runs", "--json").output)
    assert runs[0]["api_calls"] > 0 and runs[0]["counts"]["created"] == data["created"]
    assert cli("explain", "800NOPE").exit_code == 1


def test_deadletters_retry_remaps_after_a_mapping_fix(tmp_path, cli):
    cli("sync", "--as-of", AS_OF)
    letters = json.loads(cli("deadletters", "list", "--json").output)
    assert {d["field"] for d in letters} == {"end_date", "product_code"}
    root = Path(__file__).resolve().parents[2]
    fixed = tmp_path / "fixed.yaml"
    fixed.write_text(
        (root / "mappings" / "sandbox.yaml")
        .read_text()
        .replace(
            "end_date: {field: EndDate, type: date, required: true}",
            "end_date: {field: EndDate, type: date, default: '2027-01-29'}",
        )
    )
    config = write_config(tmp_path, mapping=str(fixed))
    result = CliRunner().invoke(
        main, ["--config", str(config), "deadletters", "retry", "--as-of", AS_OF, "--json"]
    )
    data = json.loads(result.output)
    assert data["remapped"] == 2 and data["remaining"] == 2


def test_config_check_prints_every_problem_and_exits_2(tmp_path):
    bad = tmp_path / "app.yaml"
    bad.write_text("crm: sandbox\nrenewals:\n  lead_time: 120\nsync:\n  page_size: 5\n")
    result = CliRunner().invoke(main, ["--config", str(bad), "config", "check"])
    assert result.exit_code == 2
    assert "app.yaml:3: renewals.lead_time" in result.output
    assert "app.yaml:5: sync.page_size" in result.output


def test_mappings_validate_checks_files_offline(tmp_path):
    root = Path(__file__).resolve().parents[2]
    ok = CliRunner().invoke(
        main, ["mappings", "validate", *map(str, (root / "mappings").glob("*.yaml"))]
    )
    assert ok.exit_code == 0 and ok.output.count("OK") == 3
    bad = tmp_path / "m.yaml"
    bad.write_text("version: 1\ncrm: sandbox\nmodels: {}\n")
    result = CliRunner().invoke(main, ["mappings", "validate", str(bad)])
    assert result.exit_code == 2 and "missing model 'contract'" in result.output


def test_demo_runs_end_to_end_as_a_new_user_would(tmp_path):
    config = write_config(tmp_path)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "crm_renewals.connector",
            "--config",
            str(config),
            "demo",
            "--as-of",
            AS_OF,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "renewals created" in result.stdout and "Needs attention" in result.stdout
    assert "Second run: 0 writes" in result.stdout


def test_the_demos_needs_attention_counts_the_failed_contracts_the_run_reports(tmp_path):
    result = cli_for(write_config(tmp_path))("demo", "--as-of", AS_OF)
    failed = re.search(r"│ failed +│ (\d+) +│", result.stdout)
    attention = re.search(r"Needs attention: (\d+) failed, (\d+) skipped", result.stdout)
    assert failed and attention, result.stdout
    rows = re.findall(r"│ 800\w+ +│ (failed|skipped) +│", result.stdout)
    assert failed[1] == attention[1] == str(rows.count("failed")) == "4"
    assert attention[2] == str(rows.count("skipped")) == "2"  # no active owner: not failed


def test_sync_refuses_to_overlap_a_run_in_progress(tmp_path):
    from crm_renewals.connector.config import load_config
    from crm_renewals.connector.state import StateStore
    from crm_renewals.connector.state.runlock import run_lock

    config = write_config(tmp_path, schedule={"lock_wait_seconds": 0})
    store = StateStore(load_config(config).state_url)
    runner = CliRunner()
    with run_lock(store):
        busy = runner.invoke(main, ["--config", str(config), "sync", "--as-of", AS_OF])
    assert busy.exit_code == 2 and "another run is in progress" in busy.output
    assert "Another run is in progress (scheduler or webhook worker): waiting" in busy.output
    store.close()
